"""The ``release-data-prep`` WorkflowTemplate, its preview-cleanup sibling, and the registrations ConfigMap."""

from itertools import pairwise
from typing import Any

from hera.workflows import DAG, Parameter, Step, Steps, Task, WorkflowTemplate
from hera.workflows import models as m

from pipelines.config import Config
from pipelines.parameters import (
    CLEANUP_PARAMETERS,
    CLEANUP_TEMPLATE,
    FORK_PARAMETERS,
    FORK_TEMPLATE,
    RELEASE_PARAMETERS,
)
from pipelines.resources import PART_OF, metrics
from pipelines.resources.mounts import (
    REGISTRATIONS_KEY,
    registration_configmap_names,
    registration_shards,
    workflow_parameter,
)
from pipelines.resources.scripts import Scripts, pod_security_context
from steps import deploy, release, report
from steps.runtime.labels import MANAGED_BY_LABEL, RELEASE_RUNS, REPO_LABEL_EXPRESSION

LABEL_PREFIX = "gitops-status-matrix"
_REPO_MUTEX = "sprig.replace('/', '.', workflow.parameters.repo)"


def _task(node: Step | Task | None) -> Task:
    """Inside a DAG context Hera returns a ``Task``; narrow the union its call signature declares."""
    if not isinstance(node, Task):
        raise TypeError(f"expected a DAG task, got {node!r}")
    return node


def _arguments_of(order: dict[str, str]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Step arguments from the workflow's parameters: all of them, the commit (repo, sha), the GitHub ids."""
    p = {name.replace("-", "_"): workflow_parameter(name) for name in order}
    return p, {"repo": p["repo"], "sha": p["sha"]}, {"installation_id": p["installation_id"], "app_id": p["app_id"]}


def _workflow_spec(config: Config) -> dict[str, Any]:
    w = config.workflow
    return {
        "service_account_name": w.service_account,
        "active_deadline_seconds": w.active_deadline_seconds,
        "pod_gc": m.PodGC(strategy="OnPodSuccess"),
        "ttl_strategy": m.TTLStrategy(
            seconds_after_success=w.ttl_after_success_seconds, seconds_after_failure=w.ttl_after_failure_seconds
        ),
        "security_context": pod_security_context(),
    }


def _labels(*, fork: bool = False) -> m.WorkflowMetadata:
    # The reconciler lists runs by the managed-by label (RUN_SELECTOR), forks' runs included.
    event = "'pull_request'" if fork else "workflow.parameters.event"
    return m.WorkflowMetadata(
        labels={MANAGED_BY_LABEL: RELEASE_RUNS},
        labels_from={
            # Valid for every legal repository name (steps.runtime.labels): 63 characters, alphanumeric ends.
            f"{LABEL_PREFIX}/repo": m.LabelValueFrom(expression=REPO_LABEL_EXPRESSION),
            f"{LABEL_PREFIX}/sha": m.LabelValueFrom(expression="sprig.trunc(7, workflow.parameters.sha)"),
            f"{LABEL_PREFIX}/event": m.LabelValueFrom(expression=event),
            f"{LABEL_PREFIX}/pr": m.LabelValueFrom(expression="workflow.parameters['pr-number']"),
        },
    )


def _release_defaults(config: Config) -> dict[str, str]:
    defaults = dict(RELEASE_PARAMETERS)
    if config.argocd.deployment_reporter == "notifications":
        defaults["deploy"] = "false"  # Argo CD notifications write the deployment statuses instead
    return defaults


def _mutex(name: str) -> m.Synchronization:
    return m.Synchronization(mutexes=[m.Mutex(name=name)])


def release_template(config: Config) -> WorkflowTemplate:
    """The ``release-data-prep`` WorkflowTemplate."""
    scripts = Scripts(config)
    mount = scripts.mounts
    p, who, github_ids = _arguments_of(RELEASE_PARAMETERS)
    trigger = {"event": p["event"], "ref": p["ref"], "pr_number": p["pr_number"]}

    pending = scripts.script(
        "report-pending", report.report_pending, [mount.github_app, mount.registrations_if_present]
    )
    fetch = scripts.script("fetch", release.fetch, [mount.github_app, mount.s3, mount.registrations], memory="512Mi")
    check_metadata = scripts.script("check-metadata", release.check_metadata, [mount.s3])
    check_table = scripts.script("check-table", release.check_table, [mount.s3], memory="1Gi")
    publish = scripts.script("publish", release.publish, [mount.s3], memory="1Gi")
    # The App key for one read (compare): the registry's latest pointer only moves forward.
    register = scripts.script("register", release.register, [mount.github_app, mount.s3, mount.registrations])
    plan = scripts.script("plan-deployments", deploy.plan_deployments, [mount.registrations])
    lead_outputs, lead_metrics = metrics.deployment_lead_time()
    deploy_environment = scripts.script(
        "deploy-environment",
        deploy.deploy_environment,
        # S3 for the run workspace only: the outcome record the final status reads (superseded or not).
        [mount.github_app, mount.argocd, mount.s3, mount.registrations],
        synchronization=_mutex(
            f"{{{{={_REPO_MUTEX} + '.' + sprig.replace('/', '-', inputs.parameters.environment)}}}}"
        ),
        outputs=lead_outputs,
        metrics=lead_metrics,
    )
    # The exit handler needs nothing but the App key: S3 (for the summary's wording) is an optional mount.
    final_outputs, final_metrics = metrics.final_status()
    final = scripts.script(
        "report-final",
        report.report_final,
        [mount.github_app, mount.s3, mount.registrations_if_present],
        outputs=final_outputs,
        metrics=final_metrics,
    )
    summary = scripts.script(
        "report-pr-summary",
        report.report_pr_summary,
        [mount.github_app, mount.s3, mount.registrations],
        # One writer per PR at a time, so two runs never both create the summary comment.
        synchronization=_mutex(f"{{{{={_REPO_MUTEX}}}}}.pr-summary"),
    )

    with WorkflowTemplate(
        name=config.workflow.template_name,
        namespace=config.argo.namespace,
        entrypoint="main",
        on_exit="exit-handler",
        arguments=[Parameter(name=k, value=v) for k, v in _release_defaults(config).items()],
        workflow_metadata=_labels(),
        labels=dict(PART_OF),
        metrics=metrics.run_duration(),
        **_workflow_spec(config),
    ) as template:
        with DAG(
            name="validate-tables", inputs=[Parameter(name="tables")], parallelism=config.workflow.table_parallelism
        ) as validate_tables:
            check_table(
                name="check-table",
                arguments={**who, "table": "{{item.name}}"},
                with_param="{{inputs.parameters.tables}}",
            )
        with Steps(
            name="deploy-environments", inputs=[Parameter(name="environments")], parallelism=1
        ) as deploy_environments:
            deploy_environment(
                name="deploy-environment",
                arguments={
                    **who,
                    **github_ids,
                    "environment": "{{item.environment}}",
                    "argocd_app": "{{item.argocd_app}}",
                    "url": "{{item.url}}",
                    "production": "{{item.production}}",
                    "transient": "{{item.transient}}",
                    "after": "{{item.after}}",
                    "workflow_name": "{{workflow.name}}",
                    "run_created": "{{workflow.creationTimestamp}}",
                },
                with_param="{{inputs.parameters.environments}}",
            )
        with DAG(name="main"):
            pending(
                name="report-pending",
                arguments={**who, **github_ids, "workflow_name": "{{workflow.name}}"},
                continue_on=m.ContinueOn(failed=True),
            )
            t_fetch = _task(fetch(name="fetch", arguments={**who, **github_ids, "data_path": p["data_path"]}))
            t_meta = _task(check_metadata(name="check-metadata", arguments=who))
            t_tables = _task(validate_tables(name="validate-tables", arguments={"tables": t_meta.result}))
            t_publish = _task(
                publish(name="publish", arguments={**who, **trigger, "workflow_name": "{{workflow.name}}"})
            )
            t_register = _task(
                register(name="register", arguments={**who, **trigger, **github_ids, "run_id": "{{workflow.uid}}"})
            )
            t_plan = _task(
                plan(
                    name="plan-deployments",
                    arguments={"repo": p["repo"], **trigger},
                    when=f"'{p['deploy']}' == 'true'",
                )
            )
            t_deploy = _task(deploy_environments(name="deploy-environments", arguments={"environments": t_plan.result}))
            # One link per statement: Hera types ``a >> b >> c`` as ``Task | list[Task]`` after the first link.
            for upstream, downstream in pairwise((t_fetch, t_meta, t_tables, t_publish, t_register, t_plan)):
                upstream >> downstream
            # Succeeded, not a bare dependency: that also accepts a Skipped plan (deploy=false), whose result is unset.
            t_plan.on_success(t_deploy)
        with Steps(name="exit-handler") as exit_handler:
            outcome = {"workflow_status": "{{workflow.status}}", "workflow_failures": "{{workflow.failures}}"}
            with exit_handler.parallel():
                final(
                    name="report-final",
                    arguments={
                        **who,
                        **github_ids,
                        **outcome,
                        "workflow_name": "{{workflow.name}}",
                        "run_created": "{{workflow.creationTimestamp}}",
                    },
                )
                summary(
                    name="report-pr-summary",
                    arguments={**who, **github_ids, **outcome, "event": p["event"], "pr_number": p["pr_number"]},
                    # The commit status is the verdict; a comment GitHub refused must not turn it into a failure.
                    continue_on=m.ContinueOn(failed=True),
                )
    return template


def cleanup_template(config: Config) -> WorkflowTemplate:
    """``release-preview-cleanup``: on a closed PR, mark its preview deployments inactive."""
    scripts = Scripts(config)
    p = {name.replace("-", "_"): workflow_parameter(name) for name in CLEANUP_PARAMETERS}
    deactivate = scripts.script(
        "deactivate-preview", deploy.deactivate_preview, [scripts.mounts.github_app, scripts.mounts.registrations]
    )
    with WorkflowTemplate(
        name=CLEANUP_TEMPLATE,
        namespace=config.argo.namespace,
        entrypoint="main",
        arguments=[Parameter(name=k, value=v) for k, v in CLEANUP_PARAMETERS.items()],
        labels=dict(PART_OF),
        **_workflow_spec(config),
    ) as template:
        with Steps(name="main"):
            deactivate(name="deactivate-preview", arguments=p)
    return template


def fork_template(config: Config) -> WorkflowTemplate:
    """``release-data-validate-fork``: a fork's pull request, checked in one pod with no S3 and no deployment."""
    scripts = Scripts(config)
    mount = scripts.mounts
    p, who, github_ids = _arguments_of(FORK_PARAMETERS)
    reporter = [mount.github_app, mount.registrations_if_present]
    pending = scripts.script("report-pending", report.report_pending, reporter)
    check = scripts.script(
        "validate-fork", release.validate_fork, [mount.github_app, mount.registrations], memory="1Gi"
    )
    final = scripts.script("report-final", report.report_final, reporter)
    with WorkflowTemplate(
        name=FORK_TEMPLATE,
        namespace=config.argo.namespace,
        entrypoint="main",
        on_exit="exit-handler",
        arguments=[Parameter(name=k, value=v) for k, v in FORK_PARAMETERS.items()],
        workflow_metadata=_labels(fork=True),
        labels=dict(PART_OF),
        **_workflow_spec(config),
    ) as template:
        with DAG(name="main"):
            pending(
                name="report-pending",
                arguments={**who, **github_ids, "workflow_name": "{{workflow.name}}"},
                continue_on=m.ContinueOn(failed=True),
            )
            check(name="validate-fork", arguments={**who, **github_ids, "data_path": p["data_path"]})
        with Steps(name="exit-handler"):
            outcome = {"workflow_status": "{{workflow.status}}", "workflow_failures": "{{workflow.failures}}"}
            final(name="report-final", arguments={**who, **github_ids, **outcome})
    return template


def registrations_configmaps(config: Config) -> list[dict[str, Any]]:
    """The ConfigMaps steps read registrations from (installations, environments, previews, data paths)."""
    names = registration_configmap_names(config)
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": config.argo.namespace, "labels": dict(PART_OF)},
            "data": {REGISTRATIONS_KEY: shard},
        }
        for name, shard in zip(names, registration_shards(config), strict=True)
    ]


def resources(config: Config) -> list[dict[str, Any]]:
    """Everything this module renders, as plain dicts."""
    return [
        release_template(config).to_dict(),
        cleanup_template(config).to_dict(),
        *([fork_template(config).to_dict()] if any(r.forks == "validate" for r in config.repo_registrations) else []),
        *registrations_configmaps(config),
    ]


__all__ = ["cleanup_template", "fork_template", "registrations_configmaps", "release_template", "resources"]
