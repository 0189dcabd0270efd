"""How every step's pod is built: runner-mode script, settings, retries, resources and Pod Security "restricted"."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from hera.workflows import Counter, Env, Label, Resources, RetryStrategy, Script
from hera.workflows import models as m

from pipelines.config import Config
from pipelines.resources.mounts import SCRATCH_DIR, Mount, Mounts
from steps.runtime.metrics import METRICS_DIR_ENV

RUNNER_UID = 10001  # the Dockerfile's `runner` user
# Exit code 75 (EX_TEMPFAIL) is what steps.runtime.step uses for infrastructure errors; pod errors retry too.
RETRY_EXPRESSION = "lastRetry.status == 'Error' || asInt(lastRetry.exitCode) == 75"
#: polars' jemalloc with one arena (polars appends ``$_RJEM_MALLOC_CONF`` to its own settings when imported,
#: py-polars/polars/__init__.py; pola-rs/polars#23128). Validating 10 M rows in 1 M-row groups, the default
#: arenas kept each group's freed pages apart: peak RSS 561 MB against 422 MB at 1 M rows; one arena: 481 MB
#: against 404 MB, and no slower (2.18 s against 2.31 s, medians of 3; benchmarks/RESULTS.md).
POD_ALLOCATOR_ENV = {"_RJEM_MALLOC_CONF": "narenas:1"}
#: Where steps write the numbers Argo's metrics read back as output parameters (steps.runtime.metrics).
METRICS_DIR = f"{SCRATCH_DIR}/metrics"


def pod_security_context() -> m.PodSecurityContext:
    """The pod-level half of "restricted": non-root, the image's uid and gid, RuntimeDefault seccomp."""
    return m.PodSecurityContext(
        run_as_non_root=True,
        run_as_user=RUNNER_UID,
        run_as_group=RUNNER_UID,
        fs_group=RUNNER_UID,
        seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
    )


def container_security_context() -> m.SecurityContext:
    """The container-level half: no escalation, no capabilities, a read-only root filesystem."""
    return m.SecurityContext(
        allow_privilege_escalation=False,
        capabilities=m.Capabilities(drop=["ALL"]),
        read_only_root_filesystem=True,
        run_as_non_root=True,
    )


def _double(quantity: str) -> str:
    number = int(quantity.rstrip("MiG"))
    return f"{number * 2}{quantity.lstrip('0123456789')}"


class Scripts:
    """Builds the script templates of one config: shared settings, the step's mounts, retries and limits.

    Args:
        config: The loaded ``hera_config.yaml``.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.mounts = Mounts(config)

    def settings_env(self) -> list[Env]:
        """The GitHub settings every step reads (``steps.runtime.settings``), none of them secret."""
        c = self.config
        target = c.target_url("{{workflow.name}}")
        values = {
            "GITHUB_API_URL": c.github.api_url,
            "GITHUB_APP_ID": str(c.github.app_id or ""),
            "GITHUB_APP_SLUG": c.github.app_slug or "",
            "GITHUB_STATUS_CONTEXT": c.github.status_context,
            "GITHUB_TARGET_URL": target,
            "GITHUB_TIMEOUT_SECONDS": str(c.github.request_timeout_seconds),
            "GITHUB_RETRY_BUDGET_SECONDS": str(c.github.retry_budget_seconds),
            "GITHUB_REQUIRED_CONTEXTS": json.dumps(c.github.required_contexts),
            "STEP_TERMINATION_LOG": "/dev/termination-log",
            METRICS_DIR_ENV: METRICS_DIR,
            **POD_ALLOCATOR_ENV,
        }
        return [Env(name=k, value=v) for k, v in values.items()]

    def retry(self) -> RetryStrategy:
        """Retry pod errors and exit 75 (infrastructure) with backoff; data and config errors are final."""
        return RetryStrategy(
            limit=str(self.config.workflow.retry_limit),
            retry_policy="Always",
            expression=RETRY_EXPRESSION,
            backoff=m.Backoff(duration="5s", factor="2", max_duration="2m"),
        )

    def script(
        self,
        name: str,
        source: Callable[..., Any],
        mounts: Iterable[Mount] = (),
        memory: str = "256Mi",
        **kw: Any,
    ) -> Script:
        """A runner-mode script for the step function ``source``, mounting only ``mounts`` (and scratch).

        Every step counts its failed attempts in ``release_step_failures_total{step, phase}``; ``metrics`` adds
        the step's own.
        """
        failures = Counter(
            name="release_step_failures_total",
            help="Step attempts that did not succeed, by step and phase",
            labels=[Label(key="step", value=name), Label(key="phase", value="{{status}}")],
            when="{{status}} == Failed || {{status}} == Error",
            value="1",
        )
        kw["metrics"] = [*kw.get("metrics", []), failures]
        env: list[Any] = self.settings_env()
        volumes: list[Any] = []
        for mount in (*mounts, self.mounts.scratch):
            env += mount.env
            volumes += mount.volumes
        return Script(
            name=name,
            source=source,
            constructor="runner",
            image=self.config.image.ref,
            image_pull_policy=self.config.image.pull_policy,
            env=env,
            volumes=volumes,
            security_context=container_security_context(),
            retry_strategy=self.retry(),
            resources=Resources(cpu_request="100m", memory_request=memory, memory_limit=_double(memory)),
            **kw,
        )


__all__ = [
    "POD_ALLOCATOR_ENV",
    "RETRY_EXPRESSION",
    "RUNNER_UID",
    "Scripts",
    "container_security_context",
    "pod_security_context",
]
