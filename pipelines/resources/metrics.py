"""The Prometheus metrics the templates emit through Argo's own ``metrics`` (names and labels: docs/ops.md)."""

from __future__ import annotations

from hera.workflows import Histogram, Label, Parameter
from hera.workflows import models as m

from pipelines.resources.scripts import METRICS_DIR

# Seconds; a run's deadline is an hour by default, an Argo CD wait 15 minutes, a promotion comes after both.
RUN_BUCKETS = [10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0]
LEAD_BUCKETS = [30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0]


def _output(name: str, default: str) -> Parameter:
    # A step that ends before writing it (or fails) leaves the default, which the metrics' `when` skips.
    return Parameter(name=name, value_from=m.ValueFrom(path=f"{METRICS_DIR}/{name}", default=default))


def run_duration() -> list[Histogram]:
    """Workflow level: the run's duration by outcome and trigger (both a handful of values)."""
    return [
        Histogram(
            name="release_run_duration_seconds",
            help="Duration of release-data-prep runs, by outcome and event",
            labels=[
                Label(key="outcome", value="{{workflow.status}}"),
                Label(key="event", value="{{workflow.parameters.event}}"),
            ],
            buckets=list(RUN_BUCKETS),
            value="{{workflow.duration}}",
        )
    ]


def _from_outputs(name: str, help_text: str, label: tuple[str, str], value: str, buckets: list[float]) -> Histogram:
    """A template histogram of the step's output ``value`` labelled by its output ``label[1]``."""
    return Histogram(
        name=name,
        help=help_text,
        labels=[Label(key=label[0], value=f"{{{{outputs.parameters.{label[1]}}}}}")],
        when=f"{{{{outputs.parameters.{value}}}}} >= 0",
        buckets=list(buckets),
        value=f"{{{{outputs.parameters.{value}}}}}",
    )


def final_status() -> tuple[list[Parameter], list[Histogram]]:
    """report-final: from the run's start (its ``pending``) to the final commit status, by the state posted."""
    outputs = [_output("pending-to-final-seconds", "-1"), _output("final-state", "none")]
    help_text = "Seconds from the pending commit status to the final one, by final state"
    metric = _from_outputs(
        "release_pending_to_final_seconds", help_text, ("state", "final-state"), "pending-to-final-seconds", RUN_BUCKETS
    )
    return outputs, [metric]


def deployment_lead_time() -> tuple[list[Parameter], list[Histogram]]:
    """deploy-environment: from the push reaching the project to the deployment's ``success``, by environment."""
    outputs = [_output("lead-time-seconds", "-1"), _output("environment-class", "none")]
    help_text = "Seconds from the push to a successful deployment, by environment (previews as one)"
    metric = _from_outputs(
        "release_deployment_lead_time_seconds",
        help_text,
        ("environment", "environment-class"),
        "lead-time-seconds",
        LEAD_BUCKETS,
    )
    return outputs, [metric]


__all__ = ["LEAD_BUCKETS", "RUN_BUCKETS", "deployment_lead_time", "final_status", "run_duration"]
