"""The ``release-status-reconciler`` CronWorkflow, and the ServiceAccount it runs as with the least it needs."""

from __future__ import annotations

from typing import Any

from hera.workflows import Counter, CronWorkflow, Env, Label, Parameter, Steps
from hera.workflows import models as m

from pipelines.config import Config
from pipelines.resources import PART_OF
from pipelines.resources.mounts import Mount
from pipelines.resources.scripts import METRICS_DIR, Scripts, pod_security_context
from steps import reconcile
from steps.runtime.labels import MANAGED_BY_LABEL

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path
#: What a pass repairs, each counted by ``release_reconciler_repairs_total{kind=...}`` (steps.reconcile).
REPAIR_KINDS = ("statuses", "deployments", "workspaces", "uploads")
#: Time after the repair budget for listing and storage housekeeping before Argo stops the pod.
DEADLINE_MARGIN_SECONDS = 300


def app_ids(config: Config) -> list[int]:
    """Every GitHub App id a registration reports through (the pod mounts each App's key)."""
    ids = {config.app_id_for(reg) for reg in config.repo_registrations} | {config.github.app_id}
    return sorted(i for i in ids if i is not None)


def _argo_server(config: Config) -> Mount:
    c = config
    target = c.target_url("{workflow}")  # the step fills in each run's name
    env = [
        Env(name="ARGO_SERVER_URL", value=c.reconciler.argo_server_url),
        Env(name="ARGO_NAMESPACE", value=c.argo.namespace),
        Env(name="ARGO_TOKEN_FILE", value=SERVICE_ACCOUNT_TOKEN),
        Env(name="ARGO_INSECURE", value="false" if c.argo.verify_tls else "true"),
        Env(name="RECONCILER_TARGET_URL_TEMPLATE", value=target),
    ]
    if c.argo.ca_bundle:
        env.append(Env(name="ARGO_CA_BUNDLE", value=c.argo.ca_bundle))
    return Mount("argo-server", tuple(env))


def _repair_metrics() -> list[Counter]:
    # One counter per kind, fed by the step's output files; no repository or sha label (low cardinality).
    return [
        Counter(
            name="release_reconciler_repairs_total",
            help="What the release-status reconciler repaired, by kind",
            labels=[Label(key="kind", value=kind)],
            when="{{status}} == Succeeded",
            value=f"{{{{outputs.parameters.repaired-{kind}}}}}",
        )
        for kind in REPAIR_KINDS
    ]


def reconciler_workflow(config: Config) -> CronWorkflow:
    """The CronWorkflow: one pod per pass, ``concurrencyPolicy: Forbid`` so passes never overlap."""
    r = config.reconciler
    scripts = Scripts(config)
    mounts = scripts.mounts
    step = scripts.script(
        "reconcile",
        reconcile.reconcile,
        [mounts.github_apps(app_ids(config)), mounts.s3_shared, mounts.registrations_if_present, _argo_server(config)],
        outputs=[
            Parameter(
                name=f"repaired-{kind}", value_from=m.ValueFrom(path=f"{METRICS_DIR}/repaired-{kind}", default="0")
            )
            for kind in REPAIR_KINDS
        ],
        metrics=_repair_metrics(),
    )
    with CronWorkflow(
        name=r.name,
        namespace=config.argo.namespace,
        labels=dict(PART_OF),
        schedules=[r.schedule],
        timezone=r.timezone,
        concurrency_policy="Forbid",
        starting_deadline_seconds=60,
        successful_jobs_history_limit=1,
        failed_jobs_history_limit=3,
        entrypoint="main",
        service_account_name=r.service_account,
        active_deadline_seconds=r.budget_seconds + DEADLINE_MARGIN_SECONDS,
        pod_gc=m.PodGC(strategy="OnPodSuccess"),
        ttl_strategy=m.TTLStrategy(seconds_after_success=3600, seconds_after_failure=86400),
        security_context=pod_security_context(),
        workflow_metadata=m.WorkflowMetadata(labels={MANAGED_BY_LABEL: r.name}),
    ) as cron:
        with Steps(name="main"):
            step(
                name="reconcile",
                arguments={
                    "look_back": r.look_back,
                    "max_repairs": str(r.max_repairs),
                    "budget_seconds": str(r.budget_seconds),
                    "dry_run": "true" if r.dry_run else "false",
                },
            )
    return cron


def resources(config: Config) -> list[dict[str, Any]]:
    """The CronWorkflow, when ``reconciler.enabled`` (its RBAC is in ``pipelines.resources.rbac``)."""
    return [reconciler_workflow(config).to_dict()] if config.reconciler.enabled else []


__all__ = ["REPAIR_KINDS", "app_ids", "reconciler_workflow", "resources"]
