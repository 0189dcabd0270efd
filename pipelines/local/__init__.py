"""Run a rendered Argo WorkflowTemplate on this machine, each script step a subprocess as in a pod."""

from pipelines.local.depends import parse_depends
from pipelines.local.executor import LocalRun, run_workflow
from pipelines.local.expressions import (
    FUNCTIONS,
    ExpressionError,
    evaluate,
    evaluate_when,
    expression_vars,
    parse_expression,
)
from pipelines.local.goformat import fnv32a, generate_name, go_format, go_json, go_quote
from pipelines.local.model import (
    DEADLINE_MESSAGE,
    DEADLINE_POD_MESSAGE,
    FAILED,
    FINAL,
    STOP_MESSAGE,
    TERMINATE_MESSAGE,
    Node,
    RunOptions,
    RunResult,
)
from pipelines.local.plan import Row, plan_rows
from pipelines.local.support import LocalRunRefused, check_supported
from pipelines.local.variables import substitute

__all__ = [
    "DEADLINE_MESSAGE",
    "DEADLINE_POD_MESSAGE",
    "FAILED",
    "FINAL",
    "FUNCTIONS",
    "STOP_MESSAGE",
    "TERMINATE_MESSAGE",
    "ExpressionError",
    "LocalRun",
    "LocalRunRefused",
    "Node",
    "Row",
    "RunOptions",
    "RunResult",
    "check_supported",
    "evaluate",
    "evaluate_when",
    "expression_vars",
    "fnv32a",
    "generate_name",
    "go_format",
    "go_json",
    "go_quote",
    "parse_depends",
    "parse_expression",
    "plan_rows",
    "run_workflow",
    "substitute",
]
