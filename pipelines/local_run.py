"""Run a rendered Argo WorkflowTemplate on this machine, each script step a subprocess as in a pod.

The input is the same resource Argo CD syncs (``manifests/workflows/workflowtemplate-*.yaml`` or the
in-memory result of ``pipelines.render``), not a parallel Python path: this module interprets the Argo
spec (https://argo-workflows.readthedocs.io/en/latest/fields/) the way the workflow controller does:

- ``dag`` templates (https://argo-workflows.readthedocs.io/en/latest/walk-through/dag/): ``depends`` /
  ``dependencies`` with Argo's expansion of a bare task name to ``(T.Succeeded || T.Skipped ||
  T.Daemoned)`` plus ``T.Failed`` / ``T.Errored`` when T has ``continueOn``; unmet dependencies mark a
  task Omitted; ``failFast`` (default true) stops scheduling new tasks after a failure; the DAG phase
  follows its target (leaf) tasks as ``assessDAGPhase`` does;
- ``steps`` templates: groups run in order, the steps of a group in parallel;
- ``withParam`` / ``withItems`` fan-out with ``{{item}}`` / ``{{item.key}}`` rendered as Argo's ``Item``
  does (strings JSON-escaped, numbers as written, lists and maps as JSON) and node names
  ``task(0:key:value)``, an empty list giving a Skipped node; a template's ``parallelism``
  bounds its running children (a thread pool per DAG/Steps node, so ``parallelism: 1`` runs in order);
- ``when`` (govaluate: bare words are strings, ``==``, ``!=``, ``&&``, ``||``, parentheses) and
  ``{{=expr}}`` tags (expr-lang: variables, ``+``, comparisons, ``asInt``, ``asFloat``, ``string``,
  ``sprig.replace|trunc|lower|upper|trim``);
- script templates in Hera's runner mode: ``command + args + [file holding the rendered source]`` runs
  in a per-pod working directory with the container ``env``; stdout (trimmed) is ``outputs.result``; a
  non-zero exit is Failed with the termination message (``terminationMessagePath``, default
  ``/dev/termination-log``, redirected to a file) or ``failed with exit code N``; a command that cannot
  start is Error;
- ``retryStrategy`` exactly as ``processNodeRetries``: ``retryPolicy`` (Always, OnFailure, OnError),
  ``limit``, ``expression`` over ``lastRetry.exitCode|status|duration|message``, ``{{retries}}`` (the
  attempt number) in the script, ``backoff`` (with
  ``fast_retries`` every wait is capped at ``max_backoff`` seconds, 0.2 by default);
- ``onExit`` with ``{{workflow.status}}`` (Succeeded, Failed, Error) and ``{{workflow.failures}}``, the
  Go-quoted JSON list of failed nodes (``displayName, message, templateName, phase, podName,
  finishedAt``; https://argo-workflows.readthedocs.io/en/latest/variables/#exit-handler);
- ``activeDeadlineSeconds`` of the workflow (running pods are killed, the exit handler still runs) and of
  a template; ``synchronization.mutexes`` as in-process locks; ``spec.parallelism`` as a pod limit.

Local stand-ins, never secrets from the YAML: a ``secretKeyRef`` env var takes the value of the local
stand-in of the same name (``RunOptions.secrets``, the process environment by default) or is omitted;
Secret volumes are not mounted, and an env var whose value points into one is likewise replaced by its
same-named stand-in (``GITHUB_APP_PRIVATE_KEY_PATH``, ``ARGOCD_TOKEN_FILE``) or omitted; ConfigMap
volumes are written from ``RunOptions.config_maps`` to the run directory and env paths into them are
rewritten. ``RunOptions.env`` is applied last (local stores, record files). A ``python`` command runs
``RunOptions.python``.

Everything else is refused before anything runs, naming the field (see ``check_supported``); fields that
do not change results locally (images, resources, security contexts, pod GC, TTL, labels, ...) are on an
explicit allow-list and ignored.
"""

import concurrent.futures as cf
import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUBMIT_HINT = "run it on a cluster with `python -m pipelines submit`"
FINAL = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})
FAILED = frozenset({"Failed", "Error"})
DEADLINE_POD_MESSAGE = "Pod was active on the node longer than the specified deadline"
DEADLINE_MESSAGE = "Step exceeded its deadline"
STOP_MESSAGE = "Stopped with strategy 'Stop'"
TERMINATE_MESSAGE = "Stopped with strategy 'Terminate'"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName suffix alphabet
_PASSTHROUGH_ENV = (
    "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)  # fmt: skip
_CONTINUE_ON = {"failed": "Failed", "error": "Error"}

# --- allow-lists: "run" fields are interpreted, "ignored" ones cannot change a local result -------
SPEC_RUN = {"entrypoint", "templates", "arguments", "onExit", "activeDeadlineSeconds", "parallelism"}
SPEC_IGNORED = {
    "serviceAccountName", "automountServiceAccountToken", "podGC", "ttlStrategy", "securityContext",
    "workflowMetadata", "podMetadata", "nodeSelector", "tolerations", "affinity", "imagePullSecrets",
    "priority", "podPriorityClassName", "schedulerName", "archiveLogs", "synchronization", "metrics",
    "podDisruptionBudget", "executor",
}  # fmt: skip
TEMPLATE_RUN = {
    "name", "inputs", "dag", "steps", "script", "retryStrategy", "parallelism", "synchronization", "volumes",
    "activeDeadlineSeconds", "failFast",
}  # fmt: skip
TEMPLATE_IGNORED = {
    "metadata", "nodeSelector", "tolerations", "affinity", "securityContext", "serviceAccountName",
    "automountServiceAccountToken", "priorityClassName", "schedulerName", "outputs",
}  # fmt: skip
SCRIPT_RUN = {"command", "args", "source", "env", "volumeMounts", "terminationMessagePath", "name"}
SCRIPT_IGNORED = {"image", "imagePullPolicy", "resources", "securityContext", "terminationMessagePolicy"}
TASK_KEYS = {
    "name", "template", "arguments", "dependencies", "depends", "when", "withParam", "withItems",
    "continueOn",
}  # fmt: skip
STEP_KEYS = TASK_KEYS - {"dependencies", "depends"}
RETRY_KEYS = {"limit", "retryPolicy", "expression", "backoff", "affinity"}
BACKOFF_KEYS = {"duration", "factor", "maxDuration", "cap"}
PARAM_KEYS = {"name", "value", "default", "description", "enum"}
WORKFLOW_VARS = {
    "name", "namespace", "uid", "serviceAccountName", "mainEntrypoint", "creationTimestamp", "status",
    "failures", "parameters",
}  # fmt: skip
RETRY_VARS = {"exitCode", "status", "duration", "message"}


class LocalRunRefused(Exception):
    """The workflow uses something the local runner does not implement; nothing ran.

    Attributes:
        problems: One line per unsupported field or invalid reference, each naming where it is.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ExpressionError(ValueError):
    """A ``when``, ``depends``, ``{{=expr}}`` or retry expression cannot be parsed or evaluated."""


# --- Go formatting, as the controller renders values ----------------------------------------------


def fnv32a(text: str) -> int:
    """The 32-bit FNV-1a hash Argo uses for node ids and pod names."""
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def _go_float(number: float) -> str:
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + int(exponent)  # position of the decimal point in the digit string
    prefix = "-" if sign else ""
    exp = point - 1
    if exp < -4 or exp >= 6:  # strconv 'g' with the shortest precision decides with precision 6
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def go_format(value: Any) -> str:
    """``fmt.Sprintf("%v", value)`` for a JSON-decoded scalar (JSON numbers are float64 in Go)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _go_float(float(value))
    return str(value)


def go_quote(text: str) -> str:
    r"""Go's ``strconv.Quote``: double quotes, backslash escapes, non-printable runes as ``\x``/``\u``."""
    out = ['"']
    named = {
        '"': '\\"',
        "\\": "\\\\",
        "\a": "\\a",
        "\b": "\\b",
        "\f": "\\f",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\v": "\\v",
    }
    for char in text:
        code = ord(char)
        if char in named:
            out.append(named[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif char == " " or char.isprintable():
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_json(value: Any) -> str:
    """``json.Marshal``: compact, HTML characters and U+2028/9 escaped, ``null`` for None."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def generate_name(prefix: str) -> str:
    """A workflow name like Kubernetes' ``generateName``: ``prefix-`` and 5 random characters."""
    return f"{prefix.rstrip('-')}-" + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def _parse_duration(text: Any) -> float:
    """Seconds of a Go duration (``5s``, ``2m30s``) or a plain number of seconds."""
    raw = str(text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        return float(raw)
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", raw)
    if not parts or "".join(a + b for a, b in parts) != raw:
        raise ExpressionError(f"{raw!r} is not a duration like 5s, 2m or 1h30m")
    return sum(float(amount) * units[unit] for amount, unit in parts)


# --- expressions: govaluate for `when`, a subset of expr-lang for {{=...}} and retry expressions --

_TOKEN_RE = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<num>\d+(?:\.\d+)?)(?![A-Za-z0-9_])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[()!<>+.,\[\]]))"
)
_WHEN_HELP = "local run evaluates ==, !=, &&, ||, quoted strings and parentheses in `when`"


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), token[1:-1])


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ExpressionError(f"asInt({value!r}): not a number")
    if isinstance(value, float):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise ExpressionError(f"asInt({value!r}): not an integer") from None


def _as_float(value: Any) -> float:
    try:
        return float(str(value).strip())
    except ValueError:
        raise ExpressionError(f"asFloat({value!r}): not a number") from None


def _trunc(length: Any, text: Any) -> str:
    n, s = _as_int(length), str(text)
    return s[:n] if n >= 0 else s[n:]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "asInt": _as_int,
    "asFloat": _as_float,
    "string": go_format,
    "sprig.replace": lambda old, new, text: str(text).replace(str(old), str(new)),
    "sprig.trunc": _trunc,
    "sprig.lower": lambda text: str(text).lower(),
    "sprig.upper": lambda text: str(text).upper(),
    "sprig.trim": lambda text: str(text).strip(),
}


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos, text = 0, text.rstrip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match or match.end() == pos:
            rest = text[pos:].strip()
            bad = rest.split()[0] if rest.split() else rest
            raise ExpressionError(
                f"cannot parse {bad[:30]!r} in {text!r} (quote values like 'a-b' or '1abc')"
            )
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


class _Parser:
    """Recursive descent over the tokens; ``mode`` is ``when`` (govaluate) or ``expr`` (expr-lang)."""

    def __init__(self, text: str, mode: str) -> None:
        self.text, self.mode = text, mode
        self.toks = _tokens(text)
        self.i = 0

    def parse(self) -> tuple:
        if not self.toks:
            raise ExpressionError("empty expression")
        node = self._or()
        if self.i != len(self.toks):
            raise ExpressionError(f"unexpected {self.toks[self.i][1]!r} in {self.text!r}")
        return node

    def _expr_only(self, what: str) -> None:
        if self.mode == "when":
            raise ExpressionError(f"{what} in when {self.text!r} is not supported; {_WHEN_HELP}")

    def _accept(self, *values: str) -> str | None:
        if (
            self.i < len(self.toks)
            and self.toks[self.i][0] in ("op", "name")
            and self.toks[self.i][1] in values
        ):
            self.i += 1
            return self.toks[self.i - 1][1]
        return None

    def _need(self) -> tuple[str, str]:
        if self.i >= len(self.toks):
            raise ExpressionError(f"{self.text!r} ends too early")
        self.i += 1
        return self.toks[self.i - 1]

    def _expect(self, value: str) -> None:
        if not self._accept(value):
            raise ExpressionError(f"expected {value!r} in {self.text!r}")

    def _or(self) -> tuple:
        left = self._and()
        while self._accept("||", *(("or",) if self.mode == "expr" else ())):
            left = ("bin", "||", left, self._and())
        return left

    def _and(self) -> tuple:
        left = self._not()
        while self._accept("&&", *(("and",) if self.mode == "expr" else ())):
            left = ("bin", "&&", left, self._not())
        return left

    def _not(self) -> tuple:
        if self._accept("!", *(("not",) if self.mode == "expr" else ())):
            self._expr_only("'!'")
            return ("not", self._not())
        return self._cmp()

    def _cmp(self) -> tuple:
        left = self._add()
        op = self._accept("==", "!=", "<", "<=", ">", ">=")
        if op:
            if op not in ("==", "!="):
                self._expr_only(repr(op))
            return ("bin", op, left, self._add())
        return left

    def _add(self) -> tuple:
        left = self._postfix()
        while self._accept("+"):
            self._expr_only("'+'")
            left = ("bin", "+", left, self._postfix())
        return left

    def _postfix(self) -> tuple:
        kind, value = self._need()
        if kind == "str":
            return ("lit", _unquote(value))
        if kind == "num":
            return ("lit", float(value) if "." in value else int(value))
        if (kind, value) == ("op", "("):
            inner = self._or()
            self._expect(")")
            return inner
        if kind != "name":
            raise ExpressionError(f"unexpected {value!r} in {self.text!r}")
        if value in ("true", "false"):
            return ("lit", value == "true")
        path = [value]
        while True:
            if self._accept("."):
                kind, value = self._need()
                if kind != "name":
                    raise ExpressionError(f"expected a name after '.' in {self.text!r}")
                path.append(value)
            elif self.i < len(self.toks) and self.toks[self.i] == ("op", "["):
                self._expr_only("'['")
                self.i += 1
                kind, value = self._need()
                if kind != "str":
                    raise ExpressionError(f"only ['quoted'] member access is supported in {self.text!r}")
                path.append(_unquote(value))
                self._expect("]")
            else:
                break
        if self._accept("("):
            self._expr_only("a function call")
            name = ".".join(path)
            if name not in FUNCTIONS:
                raise ExpressionError(
                    f"unknown function {name}() in {self.text!r}; known: {', '.join(FUNCTIONS)}"
                )
            args: list[tuple] = []
            if not self._accept(")"):
                args.append(self._or())
                while self._accept(","):
                    args.append(self._or())
                self._expect(")")
            return ("call", name, args)
        if self.mode == "when":
            return ("lit", ".".join(path))  # govaluate variables become strings in Argo's `when`
        return ("var", path)


def parse_expression(text: str, mode: str = "expr") -> tuple:
    """Parse ``text`` as a ``when`` (govaluate) or ``expr`` (expr-lang subset) expression.

    Raises:
        ExpressionError: a syntax error or anything outside the supported subset, naming it.
    """
    return _Parser(text, mode).parse()


def expression_vars(tree: tuple) -> list[list[str]]:
    """The variable paths an expression reads, e.g. ``[["workflow", "parameters", "repo"]]``."""
    if tree[0] == "var":
        return [tree[1]]
    children = tree[2] if tree[0] == "call" else [t for t in tree[1:] if isinstance(t, tuple)]
    return [path for child in children for path in expression_vars(child)]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(left: Any, right: Any) -> bool:
    if _is_number(left) and _is_number(right):
        return float(left) == float(right)
    return type(left) is type(right) and left == right


def _want_bool(value: Any, op: str) -> bool:
    if not isinstance(value, bool):
        raise ExpressionError(f"{op} needs booleans, got {value!r}")
    return value


def evaluate(tree: tuple, env: Mapping[str, Any]) -> Any:
    """Evaluate a parsed expression with nested-dict variables ``env``.

    Raises:
        ExpressionError: unknown variable, wrong types, or a failing function.
    """
    kind = tree[0]
    if kind == "lit":
        return tree[1]
    if kind == "var":
        value: Any = env
        for part in tree[1]:
            if not isinstance(value, Mapping) or part not in value:
                raise ExpressionError(f"unknown variable {'.'.join(tree[1])}")
            value = value[part]
        return value
    if kind == "call":
        args = [evaluate(arg, env) for arg in tree[2]]
        try:
            return FUNCTIONS[tree[1]](*args)
        except TypeError as exc:
            raise ExpressionError(f"{tree[1]}(): {exc}") from None
    if kind == "not":
        return not _want_bool(evaluate(tree[1], env), "!")
    op = tree[1]
    if op in ("||", "&&"):
        left = _want_bool(evaluate(tree[2], env), op)
        if left == (op == "||"):
            return left
        return _want_bool(evaluate(tree[3], env), op)
    left, right = evaluate(tree[2], env), evaluate(tree[3], env)
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    if _is_number(left) and _is_number(right):
        return {
            "+": left + right,
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[op]
    raise ExpressionError(f"cannot apply {op} to {left!r} and {right!r}")


def evaluate_when(text: str) -> bool:
    """Evaluate a rendered ``when`` condition as Argo does (govaluate, bare words as strings).

    Raises:
        ExpressionError: invalid syntax, an unsupported operator, or a non-boolean result.
    """
    value = evaluate(parse_expression(text, "when"), {})
    if not isinstance(value, bool):
        raise ExpressionError(f"when {text!r} evaluated to {value!r}, not a boolean")
    return value


def _nest(scope: Mapping[str, str]) -> dict[str, Any]:
    """Turn flat ``a.b.c`` keys into nested dicts, the way Argo builds the expr environment."""
    root: dict[str, Any] = {}
    for key in sorted(scope, key=lambda k: k.count(".")):
        parts = key.split(".")
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if not isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = scope[key]
    return root


# --- `depends` ------------------------------------------------------------------------------------

_DEPENDS_TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z]+)?)")
TASK_RESULTS = {
    "Succeeded",
    "Failed",
    "Errored",
    "Skipped",
    "Omitted",
    "Daemoned",
    "AnySucceeded",
    "AllFailed",
}


def parse_depends(text: str) -> tuple[tuple, set[str]]:
    """Parse a ``depends`` expression; returns the tree and the task names it mentions.

    Raises:
        ExpressionError: anything but task names, ``.Result`` suffixes, ``&&``, ``||``, ``!`` and parentheses.
    """
    tokens: list[str] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        match = _DEPENDS_TOKEN.match(text, pos)
        if not match:
            raise ExpressionError(f"cannot parse depends {text!r} at {text[pos : pos + 20]!r}")
        tokens.append(match.group(1))
        pos = match.end()
    names: set[str] = set()
    i = 0

    def atom() -> tuple:
        nonlocal i
        if i >= len(tokens):
            raise ExpressionError(f"depends {text!r} ends too early")
        tok = tokens[i]
        i += 1
        if tok == "!":
            return ("not", atom())
        if tok == "(":
            inner = disjunction()
            if i >= len(tokens) or tokens[i] != ")":
                raise ExpressionError(f"missing ')' in depends {text!r}")
            i += 1
            return inner
        if tok in (")", "&&", "||"):
            raise ExpressionError(f"unexpected {tok!r} in depends {text!r}")
        task, _, result = tok.partition(".")
        if result and result not in TASK_RESULTS:
            raise ExpressionError(
                f"depends {text!r}: unknown result .{result}; use one of {sorted(TASK_RESULTS)}"
            )
        names.add(task)
        return ("task", task, result)

    def conjunction() -> tuple:
        nonlocal i
        left = atom()
        while i < len(tokens) and tokens[i] == "&&":
            i += 1
            left = ("and", left, atom())
        return left

    def disjunction() -> tuple:
        nonlocal i
        left = conjunction()
        while i < len(tokens) and tokens[i] == "||":
            i += 1
            left = ("or", left, conjunction())
        return left

    tree = disjunction()
    if i != len(tokens):
        raise ExpressionError(f"unexpected {tokens[i]!r} in depends {text!r}")
    return tree, names


# --- the node tree --------------------------------------------------------------------------------


@dataclass
class Node:
    """One node of the run, shaped like Argo's ``status.nodes`` entries.

    Attributes:
        id: Argo's node id (``<workflow>-<fnv32a(name)>``).
        name: Full node name, e.g. ``wf.validate-tables.check-table(0:name:prices)(0)``.
        display_name: The last part of the name.
        type: DAG, Steps, StepGroup, TaskGroup, Retry, Pod or Skipped.
        template_name: The template it runs.
        row: Task/step names from the root, without fan-out and attempt suffixes (for progress views).
        phase: Pending, Running, Succeeded, Failed, Error, Skipped or Omitted.
        message: Why it failed, was skipped or is waiting.
        started_at: Epoch seconds when it started running.
        finished_at: Epoch seconds when it reached a final phase.
        result: ``outputs.result`` (script stdout, trimmed; a JSON list for fan-outs).
        exit_code: The process exit code of a Pod node.
        attempt: Retry attempt index of a Pod node under a Retry node.
        item: Fan-out index.
        expected: Number of fan-out items of a TaskGroup node.
        log_path: The file holding the step's stderr.
        pod_dir: The pod's working directory (inputs file, stdout, termination message).
        on_exit: Whether the node belongs to the exit handler.
    """

    id: str
    name: str
    display_name: str
    type: str
    template_name: str
    row: tuple[str, ...]
    phase: str = "Pending"
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    result: str | None = None
    exit_code: int | None = None
    attempt: int | None = None
    item: int | None = None
    expected: int | None = None
    log_path: Path | None = None
    pod_dir: Path | None = None
    on_exit: bool = False

    @property
    def fulfilled(self) -> bool:
        """Whether the node reached a final phase."""
        return self.phase in FINAL

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (to now while running); None before it starts."""
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


@dataclass(frozen=True)
class Row:
    """A step of the static plan: where a task or step sits, for progress views.

    Attributes:
        key: Task/step names from the root (``("validate-tables", "check-table")``); the exit handler's
            rows start with ``"onExit"``.
        template: The template the task runs.
        fan_out: Whether the task fans out with ``withParam`` / ``withItems``.
        leaf: Whether the template is a script (runs pods) rather than a DAG or Steps.
    """

    key: tuple[str, ...]
    template: str
    fan_out: bool
    leaf: bool


@dataclass
class RunOptions:
    """How to run locally.

    Attributes:
        name: The workflow name; generated from the template name when empty.
        runs_dir: Parent of the run directory (``runs_dir/NAME`` gets pods/, logs/, volumes/).
        python: Interpreter for a ``python`` / ``python3`` command.
        pythonpath: Prepended to ``PYTHONPATH`` of every step (default: the current directory).
        env: Applied last to every step's environment (local stores, record files, ...).
        secrets: Local stand-ins for Secret values, by env var name (default: ``os.environ``).
        config_maps: ConfigMap contents by name, for ConfigMap volumes.
        fast_retries: Cap every retry backoff at ``max_backoff`` seconds.
        max_backoff: The cap used with ``fast_retries``.
        max_workers: Concurrency of a DAG/Steps node without ``parallelism``.
    """

    name: str = ""
    runs_dir: Path = Path(".local-run/runs")
    python: str = sys.executable
    pythonpath: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] | None = None
    config_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    fast_retries: bool = True
    max_backoff: float = 0.2
    max_workers: int = 32


@dataclass(frozen=True)
class RunResult:
    """The end of a run.

    Attributes:
        name: The workflow name.
        phase: Succeeded, Failed or Error (what Argo would show for the workflow).
        message: The workflow message (the failing node's, a deadline, a stop).
        started_at: Epoch seconds.
        finished_at: Epoch seconds.
        run_dir: Where pods/, logs/ and volumes/ of this run are.
        nodes: Every node, in creation order.
        failures: ``{{workflow.failures}}`` as the exit handler received it, decoded.
        notes: Things the run did differently from a cluster (omitted secrets, ...).
    """

    name: str
    phase: str
    message: str
    started_at: float
    finished_at: float
    run_dir: Path
    nodes: list[Node]
    failures: list[dict[str, Any]]
    notes: list[str]


# --- static checks --------------------------------------------------------------------------------

_TAG_RE = re.compile(r"\{\{(.*?)\}\}", re.S)


def _tags(text: str) -> list[str]:
    return [m.group(1).strip() for m in _TAG_RE.finditer(text)]


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, child in value.items():
            yield from _strings(child, f"{where}.{key}")
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _strings(child, f"{where}[{i}]")


@dataclass(frozen=True)
class _Vars:
    """What a string may reference where it appears."""

    params: frozenset[str]
    inputs: frozenset[str] | None = None
    siblings: frozenset[str] = frozenset()
    sibling_kind: str = ""
    item: bool = False
    last_retry: bool = False
    retries: bool = False

    def allows(self, path: list[str]) -> bool:
        root, rest = path[0], path[1:]
        if path == ["retries"]:
            return self.retries
        if root == "workflow":
            if rest[:1] == ["parameters"]:
                return len(rest) == 1 or (len(rest) == 2 and rest[1] in self.params)
            return len(rest) == 1 and rest[0] in WORKFLOW_VARS
        if root == "inputs":
            return (
                self.inputs is not None
                and rest[:1] == ["parameters"]
                and (len(rest) == 1 or (len(rest) == 2 and rest[1] in self.inputs))
            )
        if root in ("tasks", "steps"):
            return (
                root == self.sibling_kind
                and len(rest) == 3
                and rest[0] in self.siblings
                and rest[1:] == ["outputs", "result"]
            )
        if root == "item":
            return self.item and len(rest) <= 1
        if root == "lastRetry":
            return self.last_retry and len(rest) == 1 and rest[0] in RETRY_VARS
        return False


class _Checker:
    """Collects every unsupported field and bad reference of a workflow spec."""

    def __init__(self, resource: Mapping[str, Any]) -> None:
        self.problems: list[str] = []
        self.resource = resource
        self.spec: Mapping[str, Any] = resource.get("spec") or {}
        self.templates = {
            t.get("name"): t for t in self.spec.get("templates") or [] if isinstance(t, Mapping)
        }
        args = (self.spec.get("arguments") or {}).get("parameters") or []
        self.params = frozenset(p.get("name", "") for p in args if isinstance(p, Mapping))

    def unsupported(self, where: str) -> None:
        self.problems.append(f"local run does not support {where}; {SUBMIT_HINT}")

    def invalid(self, where: str, problem: str) -> None:
        self.problems.append(f"{where}: {problem}")

    def keys(
        self, value: Any, where: str, run: set[str], ignored: frozenset[str] | set[str] = frozenset()
    ) -> None:
        if not isinstance(value, Mapping):
            self.invalid(where, f"expected a mapping, got {type(value).__name__}")
            return
        for key in value:
            if key not in run and key not in ignored:
                self.unsupported(f"{where}.{key}")

    def tags(self, text: str, where: str, allowed: _Vars) -> None:
        for tag in _tags(text):
            if tag.startswith("="):
                try:
                    paths = expression_vars(parse_expression(tag[1:], "expr"))
                except ExpressionError as exc:
                    self.unsupported(f"the expression {{{{{tag}}}}} in {where} ({exc})")
                    continue
            else:
                paths = [tag.split(".")]
            for path in paths:
                if not allowed.allows(path):
                    self.unsupported(f"the variable {'.'.join(path)} in {where}")

    def check(self) -> list[str]:
        kind = self.resource.get("kind")
        if kind not in ("WorkflowTemplate", "Workflow"):
            self.invalid("kind", f"expected a WorkflowTemplate or Workflow, got {kind!r}")
            return self.problems
        self.keys(self.spec, "spec", SPEC_RUN, SPEC_IGNORED)
        for i, param in enumerate((self.spec.get("arguments") or {}).get("parameters") or []):
            self.keys(param, f"spec.arguments.parameters[{i}]", PARAM_KEYS)
            for where, text in _strings(param, f"spec.arguments.parameters[{i}]"):
                self.tags(text, where, _Vars(self.params))
        for field_name in ("entrypoint", "onExit"):
            name = self.spec.get(field_name)
            if name is not None and name not in self.templates:
                self.invalid(f"spec.{field_name}", f"no template named {name!r}")
        if not self.spec.get("entrypoint"):
            self.invalid("spec.entrypoint", "missing; local run starts from the entrypoint template")
        for i, template in enumerate(self.spec.get("templates") or []):
            self.template(i, template)
        return self.problems

    def template(self, index: int, tmpl: Mapping[str, Any]) -> None:
        where = f"templates[{index}] ({tmpl.get('name')!r})"
        self.keys(tmpl, where, TEMPLATE_RUN, TEMPLATE_IGNORED)
        kinds = [k for k in ("dag", "steps", "script") if k in tmpl]
        if len(kinds) > 1:
            self.invalid(where, f"has {' and '.join(kinds)}; a template has exactly one")
        if not kinds and not any(k not in TEMPLATE_RUN | TEMPLATE_IGNORED for k in tmpl):
            self.invalid(where, "has no dag, steps or script")
        if tmpl.get("outputs"):
            self.unsupported(f"{where}.outputs")
        if tmpl.get("failFast"):
            self.unsupported(f"{where}.failFast")
        inputs = tmpl.get("inputs") or {}
        self.keys(inputs, f"{where}.inputs", {"parameters"})
        names = []
        for i, param in enumerate(inputs.get("parameters") or []):
            self.keys(param, f"{where}.inputs.parameters[{i}]", PARAM_KEYS)
            names.append(param.get("name", ""))
        allowed = _Vars(self.params, inputs=frozenset(names))
        if "dag" in tmpl:
            self.dag(where, tmpl["dag"], allowed)
        elif "steps" in tmpl:
            self.steps(where, tmpl["steps"], allowed)
        elif "script" in tmpl:
            self.script(where, tmpl, allowed)
        for key in ("parallelism", "activeDeadlineSeconds"):
            if key in tmpl and not re.fullmatch(r"\d+", str(tmpl[key])):
                self.unsupported(f"{where}.{key} = {tmpl[key]!r} (only a plain number)")

    def call(self, where: str, call: Mapping[str, Any], allowed: _Vars, keys: set[str]) -> None:
        self.keys(call, where, keys)
        if call.get("template") not in self.templates:
            self.invalid(where, f"template {call.get('template')!r} does not exist")
        arguments = call.get("arguments") or {}
        self.keys(arguments, f"{where}.arguments", {"parameters"})
        for i, param in enumerate(arguments.get("parameters") or []):
            self.keys(param, f"{where}.arguments.parameters[{i}]", {"name", "value"})
        looped = dataclasses.replace(allowed, item="withParam" in call or "withItems" in call)
        for key in ("arguments", "withParam", "when"):
            for place, text in _strings(call.get(key), f"{where}.{key}"):
                self.tags(text, place, looped)
        if "withParam" in call and not isinstance(call["withParam"], str):
            self.invalid(f"{where}.withParam", "must be a string (a JSON list or an expression giving one)")
        if "withItems" in call:
            self.items(f"{where}.withItems", call["withItems"])
        if "when" in call:
            try:
                parse_expression(_TAG_RE.sub("x", str(call["when"])), "when")
            except ExpressionError as exc:
                self.unsupported(f"{where}.when ({exc})")
        continue_on = call.get("continueOn") or {}
        self.keys(continue_on, f"{where}.continueOn", set(_CONTINUE_ON))

    def items(self, where: str, items: Any) -> None:
        if not isinstance(items, list):
            self.invalid(where, "must be a list")
            return
        for i, item in enumerate(items):
            try:
                _item_scope(i, item)
            except ExpressionError as exc:
                self.invalid(f"{where}[{i}]", str(exc))

    def dag(self, where: str, dag: Mapping[str, Any], allowed: _Vars) -> None:
        self.keys(dag, f"{where}.dag", {"tasks", "failFast", "target"})
        tasks = dag.get("tasks") or []
        names = frozenset(t.get("name", "") for t in tasks)
        allowed = dataclasses.replace(allowed, siblings=names, sibling_kind="tasks")
        graph: dict[str, set[str]] = {}
        for i, task in enumerate(tasks):
            place = f"{where}.dag.tasks[{i}] ({task.get('name')!r})"
            self.call(place, task, allowed, TASK_KEYS)
            if "depends" in task and "dependencies" in task:
                self.invalid(place, "has both depends and dependencies; use one")
            try:
                _tree, deps = _task_depends(task)
            except ExpressionError as exc:
                self.unsupported(f"{place}.depends ({exc})")
                deps = set()
            for dep in sorted(deps - names):
                self.invalid(place, f"depends on unknown task {dep!r}")
            graph[task.get("name", "")] = deps & names
        for target in str(dag.get("target") or "").split():
            if target not in names:
                self.invalid(f"{where}.dag.target", f"unknown task {target!r}")
        if _topological(list(graph), graph) is None:
            self.invalid(f"{where}.dag", "the task dependencies form a cycle")

    def steps(self, where: str, groups: Any, allowed: _Vars) -> None:
        if not isinstance(groups, list):
            self.invalid(f"{where}.steps", "must be a list of step groups")
            return
        names = frozenset(s.get("name", "") for g in groups if isinstance(g, list) for s in g)
        allowed = dataclasses.replace(allowed, siblings=names, sibling_kind="steps")
        for g, group in enumerate(groups):
            if not isinstance(group, list):
                self.invalid(f"{where}.steps[{g}]", "must be a list of steps")
                continue
            for s, step in enumerate(group):
                self.call(f"{where}.steps[{g}][{s}] ({step.get('name')!r})", step, allowed, STEP_KEYS)

    def script(self, where: str, tmpl: Mapping[str, Any], allowed: _Vars) -> None:
        script = tmpl["script"]
        self.keys(script, f"{where}.script", SCRIPT_RUN, SCRIPT_IGNORED)
        if not script.get("command"):
            self.unsupported(f"{where}.script without command (the image's entrypoint is unknown locally)")
        volumes: dict[str, Mapping[str, Any]] = {}
        for i, volume in enumerate(tmpl.get("volumes") or []):
            place = f"{where}.volumes[{i}]"
            self.keys(volume, place, {"name", "secret", "configMap"})
            kinds = [k for k in ("secret", "configMap") if k in volume]
            if len(kinds) != 1:
                self.unsupported(f"{place} without exactly one of secret or configMap")
            volumes[volume.get("name", "")] = volume
        for i, mount in enumerate(script.get("volumeMounts") or []):
            place = f"{where}.script.volumeMounts[{i}]"
            self.keys(mount, place, {"name", "mountPath", "readOnly"})
            if mount.get("name") not in volumes:
                self.unsupported(
                    f"{place}: volume {mount.get('name')!r} is not one of the template's volumes"
                )
        for i, env in enumerate(script.get("env") or []):
            place = f"{where}.script.env[{i}]"
            self.keys(env, place, {"name", "value", "valueFrom"})
            if "valueFrom" in env:
                value_from = env["valueFrom"] or {}
                if set(value_from) != {"secretKeyRef"}:
                    self.unsupported(f"{place}.valueFrom.{next(iter(value_from), '')} (only secretKeyRef)")
        in_pod = dataclasses.replace(allowed, retries="retryStrategy" in tmpl)
        for key in ("script", "volumes", "synchronization", "retryStrategy", "activeDeadlineSeconds"):
            for place, text in _strings(tmpl.get(key), f"{where}.{key}"):
                self.tags(text, place, in_pod if key == "script" else allowed)
        if "retryStrategy" in tmpl:
            self.retry(f"{where}.retryStrategy", tmpl["retryStrategy"])
        if "synchronization" in tmpl:
            sync = tmpl["synchronization"] or {}
            self.keys(sync, f"{where}.synchronization", {"mutexes", "mutex"})
            mutexes = list(sync.get("mutexes") or []) + ([sync["mutex"]] if sync.get("mutex") else [])
            for i, mutex in enumerate(mutexes):
                self.keys(mutex, f"{where}.synchronization.mutexes[{i}]", {"name", "namespace"})

    def retry(self, where: str, retry: Mapping[str, Any]) -> None:
        self.keys(retry, where, RETRY_KEYS)
        policy = retry.get("retryPolicy", "OnFailure")
        if policy not in ("Always", "OnFailure", "OnError"):
            self.unsupported(f"{where}.retryPolicy {policy!r} (Always, OnFailure or OnError)")
        if "limit" in retry and not re.fullmatch(r"\d+", str(retry["limit"])):
            self.unsupported(f"{where}.limit {retry['limit']!r} (only a plain number)")
        if "expression" in retry:
            try:
                paths = expression_vars(parse_expression(str(retry["expression"]), "expr"))
            except ExpressionError as exc:
                self.unsupported(f"{where}.expression ({exc})")
                paths = []
            for path in paths:
                if not _Vars(self.params, last_retry=True).allows(path):
                    self.unsupported(f"the variable {'.'.join(path)} in {where}.expression")
        backoff = retry.get("backoff") or {}
        self.keys(backoff, f"{where}.backoff", BACKOFF_KEYS)
        for key in ("duration", "maxDuration", "cap"):
            if key in backoff:
                try:
                    _parse_duration(backoff[key])
                except ExpressionError as exc:
                    self.invalid(f"{where}.backoff.{key}", str(exc))
        if "factor" in backoff and not re.fullmatch(r"\d+", str(backoff["factor"])):
            self.unsupported(f"{where}.backoff.factor {backoff['factor']!r} (only a whole number)")


def check_supported(resource: Mapping[str, Any]) -> None:
    """Refuse a workflow the local runner cannot run faithfully, before anything runs.

    Raises:
        LocalRunRefused: listing every unsupported field (with the hint to use ``pipelines submit``) and
            every reference to a template, task, parameter or variable that does not exist.
    """
    problems = _Checker(resource).check()
    if problems:
        raise LocalRunRefused(problems)


def _task_depends(task: Mapping[str, Any]) -> tuple[tuple | None, set[str]]:
    if task.get("depends"):
        return parse_depends(str(task["depends"]))
    deps = [str(d) for d in task.get("dependencies") or []]
    if not deps:
        return None, set()
    return parse_depends(" && ".join(deps))


def _topological(names: list[str], deps: Mapping[str, set[str]]) -> list[str] | None:
    """Names in dependency order, stable by definition order; None when there is a cycle."""
    order: list[str] = []
    remaining = list(names)
    while remaining:
        ready = [n for n in remaining if deps.get(n, set()) <= set(order)]
        if not ready:
            return None
        order.extend(ready)
        remaining = [n for n in remaining if n not in ready]
    return order


def plan_rows(resource: Mapping[str, Any]) -> list[Row]:
    """The steps a run will show, in order: entrypoint tasks (DAGs in dependency order), then ``onExit``."""
    templates = {t["name"]: t for t in resource["spec"]["templates"]}
    rows: list[Row] = []

    def calls(tmpl: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        if "dag" in tmpl:
            tasks = tmpl["dag"].get("tasks") or []
            by_name = {t["name"]: t for t in tasks}
            deps = {t["name"]: _task_depends(t)[1] & set(by_name) for t in tasks}
            return [by_name[n] for n in _topological(list(by_name), deps) or list(by_name)]
        return [step for group in tmpl.get("steps") or [] for step in group]

    def walk(name: str, prefix: tuple[str, ...], depth: int) -> None:
        for call in calls(templates[name]):
            child = templates[call["template"]]
            key = (*prefix, call["name"])
            if key not in {r.key for r in rows}:
                rows.append(
                    Row(key, call["template"], "withParam" in call or "withItems" in call, "script" in child)
                )
            if ("dag" in child or "steps" in child) and depth < 10:
                walk(call["template"], key, depth + 1)

    walk(resource["spec"]["entrypoint"], (), 0)
    on_exit = resource["spec"].get("onExit")
    if on_exit:
        rows.append(Row(("onExit",), on_exit, False, "script" in templates[on_exit]))
        walk(on_exit, ("onExit",), 0)
    return rows


class _JsonNumber(str):
    """A JSON number kept as written, as Argo's ``json.Number`` keeps it."""


def _item_json(value: Any, where: str, nested: bool = False) -> str:
    """``json.Marshal`` of an Argo ``Item``/``ItemValue``: sorted keys, numbers as written, HTML escaped."""
    if isinstance(value, _JsonNumber):
        return str(value)
    if isinstance(value, dict):
        if nested and any(not isinstance(v, str | None) for v in value.values()):
            bad = next(v for v in value.values() if not isinstance(v, str | None))
            raise ExpressionError(
                f"{where}: json: cannot unmarshal {_json_kind(bad)} into Go value of type string"
            )
        parts = [f"{go_json(k)}:{_item_json(value[k], where, True)}" for k in sorted(value)]
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_item_json(v, where, True) for v in value) + "]"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return go_json(value)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "object" if isinstance(value, dict) else "array"


def _item_text(value: Any, where: str) -> str:
    """``ItemValue.String()``: strings JSON-escaped without their quotes, null as empty, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str) and not isinstance(value, _JsonNumber):
        return go_json(value)[1:-1]
    return _item_json(value, where)


def _item_scope(index: int, item: Any) -> tuple[dict[str, str], str]:
    """``{{item}}``, ``{{item.key}}`` and the node-name label of a fan-out item, as Argo v3's ``Item``."""
    where = f"withItems[{index}]"
    if isinstance(item, dict):
        values = {key: _item_text(value, f"{where}[{key}]") for key, value in item.items()}
        for key, value in item.items():
            if isinstance(value, dict):
                _item_json(value, f"{where}[{key}]", nested=True)
        label = ",".join(sorted(f"{key}:{text}" for key, text in values.items()))
        return {"item": _item_json(item, where), **{f"item.{k}": v for k, v in values.items()}}, label
    if isinstance(item, list):
        texts = [_item_text(v, f"{where}[{i}]") for i, v in enumerate(item)]
        return {"item": _item_json(item, where)}, "[" + " ".join(texts) + "]"
    text = _item_text(item, where)
    return {"item": text}, text


def substitute(text: str, scope: Mapping[str, str], where: str, allow_unresolved: bool = False) -> str:
    """Replace ``{{var}}`` and ``{{=expr}}`` tags in ``text`` from ``scope`` (flat Argo variable names).

    With ``allow_unresolved`` a tag that cannot be resolved stays as it is (Argo's global pass over input
    values); otherwise it is an error. Replaced text is never scanned again.

    Raises:
        ExpressionError: a tag that cannot be resolved, naming it and ``where``.
    """

    def replace(match: re.Match[str]) -> str:
        tag = match.group(1).strip()
        try:
            if tag.startswith("="):
                value = evaluate(parse_expression(tag[1:], "expr"), _nest(scope))
                return value if isinstance(value, str) else go_format(value)
            if tag in scope:
                return scope[tag]
            raise ExpressionError(f"failed to resolve {{{{{tag}}}}} in {where}")
        except ExpressionError:
            if allow_unresolved:
                return match.group(0)
            raise

    return _TAG_RE.sub(replace, text)


def _substitute_tree(value: Any, scope: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):
        return substitute(value, scope, where)
    if isinstance(value, Mapping):
        return {k: _substitute_tree(v, scope, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_tree(v, scope, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


# --- the runner -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ctx:
    """Where a node runs: its row prefix and whether it belongs to the exit handler."""

    row: tuple[str, ...]
    on_exit: bool


class LocalRun:
    """One run of a workflow on this machine.

    Use ``start()`` then ``wait()``, or ``run_workflow`` for both. ``stop()`` behaves like ``argo stop``
    (running steps are killed, the exit handler still runs), ``terminate()`` like ``argo terminate``.

    Args:
        resource: The WorkflowTemplate (or Workflow) as a dict, e.g. from ``pipelines.render``.
        parameters: Workflow arguments by name; the spec's values are the defaults.
        options: Local settings (run directory, stand-ins, interpreter, retries).
        on_change: Called with a copy of each node whenever it is created or changes, under a lock.

    Raises:
        LocalRunRefused: unsupported features, unknown parameters, missing ConfigMaps.
    """

    def __init__(
        self,
        resource: Mapping[str, Any],
        parameters: Mapping[str, str] | None = None,
        options: RunOptions | None = None,
        on_change: Callable[[Node], None] | None = None,
    ) -> None:
        check_supported(resource)
        self.options = options or RunOptions()
        self.resource = resource
        self.spec: Mapping[str, Any] = resource["spec"]
        self.templates: dict[str, Mapping[str, Any]] = {t["name"]: t for t in self.spec["templates"]}
        template_name = resource.get("metadata", {}).get("name") or "workflow"
        self.name = self.options.name or generate_name(template_name)
        self.arguments = self._arguments(parameters or {})
        self._check_config_maps()
        self.run_dir = (Path(self.options.runs_dir) / self.name).absolute()
        self.on_change = on_change
        self.nodes: dict[str, Node] = {}
        self._omitted: dict[str, list[str]] = {}
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._kill_all = threading.Event()
        self._stop_message: str | None = None
        self._pod_message = ""
        self._procs: dict[int, tuple[subprocess.Popen[bytes], Node]] = {}
        self._killed: dict[str, str] = {}
        self._mutexes: dict[str, threading.Lock] = {}
        self._config_dirs: dict[str, Path] = {}
        limit = self.spec.get("parallelism")
        self._pod_slots = threading.BoundedSemaphore(int(limit)) if limit else None
        self._secrets = os.environ if self.options.secrets is None else self.options.secrets
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._result: RunResult | None = None
        self.started_at = 0.0
        meta = resource.get("metadata") or {}
        self.globals: dict[str, str] = {
            "workflow.name": self.name,
            "workflow.namespace": str(meta.get("namespace") or "default"),
            "workflow.uid": f"local-{fnv32a(self.name):08x}",
            "workflow.serviceAccountName": str(self.spec.get("serviceAccountName") or ""),
            "workflow.mainEntrypoint": str(self.spec["entrypoint"]),
            "workflow.parameters": go_json([{"name": k, "value": v} for k, v in self.arguments.items()]),
            **{f"workflow.parameters.{k}": v for k, v in self.arguments.items()},
        }

    # -- setup ---------------------------------------------------------------------------------------------

    def _arguments(self, given: Mapping[str, str]) -> dict[str, str]:
        declared = (self.spec.get("arguments") or {}).get("parameters") or []
        names = [p["name"] for p in declared]
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise LocalRunRefused(
                [f"unknown parameter(s) {', '.join(unknown)}; the template takes {', '.join(names)}"]
            )
        values: dict[str, str] = {}
        missing = []
        for param in declared:
            name = param["name"]
            value = given.get(name, param.get("value", param.get("default")))
            if value is None:
                missing.append(name)
                continue
            value = str(value)
            if param.get("enum") and value not in [str(e) for e in param["enum"]]:
                raise LocalRunRefused([f"parameter {name}={value!r} is not one of {param['enum']}"])
            values[name] = value
        if missing:
            raise LocalRunRefused([f"parameter(s) {', '.join(missing)} need a value: pass -p NAME=VALUE"])
        return values

    def _check_config_maps(self) -> None:
        problems = []
        for i, tmpl in enumerate(self.spec["templates"]):
            for volume in tmpl.get("volumes") or []:
                config_map = volume.get("configMap")
                if config_map is None or config_map.get("optional"):
                    continue
                name = config_map.get("name") or volume["name"]
                if name not in self.options.config_maps:
                    problems.append(
                        f"templates[{i}] ({tmpl['name']!r}) mounts ConfigMap {name!r}, which the local run "
                        "was not given (RunOptions.config_maps)"
                    )
        if problems:
            raise LocalRunRefused(problems)

    # -- public control ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the run in a background thread."""
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._main, name=f"local-run-{self.name}", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """Wait for the end of the run; returns the result, or None on timeout."""
        self._done.wait(timeout)
        return self._result

    def stop(self, message: str = STOP_MESSAGE, pod_message: str | None = None) -> None:
        """Kill the running steps and schedule nothing new; the exit handler still runs."""
        with self._lock:
            if self._stop_message is None:
                self._stop_message = message
                self._pod_message = pod_message or message
            self._halt.set()
            self._kill(lambda node: not node.on_exit)

    def terminate(self) -> None:
        """Kill everything, the exit handler included."""
        with self._lock:
            self._kill_all.set()
            self.stop(TERMINATE_MESSAGE)
            self._kill(lambda node: True)

    def snapshot(self) -> list[Node]:
        """Copies of all nodes, in creation order."""
        with self._lock:
            return [dataclasses.replace(n) for n in self.nodes.values()]

    # -- node bookkeeping ----------------------------------------------------------------------------------

    def _node_id(self, name: str) -> str:
        return name if name == self.name else f"{self.name}-{fnv32a(name)}"

    def _emit(self, node: Node) -> None:
        if self.on_change is not None:
            try:
                self.on_change(dataclasses.replace(node))
            except Exception:  # a broken progress view must not break the run
                log.exception("progress callback failed")

    def _new(
        self,
        name: str,
        display: str,
        kind: str,
        template: str,
        row: tuple[str, ...],
        ctx: _Ctx,
        **fields: Any,
    ) -> Node:
        node = Node(self._node_id(name), name, display, kind, template, row, on_exit=ctx.on_exit, **fields)
        if node.fulfilled or node.phase == "Running":
            node.started_at = time.time()
        if node.fulfilled:
            node.finished_at = node.started_at
        with self._lock:
            self.nodes[node.id] = node
            self._emit(node)
        return node

    def _set(self, node: Node, **changes: Any) -> None:
        with self._lock:
            if node.fulfilled and "phase" in changes:
                return
            for key, value in changes.items():
                setattr(node, key, value)
            if changes.get("phase") == "Running" and node.started_at is None:
                node.started_at = time.time()
            if changes.get("phase") in FINAL and node.finished_at is None:
                node.finished_at = time.time()
                if node.started_at is None:
                    node.started_at = node.finished_at
            self._emit(node)

    def _halted(self, ctx: _Ctx) -> bool:
        return self._kill_all.is_set() if ctx.on_exit else self._halt.is_set()

    def _kill(self, which: Callable[[Node], bool]) -> None:
        for proc, node in list(self._procs.values()):
            if which(node) and node.id not in self._killed:
                self._killed[node.id] = TERMINATE_MESSAGE if self._kill_all.is_set() else self._pod_message
                _signal_group(proc, signal.SIGTERM)
                killer = threading.Timer(3.0, _signal_group, (proc, signal.SIGKILL))
                killer.daemon = True
                killer.start()

    # -- the run -------------------------------------------------------------------------------------------

    def _main(self) -> None:
        self.started_at = time.time()
        entry = str(self.spec["entrypoint"])
        root = self._new(self.name, self.name, _node_type(self.templates[entry]), entry, (), _Ctx((), False))
        deadline = self.spec.get("activeDeadlineSeconds")
        timer = None
        if deadline:
            timer = threading.Timer(float(deadline), self.stop, (DEADLINE_MESSAGE, DEADLINE_POD_MESSAGE))
            timer.daemon = True
            timer.start()
        self._execute_safe(root, entry, self.arguments, _Ctx((), False))
        if timer is not None:
            timer.cancel()
        status = {
            "Succeeded": "Succeeded",
            "Skipped": "Succeeded",
            "Omitted": "Succeeded",
            "Failed": "Failed",
        }.get(root.phase, "Error")
        failures = self._failures()
        self.globals["workflow.status"] = status
        self.globals["workflow.failures"] = go_quote(go_json(failures or None))
        phase, message = status, root.message
        if status != "Succeeded" and self._stop_message:
            message = self._stop_message
        on_exit = self.spec.get("onExit")
        if on_exit and not self._kill_all.is_set():
            name = f"{self.name}.onExit"
            ctx = _Ctx(("onExit",), True)
            exit_node = self._new(name, name, _node_type(self.templates[on_exit]), on_exit, ("onExit",), ctx)
            self._execute_safe(exit_node, on_exit, self.arguments, ctx)
            if phase == "Succeeded" and exit_node.phase in FAILED:
                phase, message = exit_node.phase, exit_node.message
        for node in self.snapshot():
            if not node.fulfilled:
                self._set(
                    self.nodes[node.id],
                    phase="Error",
                    message="the local run ended before this node finished",
                )
        if self._kill_all.is_set() and phase == "Succeeded":
            phase, message = "Failed", TERMINATE_MESSAGE
        self._result = RunResult(
            name=self.name,
            phase=phase,
            message=message,
            started_at=self.started_at,
            finished_at=time.time(),
            run_dir=self.run_dir,
            nodes=self.snapshot(),
            failures=failures,
            notes=[f"{text} {', '.join(users)}" for text, users in self._omitted.items()],
        )
        self._done.set()

    def _failures(self) -> list[dict[str, Any]]:
        """``workflow.failures``: every Failed/Error node; pods first, then by finish time."""
        nodes = [n for n in self.snapshot() if n.phase in FAILED]
        nodes.sort(key=lambda n: (n.type != "Pod", n.finished_at or 0.0))
        return [
            {
                "displayName": n.display_name,
                "message": n.message,
                "templateName": n.template_name,
                "phase": n.phase,
                "podName": self._pod_name(n),
                "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(n.finished_at))
                if n.finished_at
                else None,
            }
            for n in nodes
        ]

    def _pod_name(self, node: Node) -> str:
        if node.name == self.name:
            return self.name
        return f"{self.name}-{node.template_name}"[:242] + f"-{fnv32a(node.name)}"

    def _execute_safe(self, node: Node, template: str, args: Mapping[str, str], ctx: _Ctx) -> Node:
        try:
            self._execute(node, template, args, ctx)
        except Exception as exc:  # a bug here must still end the node, so the exit handler sees it
            log.exception("local run failed on %s", node.name)
            self._set(node, phase="Error", message=f"local run internal error: {type(exc).__name__}: {exc}")
        return node

    def _execute(self, node: Node, template: str, args: Mapping[str, str], ctx: _Ctx) -> None:
        if self._halted(ctx):
            self._set(node, phase="Failed", message=self._stop_message or STOP_MESSAGE)
            return
        tmpl = self.templates[template]
        try:
            inputs = self._bind_inputs(tmpl, args)
        except ExpressionError as exc:
            self._set(node, phase="Error", message=str(exc))
            return
        scope = {
            **self.globals,
            "inputs.parameters": go_json([_input_json(p, inputs[p["name"]]) for p in _inputs(tmpl)]),
            **{f"inputs.parameters.{k}": v for k, v in inputs.items()},
        }
        child_ctx = _Ctx(node.row, ctx.on_exit)
        if "dag" in tmpl:
            self._set(node, phase="Running")
            self._run_dag(node, tmpl, scope, child_ctx)
        elif "steps" in tmpl:
            self._set(node, phase="Running")
            self._run_steps(node, tmpl, scope, child_ctx)
        else:
            try:
                resolved = _substitute_tree(dict(tmpl), {**scope, "retries": "0"}, f"template {template!r}")
            except ExpressionError as exc:
                self._set(node, phase="Error", message=str(exc))
                return
            with self._mutex(node, resolved):
                if "retryStrategy" in resolved:
                    self._run_retries(
                        node,
                        resolved,
                        ctx,
                        lambda n: _substitute_tree(
                            dict(tmpl), {**scope, "retries": str(n)}, f"template {template!r}"
                        ),
                    )
                else:
                    self._run_pod(node, resolved, ctx)

    def _bind_inputs(self, tmpl: Mapping[str, Any], args: Mapping[str, str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for param in _inputs(tmpl):
            name = param["name"]
            if name in args:
                value = args[name]
            elif "value" in param:
                value = str(param["value"])
            elif "default" in param:
                value = str(param["default"])
            else:
                raise ExpressionError(
                    f"inputs.parameters.{name} was not supplied to template {tmpl['name']!r}"
                )
            if param.get("enum") and value not in [str(e) for e in param["enum"]]:
                raise ExpressionError(f"inputs.parameters.{name}={value!r} is not one of {param['enum']}")
            values[name] = substitute(value, self.globals, f"inputs.parameters.{name}", allow_unresolved=True)
        return values

    @contextlib.contextmanager
    def _mutex(self, node: Node, tmpl: Mapping[str, Any]) -> Iterator[None]:
        sync = tmpl.get("synchronization") or {}
        names = [
            m["name"]
            for m in list(sync.get("mutexes") or []) + ([sync["mutex"]] if sync.get("mutex") else [])
        ]
        with self._lock:
            locks = [self._mutexes.setdefault(name, threading.Lock()) for name in sorted(set(names))]
        held = []
        try:
            for name, lock in zip(sorted(set(names)), locks, strict=True):
                if not lock.acquire(blocking=False):
                    self._set(node, message=f"Waiting for {name} lock")
                    lock.acquire()
                held.append(lock)
            if held:
                self._set(node, message="")
            yield
        finally:
            for lock in held:
                lock.release()

    # -- DAG -----------------------------------------------------------------------------------------------

    def _pool(self, tmpl: Mapping[str, Any]) -> cf.ThreadPoolExecutor:
        workers = int(tmpl.get("parallelism") or self.options.max_workers)
        return cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{self.name}-{tmpl['name']}")

    def _run_dag(self, node: Node, tmpl: Mapping[str, Any], scope: dict[str, str], ctx: _Ctx) -> None:
        dag = tmpl["dag"]
        tasks = {t["name"]: t for t in dag.get("tasks") or []}
        deps = {name: _task_depends(task) for name, task in tasks.items()}
        fail_fast = dag.get("failFast", True) is not False
        done: dict[str, Node] = {}
        fanned: dict[str, list[Node]] = {}  # TaskGroup children, for .AnySucceeded / .AllFailed
        outputs: dict[str, str] = {}
        waiting = list(tasks)
        inflight: dict[cf.Future[Node], str] = {}
        groups: dict[str, tuple[Node, list[Node]]] = {}
        stopped = False

        def finished(name: str, task_node: Node) -> None:
            nonlocal stopped
            done[name] = task_node
            if task_node.result is not None and task_node.phase == "Succeeded":
                outputs[f"tasks.{name}.outputs.result"] = task_node.result
            if task_node.phase in FAILED and task_node.phase not in _continues(tasks[name]) and fail_fast:
                stopped = True

        with self._pool(tmpl) as pool:
            while True:
                progress = True
                while progress:
                    progress = False
                    for name in list(waiting):
                        tree, names = deps[name]
                        if any(d not in done for d in names):
                            continue
                        if tree is not None and not _eval_depends(tree, tasks, done, fanned):
                            waiting.remove(name)
                            progress = True
                            finished(
                                name,
                                self._new(
                                    f"{node.name}.{name}",
                                    name,
                                    "Skipped",
                                    tasks[name]["template"],
                                    (*ctx.row, name),
                                    ctx,
                                    phase="Omitted",
                                    message="omitted: depends condition not met",
                                ),
                            )
                            continue
                        if stopped or self._halted(ctx):
                            continue
                        waiting.remove(name)
                        progress = True

                        def track(fut: cf.Future[Node], task: str = name) -> None:
                            inflight[fut] = task

                        final, children = self._start_call(
                            node.name, tasks[name], {**scope, **outputs}, ctx, pool, track, groups
                        )
                        if "withParam" in tasks[name] or "withItems" in tasks[name]:
                            fanned[name] = children
                        if final is not None:
                            finished(name, final)
                if not inflight:
                    break
                ready, _ = cf.wait(list(inflight), return_when=cf.FIRST_COMPLETED)
                for fut in ready:
                    name = inflight.pop(fut)
                    if name not in groups:
                        finished(name, fut.result())
                    elif name not in inflight.values():
                        finished(name, self._close_group(*groups.pop(name), tasks[name]))
        phase = _dag_phase(dag, tasks, deps, done, fail_fast)
        if phase == "Succeeded" and len(done) < len(tasks):
            phase = "Failed"  # stopped (deadline, stop) before every task ran
        self._set(
            node,
            phase=phase,
            message=self._stop_message or "" if phase in FAILED and self._halted(ctx) else "",
        )

    def _start_call(
        self,
        parent: str,
        call: Mapping[str, Any],
        scope: Mapping[str, str],
        ctx: _Ctx,
        pool: cf.ThreadPoolExecutor,
        track: Callable[[cf.Future[Node]], None],
        groups: dict[str, tuple[Node, list[Node]]] | None,
    ) -> tuple[Node | None, list[Node]]:
        """Start one task/step; returns its node if it is already final (else None) and the nodes it created.

        With ``groups`` (DAG) a fan-out gets a TaskGroup node, closed by the caller when its last item ends;
        without (Steps) the items are the step's nodes.
        """
        name, template = call["name"], call["template"]
        row = (*ctx.row, name)
        base = f"{parent}.{name}"
        child_type = _node_type(self.templates[template])
        try:
            items = _loop_items(call, scope, base)
            scopes = [_item_scope(i, item) for i, item in enumerate(items or [])]
        except ExpressionError as exc:
            error = self._new(base, name, "Skipped", template, row, ctx, phase="Error", message=str(exc))
            return error, [error]
        if items is None:
            single, submitted = self._start_one(
                base, name, child_type, call, scope, row, ctx, pool, track, None
            )
            return (None if submitted else single), [single]
        if not items:
            empty = self._new(
                base, name, "Skipped", template, row, ctx, phase="Skipped", message="Skipped, empty params"
            )
            return empty, [empty]
        group = None
        if groups is not None:
            group = self._new(
                base, name, "TaskGroup", template, row, ctx, phase="Running", expected=len(items)
            )
        children, running = [], 0
        for index, (item_scope, label) in enumerate(scopes):
            display = f"{name}({index}:{label})"
            child, submitted = self._start_one(
                f"{parent}.{display}",
                display,
                child_type,
                call,
                {**scope, **item_scope},
                row,
                ctx,
                pool,
                track,
                index,
            )
            children.append(child)
            running += submitted
        if group is None:
            return None, children
        if not running:
            return self._close_group(group, children, call), children
        assert groups is not None
        groups[name] = (group, children)
        return None, children

    def _start_one(
        self,
        name: str,
        display: str,
        kind: str,
        call: Mapping[str, Any],
        scope: Mapping[str, str],
        row: tuple[str, ...],
        ctx: _Ctx,
        pool: cf.ThreadPoolExecutor,
        track: Callable[[cf.Future[Node]], None],
        item: int | None,
    ) -> tuple[Node, bool]:
        """Evaluate ``when`` and the arguments, then submit; returns the node and whether it was submitted."""
        template = call["template"]
        try:
            when = call.get("when")
            if when is not None:
                rendered = substitute(str(when), scope, f"{display}.when")
                if not evaluate_when(rendered):
                    return self._new(
                        name,
                        display,
                        "Skipped",
                        template,
                        row,
                        ctx,
                        phase="Skipped",
                        message=f"when '{rendered}' evaluated false",
                        item=item,
                    ), False
            args = {
                p["name"]: substitute(str(p.get("value", "")), scope, f"{display}.arguments.{p['name']}")
                for p in (call.get("arguments") or {}).get("parameters") or []
            }
        except ExpressionError as exc:
            error = self._new(
                name, display, "Skipped", template, row, ctx, phase="Error", message=str(exc), item=item
            )
            return error, False
        node = self._new(name, display, kind, template, row, ctx, item=item)
        track(pool.submit(self._execute_safe, node, template, args, ctx))
        return node, True

    def _close_group(self, group: Node, children: list[Node], call: Mapping[str, Any]) -> Node:
        failed = [c for c in children if c.phase in FAILED and c.phase not in _continues(call)]
        results = [c.result for c in sorted(children, key=lambda c: c.item or 0) if c.result is not None]
        self._set(group, phase=failed[0].phase if failed else "Succeeded", result=_aggregate(results))
        return group

    # -- Steps ---------------------------------------------------------------------------------------------

    def _run_steps(self, node: Node, tmpl: Mapping[str, Any], scope: dict[str, str], ctx: _Ctx) -> None:
        outputs: dict[str, str] = {}
        phase, message = "Succeeded", ""
        with self._pool(tmpl) as pool:
            for index, group in enumerate(tmpl["steps"]):
                if self._halted(ctx):
                    phase, message = "Failed", self._stop_message or STOP_MESSAGE
                    break
                group_node = self._new(
                    f"{node.name}[{index}]",
                    f"[{index}]",
                    "StepGroup",
                    tmpl["name"],
                    ctx.row,
                    ctx,
                    phase="Running",
                )
                futures: list[cf.Future[Node]] = []
                started: list[tuple[Mapping[str, Any], Node]] = []
                for step in group:
                    _final, children = self._start_call(
                        group_node.name, step, {**scope, **outputs}, ctx, pool, futures.append, None
                    )
                    started.extend((step, child) for child in children)
                cf.wait(futures)
                failed = [n for step, n in started if n.phase in FAILED and n.phase not in _continues(step)]
                for step in group:
                    mine = sorted((n for s, n in started if s is step), key=lambda n: n.item or 0)
                    results = [n.result for n in mine if n.result is not None and n.phase == "Succeeded"]
                    if not results:
                        continue
                    looped = "withParam" in step or "withItems" in step
                    outputs[f"steps.{step['name']}.outputs.result"] = (
                        _aggregate(results) if looped else results[0]
                    )
                if failed:
                    self._set(group_node, phase="Failed", message=f"child '{failed[0].id}' failed")
                    phase, message = "Failed", f"child '{group_node.id}' failed"
                    break
                self._set(group_node, phase="Succeeded")
        self._set(node, phase=phase, message=message)

    # -- pods ----------------------------------------------------------------------------------------------

    def _run_retries(
        self,
        node: Node,
        tmpl: Mapping[str, Any],
        ctx: _Ctx,
        attempt_template: Callable[[int], Mapping[str, Any]],
    ) -> None:
        """Argo's ``processNodeRetries``; ``attempt_template(n)`` renders the template with retries = n."""
        strategy = tmpl["retryStrategy"]
        limit = int(strategy["limit"]) if "limit" in strategy else None
        policy = strategy.get("retryPolicy") or "OnFailure"
        backoff = strategy.get("backoff") or {}
        expression = parse_expression(str(strategy["expression"])) if strategy.get("expression") else None
        self._set(node, phase="Running")
        first_start = time.time()
        attempt = 0
        while True:
            child = self._new(
                f"{node.name}({attempt})",
                f"{node.display_name}({attempt})",
                "Pod",
                node.template_name,
                node.row,
                ctx,
                attempt=attempt,
                item=node.item,
            )
            try:
                self._run_pod(child, tmpl if attempt == 0 else attempt_template(attempt), ctx)
            except ExpressionError as exc:
                self._set(child, phase="Error", message=str(exc))
            if child.phase == "Succeeded":
                self._set(node, phase="Succeeded", result=child.result, message="")
                return
            count = attempt + 1
            stop = None
            if self._halted(ctx):
                stop = child.message
            wait = 0.0
            if stop is None and backoff:
                wait = _parse_duration(backoff.get("duration", "0")) * int(backoff.get("factor") or 1) ** (
                    count - 1
                )
                if "cap" in backoff:
                    wait = min(wait, _parse_duration(backoff["cap"]))
                if "maxDuration" in backoff:
                    deadline = first_start + _parse_duration(backoff["maxDuration"])
                    if time.time() > deadline:
                        stop = "Max duration limit exceeded"
                    elif (child.finished_at or time.time()) + wait > deadline:
                        stop = "Backoff would exceed max duration limit"
            retry_on = {"Always": FAILED, "OnFailure": {"Failed"}, "OnError": {"Error"}}[policy]
            if stop is None and child.phase not in retry_on:
                stop = child.message
            if stop is None and limit is not None and count > limit:
                stop = "No more retries left"
            if stop is None and expression is not None:
                last = {
                    "exitCode": str(child.exit_code if child.exit_code is not None else -1),
                    "status": child.phase,
                    "duration": go_format(child.duration or 0.0),
                    "message": child.message,
                }
                try:
                    again = evaluate(expression, {"lastRetry": last})
                except ExpressionError as exc:
                    self._set(node, phase="Error", message=f"retryStrategy.expression: {exc}")
                    return
                if again is not True:
                    stop = "retryStrategy.expression evaluated to false"
            if stop is not None:
                self._set(node, phase=child.phase, message=stop)
                return
            delay = min(wait, self.options.max_backoff) if self.options.fast_retries else wait
            self._set(node, message=f"Backoff for {delay:.1f}s" if delay else "")
            (self._kill_all if ctx.on_exit else self._halt).wait(delay)
            attempt += 1

    def _run_pod(self, node: Node, tmpl: Mapping[str, Any], ctx: _Ctx) -> None:
        script = tmpl["script"]
        pod_dir = self.run_dir / "pods" / self._pod_name(node)
        pod_dir.mkdir(parents=True, exist_ok=True)
        source = pod_dir / "script"
        source.write_text(str(script.get("source", "")), encoding="utf-8")
        termination = pod_dir / "termination-log"
        termination.unlink(missing_ok=True)
        log_path = self.run_dir / "logs" / f"{_file_name(_short_name(node.name, self.name))}.log"
        env = self._pod_env(tmpl, node, termination)
        command = [str(c) for c in [*script["command"], *(script.get("args") or [])]] + [str(source)]
        if command[0] in ("python", "python3"):
            command[0] = self.options.python
        deadline = float(tmpl["activeDeadlineSeconds"]) if tmpl.get("activeDeadlineSeconds") else None
        slots = self._pod_slots or contextlib.nullcontext()
        with slots, (pod_dir / "stdout").open("wb") as out, log_path.open("wb") as err:
            if self._halted(ctx):
                self._set(node, phase="Failed", message=self._pod_message or STOP_MESSAGE)
                return
            self._set(node, phase="Running", log_path=log_path, pod_dir=pod_dir, message="")
            try:
                proc = subprocess.Popen(
                    command,
                    cwd=pod_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
            except OSError as exc:
                err.write(f"cannot start {command[0]!r}: {exc}\n".encode())
                self._set(
                    node,
                    phase="Error",
                    message=f"cannot start container command {command[0]!r}: {exc.strerror or exc}",
                )
                return
            with self._lock:
                self._procs[proc.pid] = (proc, node)
                if self._halted(ctx):
                    self._kill(lambda n: n is node)
            try:
                code = proc.wait(timeout=deadline)
            except subprocess.TimeoutExpired:
                with self._lock:
                    self._killed[node.id] = DEADLINE_POD_MESSAGE
                _signal_group(proc, signal.SIGKILL)
                code = proc.wait()
            finally:
                with self._lock:
                    self._procs.pop(proc.pid, None)
        stdout = (pod_dir / "stdout").read_text(encoding="utf-8", errors="replace")
        code = 128 - code if code < 0 else code
        killed = self._killed.get(node.id)
        if killed:
            self._set(node, phase="Failed", message=killed, exit_code=code)
        elif code == 0:
            self._set(node, phase="Succeeded", result=stdout.strip(), exit_code=0)
        else:
            message = (
                termination.read_text(encoding="utf-8", errors="replace").strip()
                if termination.exists()
                else ""
            )
            self._set(
                node, phase="Failed", message=message or f"failed with exit code {code}", exit_code=code
            )

    def _pod_env(self, tmpl: Mapping[str, Any], node: Node, termination: Path) -> dict[str, str]:
        script = tmpl["script"]
        env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
        paths = [
            *(self.options.pythonpath or [str(Path.cwd())]),
            *filter(None, [os.environ.get("PYTHONPATH")]),
        ]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        volumes = {v["name"]: v for v in tmpl.get("volumes") or []}
        mounts = [(m["mountPath"].rstrip("/"), volumes[m["name"]]) for m in script.get("volumeMounts") or []]
        termination_path = script.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
        for item in script.get("env") or []:
            name = item["name"]
            if "valueFrom" in item:
                ref = item["valueFrom"]["secretKeyRef"]
                self._stand_in(env, name, f"secretKeyRef {ref.get('name')}/{ref.get('key')}", node)
                continue
            value = str(item.get("value", ""))
            if value == termination_path:
                env[name] = str(termination)
                continue
            mount = next(((p, v) for p, v in mounts if value == p or value.startswith(p + "/")), None)
            if mount is None:
                env[name] = value
            elif "secret" in mount[1]:
                self._stand_in(
                    env, name, f"Secret volume {mount[1]['secret'].get('secretName')} at {mount[0]}", node
                )
            else:
                env[name] = str(self._config_map_dir(mount[1]) / value[len(mount[0]) :].lstrip("/"))
        env.update(self.options.env)
        return env

    def _stand_in(self, env: dict[str, str], name: str, source: str, node: Node) -> None:
        if name in self._secrets:
            env[name] = self._secrets[name]
            return
        with self._lock:
            users = self._omitted.setdefault(f"{name} ({source}) is not set locally; omitted for", [])
            if node.template_name not in users:
                users.append(node.template_name)

    def _config_map_dir(self, volume: Mapping[str, Any]) -> Path:
        config_map = volume["configMap"]
        name = config_map.get("name") or volume["name"]
        with self._lock:
            if name not in self._config_dirs:
                target = self.run_dir / "volumes" / f"configmap-{name}"
                target.mkdir(parents=True, exist_ok=True)
                data = self.options.config_maps.get(name, {})
                items = config_map.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    if item["key"] in data:
                        path = target / item.get("path", item["key"])
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_text(data[item["key"]], encoding="utf-8")
                self._config_dirs[name] = target
            return self._config_dirs[name]


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


def _node_type(tmpl: Mapping[str, Any]) -> str:
    if "dag" in tmpl:
        return "DAG"
    if "steps" in tmpl:
        return "Steps"
    return "Retry" if "retryStrategy" in tmpl else "Pod"


def _inputs(tmpl: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((tmpl.get("inputs") or {}).get("parameters") or [])


def _input_json(param: Mapping[str, Any], value: str) -> dict[str, Any]:
    """One entry of ``{{inputs.parameters}}``, in the field order Go marshals ``Parameter``."""
    out: dict[str, Any] = {"name": param["name"]}
    if "default" in param:
        out["default"] = str(param["default"])
    out["value"] = value
    for key in ("enum", "description"):
        if key in param:
            out[key] = param[key]
    return out


def _continues(call: Mapping[str, Any]) -> set[str]:
    continue_on = call.get("continueOn") or {}
    return {phase for key, phase in _CONTINUE_ON.items() if continue_on.get(key)}


def _loop_items(call: Mapping[str, Any], scope: Mapping[str, str], where: str) -> list[Any] | None:
    if "withItems" in call:
        return list(call["withItems"])
    if "withParam" not in call:
        return None
    text = substitute(str(call["withParam"]), scope, f"{where}.withParam")
    try:
        items = json.loads(text, parse_int=_JsonNumber, parse_float=_JsonNumber)
    except json.JSONDecodeError as exc:
        raise ExpressionError(
            f"withParam value could not be parsed as a JSON list: {text[:200]}: {exc.msg}"
        ) from None
    if not isinstance(items, list):
        raise ExpressionError(f"withParam value could not be parsed as a JSON list: {text[:200]}")
    return items


def _aggregate(results: list[str]) -> str:
    """A fan-out's ``outputs.result``: the items' results as a JSON list (maps decoded, as Argo does)."""
    values: list[Any] = []
    for result in results:
        try:
            decoded = json.loads(result)
        except json.JSONDecodeError:
            decoded = None
        values.append(decoded if isinstance(decoded, dict) else result)
    return go_json(values)


def _eval_depends(
    tree: tuple,
    tasks: Mapping[str, Mapping[str, Any]],
    done: Mapping[str, Node],
    fanned: Mapping[str, list[Node]],
) -> bool:
    """Evaluate a parsed ``depends`` against finished tasks, with Argo's bare-name expansion."""
    kind = tree[0]
    if kind == "not":
        return not _eval_depends(tree[1], tasks, done, fanned)
    if kind in ("and", "or"):
        left = _eval_depends(tree[1], tasks, done, fanned)
        if left == (kind == "or"):
            return left
        return _eval_depends(tree[2], tasks, done, fanned)
    _, name, result = tree
    phase = done[name].phase
    children = fanned.get(name, [])
    if not result:
        return phase in {"Succeeded", "Skipped"} | _continues(tasks[name])
    if result == "AnySucceeded":
        return any(c.phase == "Succeeded" for c in children)
    if result == "AllFailed":
        return bool(children) and all(c.phase == "Failed" for c in children)
    if result == "Daemoned":
        return False  # no daemon steps locally
    return phase == ("Error" if result == "Errored" else result)


def _dag_phase(
    dag: Mapping[str, Any],
    tasks: Mapping[str, Mapping[str, Any]],
    deps: Mapping[str, tuple[tuple | None, set[str]]],
    done: Mapping[str, Node],
    fail_fast: bool,
) -> str:
    """Argo's ``assessDAGPhase``: target tasks' branch phases, Skipped/Omitted inheriting failures."""
    memo: dict[str, str] = {}

    def branch(name: str) -> str:
        if name not in memo:
            node = done.get(name)
            if node is None:
                memo[name] = ""
            elif node.phase in ("Succeeded", "Failed", "Error"):
                memo[name] = node.phase
            else:
                parents = [branch(d) for d in sorted(deps[name][1])]
                memo[name] = next((p for p in parents if p in FAILED), "Succeeded")
        return memo[name]

    depended = {d for _, names in deps.values() for d in names}
    targets = str(dag.get("target") or "").split() or [n for n in tasks if n not in depended]
    result = "Succeeded"
    for name in targets:
        phase = branch(name)
        if phase in FAILED and phase not in _continues(tasks[name]):
            if result == "Succeeded":
                result = phase
            if fail_fast:
                break
    return result


def _file_name(text: str) -> str:
    """A node name as a file name: anything outside word characters and ``.:,()[]=+-`` becomes ``_``."""
    return re.sub(r"[^\w.:,()\[\]=+-]", "_", text)


def _short_name(name: str, workflow: str) -> str:
    """A node name without the workflow name, for file names (``fetch``, ``onExit[0].report-final``)."""
    return name[len(workflow) :].lstrip(".") if name.startswith(workflow) and name != workflow else name


def run_workflow(
    resource: Mapping[str, Any],
    parameters: Mapping[str, str] | None = None,
    options: RunOptions | None = None,
    on_change: Callable[[Node], None] | None = None,
) -> RunResult:
    """Run a workflow to the end (exit handler included) and return the result.

    Raises:
        LocalRunRefused: the workflow uses something the local runner does not implement.
    """
    run = LocalRun(resource, parameters, options, on_change)
    run.start()
    result = run.wait()
    assert result is not None
    return result


__all__ = [
    "FUNCTIONS",
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
