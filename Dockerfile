# Runner image of the release-data-prep WorkflowTemplate. Each step's pod runs
#   python -m hera.workflows.runner -e steps.<module>:<function> <inputs-file>
# so the image holds this package (steps/ and pipelines/) with the dependency versions pinned in
# constraints.txt, and nothing else. Tag it with the package version: hera_config.yaml's image.tag must
# equal pyproject.toml's version, and `python -m pipelines render` refuses to render otherwise.
#   docker build -t ghcr.io/acme/gitops-status-matrix:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY pipelines ./pipelines
COPY steps ./steps
RUN pip install --no-cache-dir --prefix=/install -c constraints.txt .

FROM python:3.11-slim
COPY --from=build /install /usr/local
# The WorkflowTemplate runs pods as uid/gid 10001 (runAsNonRoot, Pod Security "restricted") with a read-only
# root filesystem and an emptyDir at /tmp; the GitHub key is mounted 0440 for fsGroup 10001.
RUN useradd --uid 10001 --user-group --create-home runner
USER 10001
WORKDIR /home/runner
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Smoke test when the image is built: every module of steps/ and pipelines/ imports (tasks.py test checks the
# same install more deeply: schemas load and steps run through the runner; tests/support/runtime_probe.py).
RUN python -c "import importlib, pkgutil, steps, pipelines, hera.workflows.runner; \
[importlib.import_module(m.name) for p in (steps, pipelines) \
 for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.') if m.name != 'pipelines.__main__']"
CMD ["python", "-m", "hera.workflows.runner", "--help"]
