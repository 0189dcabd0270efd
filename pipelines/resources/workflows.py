"""The ``release-data-prep`` WorkflowTemplate, its preview-cleanup sibling, and the registrations ConfigMap.

A WorkflowTemplate (https://argo-workflows.readthedocs.io/en/latest/workflow-templates/) whose script
steps run in Hera's runner mode (https://hera.readthedocs.io/en/stable/user-guides/script-runner-io/):
each pod runs ``python -m hera.workflows.runner -e steps.<module>:<function>`` from the runner image, so the
code in ``steps/`` is what runs, never inline source. Shape of a run:

- ``report-pending`` starts at once, beside ``fetch``: nothing slow comes before the PR shows feedback;
- fetch -> check-metadata -> validate-tables (one pod per table, ``withParam``, bounded parallelism) ->
  publish (Parquet, statistics, manifest last) -> register;
- plan-deployments -> deploy-environments (one at a time, a mutex per repository and environment);
- the exit handler receives ``{{workflow.status}}`` and ``{{workflow.failures}}`` as arguments and always
  posts the final commit status.

Secrets are never parameters: each step mounts only the Kubernetes Secrets it uses.
"""

import json
from typing import Any

from hera.workflows import (
    DAG,
    ConfigMapVolume,
    Env,
    Parameter,
    Resources,
    RetryStrategy,
    Script,
    SecretEnv,
    SecretVolume,
    Steps,
    Task,
    WorkflowTemplate,
)
from hera.workflows import models as m

from pipelines.config import Config
from pipelines.parameters import CLEANUP_PARAMETERS, CLEANUP_TEMPLATE, RELEASE_PARAMETERS
from pipelines.resources.secrets import ARGOCD_TOKEN_KEY, S3_KEYS
from steps import deploy, release, report
from steps.runtime.registrations import DEFAULT_REGISTRATIONS, dump_registrations

GITHUB_KEY_DIR = "/var/run/secrets/github-app"
ARGOCD_TOKEN_DIR = "/var/run/secrets/argocd"  # noqa: S105 - a mount path
REGISTRATIONS_CONFIGMAP = "release-data-prep-registrations"
# Exit code 75 (EX_TEMPFAIL) is what steps.runtime.step uses for infrastructure errors; pod errors retry too.
RETRY_EXPRESSION = "lastRetry.status == 'Error' || asInt(lastRetry.exitCode) == 75"


def _param(name: str) -> str:
    return "{{workflow.parameters.%s}}" % name  # noqa: UP031 - braces are Argo's, not format()'s


class _Parts:
    """Builds the pieces every template shares from the config (env, secret mounts, retries)."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def settings_env(self) -> list[Env]:
        c = self.config
        target = c.github.target_url_template.format(
            argo_ui=c.argo.ui_base, namespace=c.argo.namespace, workflow="{{workflow.name}}"
        )
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
        }
        return [Env(name=k, value=v) for k, v in values.items()]

    def github(self) -> tuple[list[Env], list[Any]]:
        secret = self.config.github.private_key_secret.format(app_id=_param("app-id"))
        key = self.config.github.private_key_secret_key
        volume = SecretVolume(
            name="github-app",
            secret_name=secret,
            mount_path=GITHUB_KEY_DIR,
            items=[m.KeyToPath(key=key, path="private-key")],
            default_mode=0o440,
        )
        return [Env(name="GITHUB_APP_PRIVATE_KEY_PATH", value=f"{GITHUB_KEY_DIR}/private-key")], [volume]

    def s3(self) -> tuple[list[Any], list[Any]]:
        s3 = self.config.s3
        root = f"s3://{s3.bucket}/{s3.prefix.strip('/')}".rstrip("/")
        env: list[Any] = [
            Env(name="RELEASE_STORE", value=root),
            Env(name="RELEASE_WORKSPACE", value=f"{root}/_runs/{{{{workflow.name}}}}"),
            Env(name="AWS_DEFAULT_REGION", value=s3.region),
            SecretEnv(name="AWS_ACCESS_KEY_ID", secret_name=s3.credentials_secret, secret_key=S3_KEYS[0]),
            SecretEnv(name="AWS_SECRET_ACCESS_KEY", secret_name=s3.credentials_secret, secret_key=S3_KEYS[1]),
        ]
        if s3.endpoint_url:
            env.append(Env(name="AWS_ENDPOINT_URL_S3", value=s3.endpoint_url))
        return env, []

    def argocd(self) -> tuple[list[Env], list[Any]]:
        a = self.config.argocd
        env = [
            Env(name="ARGOCD_SERVER_URL", value=a.server_url),
            Env(name="ARGOCD_UI_URL", value=a.ui_base),
            Env(name="ARGOCD_TOKEN_FILE", value=f"{ARGOCD_TOKEN_DIR}/token"),
            Env(name="ARGOCD_NAMESPACE", value=a.namespace),
            Env(name="ARGOCD_PROJECT", value=a.project),
            # Lets the step skip the look-up of an earlier attempt's deployment on a first attempt.
            Env(name="STEP_RETRIES", value="{{retries}}"),
            Env(name="ARGOCD_STABILITY_SECONDS", value=str(a.stability_seconds)),
            Env(name="ARGOCD_TIMEOUT_SECONDS", value=str(a.timeout_seconds)),
            Env(name="ARGOCD_INSECURE", value="false" if a.verify_tls else "true"),
        ]
        if a.ca_bundle:
            env.append(Env(name="ARGOCD_CA_BUNDLE", value=a.ca_bundle))
        volume = SecretVolume(
            name="argocd-token",
            secret_name=a.token_secret,
            mount_path=ARGOCD_TOKEN_DIR,
            items=[m.KeyToPath(key=ARGOCD_TOKEN_KEY, path="token")],
        )
        return env, [volume]

    def registrations(self) -> tuple[list[Env], list[Any]]:
        directory = DEFAULT_REGISTRATIONS.rsplit("/", 1)[0]
        # Hera names the ConfigMap after the volume.
        volume = ConfigMapVolume(name=REGISTRATIONS_CONFIGMAP, mount_path=directory)
        return [Env(name="GSM_REGISTRATIONS", value=DEFAULT_REGISTRATIONS)], [volume]

    def retry(self) -> RetryStrategy:
        return RetryStrategy(
            limit=str(self.config.workflow.retry_limit),
            retry_policy="Always",
            expression=RETRY_EXPRESSION,
            backoff=m.Backoff(duration="5s", factor="2", max_duration="2m"),
        )

    def script(self, name: str, source: Any, needs: tuple[str, ...], memory: str = "256Mi", **kw: Any) -> Script:
        env: list[Any] = self.settings_env()
        volumes: list[Any] = []
        for need in needs:
            extra_env, extra_volumes = getattr(self, need)()
            env += extra_env
            volumes += extra_volumes
        return Script(
            name=name,
            source=source,
            constructor="runner",
            image=self.config.image.ref,
            image_pull_policy=self.config.image.pull_policy,
            env=env,
            volumes=volumes or None,
            retry_strategy=self.retry(),
            resources=Resources(cpu_request="100m", memory_request=memory, memory_limit=_double(memory)),
            **kw,
        )


def _double(quantity: str) -> str:
    number = int(quantity.rstrip("MiG"))
    return f"{number * 2}{quantity.lstrip('0123456789')}"


def _workflow_spec(config: Config) -> dict[str, Any]:
    w = config.workflow
    return {
        "service_account_name": w.service_account,
        "active_deadline_seconds": w.active_deadline_seconds,
        "pod_gc": m.PodGC(strategy="OnPodSuccess"),
        "ttl_strategy": m.TTLStrategy(
            seconds_after_success=w.ttl_after_success_seconds, seconds_after_failure=w.ttl_after_failure_seconds
        ),
        "security_context": m.PodSecurityContext(run_as_non_root=True, run_as_user=10001, fs_group=10001),
    }


def _labels() -> m.WorkflowMetadata:
    prefix = "gitops-status-matrix"
    return m.WorkflowMetadata(
        labels={f"{prefix}/managed-by": "release-data-prep"},
        labels_from={
            f"{prefix}/repo": m.LabelValueFrom(expression="sprig.replace('/', '.', workflow.parameters.repo)"),
            f"{prefix}/sha": m.LabelValueFrom(expression="sprig.trunc(7, workflow.parameters.sha)"),
            f"{prefix}/event": m.LabelValueFrom(expression="workflow.parameters.event"),
            f"{prefix}/pr": m.LabelValueFrom(expression="workflow.parameters['pr-number']"),
        },
    )


def _release_defaults(config: Config) -> dict[str, str]:
    defaults = dict(RELEASE_PARAMETERS)
    if config.argocd.deployment_reporter == "notifications":
        defaults["deploy"] = "false"  # Argo CD notifications write the deployment statuses instead
    return defaults


def release_template(config: Config) -> WorkflowTemplate:
    """The ``release-data-prep`` WorkflowTemplate."""
    parts = _Parts(config)
    p = {name.replace("-", "_"): _param(name) for name in RELEASE_PARAMETERS}
    who = {"repo": p["repo"], "sha": p["sha"]}
    github_ids = {"installation_id": p["installation_id"], "app_id": p["app_id"]}
    trigger = {"event": p["event"], "ref": p["ref"], "pr_number": p["pr_number"]}

    pending = parts.script("report-pending", report.report_pending, ("github",))
    fetch = parts.script("fetch", release.fetch, ("github", "s3"), memory="512Mi")
    check_metadata = parts.script("check-metadata", release.check_metadata, ("s3",))
    check_table = parts.script("check-table", release.check_table, ("s3",), memory="1Gi")
    publish = parts.script("publish", release.publish, ("s3",), memory="1Gi")
    register = parts.script("register", release.register, ("s3",))
    plan = parts.script("plan-deployments", deploy.plan_deployments, ("registrations",))
    deploy_env = parts.script(
        "deploy-environment",
        deploy.deploy_environment,
        ("github", "argocd", "registrations"),
        synchronization=m.Synchronization(
            mutexes=[
                m.Mutex(
                    name="{{=sprig.replace('/', '.', workflow.parameters.repo)"
                    " + '.' + sprig.replace('/', '-', inputs.parameters.environment)}}"
                )
            ]
        ),
    )
    final = parts.script("report-final", report.report_final, ("github", "s3"))
    summary = parts.script(
        "report-pr-summary",
        report.report_pr_summary,
        ("github", "s3", "registrations"),
        # One writer per PR at a time, so two runs never both create the summary comment.
        synchronization=m.Synchronization(
            mutexes=[m.Mutex(name="{{=sprig.replace('/', '.', workflow.parameters.repo)}}.pr-summary")]
        ),
    )

    with WorkflowTemplate(
        name=config.workflow.template_name,
        namespace=config.argo.namespace,
        entrypoint="main",
        on_exit="exit-handler",
        arguments=[Parameter(name=k, value=v) for k, v in _release_defaults(config).items()],
        workflow_metadata=_labels(),
        labels={"app.kubernetes.io/part-of": "gitops-status-matrix"},
        **_workflow_spec(config),
    ) as template:
        with DAG(
            name="validate-tables", inputs=[Parameter(name="tables")], parallelism=config.workflow.table_parallelism
        ):
            check_table(
                name="check-table",
                arguments={**who, "table": "{{item.name}}"},
                with_param="{{inputs.parameters.tables}}",
            )
        with Steps(name="deploy-environments", inputs=[Parameter(name="environments")], parallelism=1):
            deploy_env(
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
                },
                with_param="{{inputs.parameters.environments}}",
            )
        with DAG(name="main"):
            t_pending = pending(
                name="report-pending",
                arguments={**who, **github_ids, "workflow_name": "{{workflow.name}}"},
                continue_on=m.ContinueOn(failed=True),
            )
            t_fetch = fetch(name="fetch", arguments={**who, **github_ids, "data_path": p["data_path"]})
            t_meta = check_metadata(name="check-metadata", arguments=who)
            t_tables = Task(
                name="validate-tables",
                template="validate-tables",
                arguments={"tables": "{{tasks.check-metadata.outputs.result}}"},
            )
            t_publish = publish(
                name="publish",
                arguments={**who, **trigger, "workflow_name": "{{workflow.name}}"},
            )
            t_register = register(
                name="register",
                arguments={**who, **trigger, "run_id": "{{workflow.uid}}"},
            )
            t_plan = plan(
                name="plan-deployments",
                arguments={"repo": p["repo"], **trigger},
                when="'{{workflow.parameters.deploy}}' == 'true'",
            )
            t_deploy = Task(
                name="deploy-environments",
                template="deploy-environments",
                arguments={"environments": "{{tasks.plan-deployments.outputs.result}}"},
            )
            t_fetch >> t_meta >> t_tables >> t_publish >> t_register >> t_plan
            # Not a bare dependency: that also accepts a Skipped plan (deploy=false), whose result is unset.
            t_deploy.depends = "plan-deployments.Succeeded"
            assert t_pending is not None
        with Steps(name="exit-handler") as exit_handler:
            outcome = {"workflow_status": "{{workflow.status}}", "workflow_failures": "{{workflow.failures}}"}
            with exit_handler.parallel():
                final(name="report-final", arguments={**who, **github_ids, **outcome})
                summary(
                    name="report-pr-summary",
                    arguments={**who, **github_ids, **outcome, "event": p["event"], "pr_number": p["pr_number"]},
                    # The commit status is the verdict; a comment GitHub refused must not turn it into a failure.
                    continue_on=m.ContinueOn(failed=True),
                )
    return template


def cleanup_template(config: Config) -> WorkflowTemplate:
    """``release-preview-cleanup``: on a closed PR, mark its preview deployments inactive."""
    parts = _Parts(config)
    p = {name.replace("-", "_"): _param(name) for name in CLEANUP_PARAMETERS}
    deactivate = parts.script("deactivate-preview", deploy.deactivate_preview, ("github", "registrations"))
    with WorkflowTemplate(
        name=CLEANUP_TEMPLATE,
        namespace=config.argo.namespace,
        entrypoint="main",
        arguments=[Parameter(name=k, value=v) for k, v in CLEANUP_PARAMETERS.items()],
        labels={"app.kubernetes.io/part-of": "gitops-status-matrix"},
        **_workflow_spec(config),
    ) as template:
        with Steps(name="main"):
            deactivate(name="deactivate-preview", arguments=p)
    return template


def registrations_configmap(config: Config) -> dict[str, Any]:
    """The ConfigMap steps read registrations from (environments, previews, data paths)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": REGISTRATIONS_CONFIGMAP,
            "namespace": config.argo.namespace,
            "labels": {"app.kubernetes.io/part-of": "gitops-status-matrix"},
        },
        "data": {"registrations.yaml": dump_registrations(config.repo_registrations)},
    }


def resources(config: Config) -> list[dict[str, Any]]:
    """Everything this module renders, as plain dicts."""
    return [
        release_template(config).to_dict(),
        cleanup_template(config).to_dict(),
        registrations_configmap(config),
    ]


__all__ = ["cleanup_template", "registrations_configmap", "release_template", "resources"]
