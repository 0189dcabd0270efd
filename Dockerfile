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
# The WorkflowTemplate runs pods as uid 10001 (runAsNonRoot); the GitHub key is mounted 0440 for fsGroup 10001.
RUN useradd --uid 10001 --user-group --create-home runner
USER 10001
WORKDIR /home/runner
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Smoke test when the image is built: every step module imports.
RUN python -c "import steps.github.statuses, steps.github.app, hera.workflows.runner"
CMD ["python", "-m", "hera.workflows.runner", "--help"]
