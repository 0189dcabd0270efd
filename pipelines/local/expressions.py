"""Expressions as Argo evaluates them: govaluate for ``when``, a subset of expr-lang for ``{{=expr}}`` and retries."""

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any

from pipelines.local.goformat import go_format

# A parsed expression: ("lit", value) | ("var", path) | ("call", name, args) | ("not", x) | ("if", c, a, b)
# | ("bin", op, left, right).
Tree = tuple[Any, ...]


class ExpressionError(ValueError):
    """A ``when``, ``depends``, ``{{=expr}}`` or retry expression cannot be parsed or evaluated."""


_TOKEN_RE = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<num>\d+(?:\.\d+)?)(?![A-Za-z0-9_])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[()!<>+.,\[\]?:]))"
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


def _len(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise ExpressionError(f"len({value!r}): not a string, array or map")


def _trunc(length: Any, text: Any) -> str:
    n, s = _as_int(length), str(text)
    return s[:n] if n >= 0 else s[n:]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "asInt": _as_int,
    "asFloat": _as_float,
    "len": _len,
    "string": go_format,
    "sprig.replace": lambda old, new, text: str(text).replace(str(old), str(new)),
    "sprig.trunc": _trunc,
    "sprig.lower": lambda text: str(text).lower(),
    "sprig.upper": lambda text: str(text).upper(),
    "sprig.trim": lambda text: str(text).strip(),
    "sprig.sha256sum": lambda text: hashlib.sha256(str(text).encode()).hexdigest(),
}


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos, text = 0, text.rstrip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match or match.end() == pos:
            rest = text[pos:].strip()
            bad = rest.split()[0] if rest.split() else rest
            raise ExpressionError(f"cannot parse {bad[:30]!r} in {text!r} (quote values like 'a-b' or '1abc')")
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

    def parse(self) -> Tree:
        if not self.toks:
            raise ExpressionError("empty expression")
        node = self._ternary()
        if self.i != len(self.toks):
            raise ExpressionError(f"unexpected {self.toks[self.i][1]!r} in {self.text!r}")
        return node

    def _expr_only(self, what: str) -> None:
        if self.mode == "when":
            raise ExpressionError(f"{what} in when {self.text!r} is not supported; {_WHEN_HELP}")

    def _accept(self, *values: str) -> str | None:
        if self.i < len(self.toks) and self.toks[self.i][0] in ("op", "name") and self.toks[self.i][1] in values:
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

    def _ternary(self) -> Tree:
        condition = self._or()
        if not self._accept("?"):
            return condition
        self._expr_only("'?:'")
        yes = self._ternary()
        self._expect(":")
        return ("if", condition, yes, self._ternary())

    def _or(self) -> Tree:
        left = self._and()
        while self._accept("||", *(("or",) if self.mode == "expr" else ())):
            left = ("bin", "||", left, self._and())
        return left

    def _and(self) -> Tree:
        left = self._not()
        while self._accept("&&", *(("and",) if self.mode == "expr" else ())):
            left = ("bin", "&&", left, self._not())
        return left

    def _not(self) -> Tree:
        if self._accept("!", *(("not",) if self.mode == "expr" else ())):
            self._expr_only("'!'")
            return ("not", self._not())
        return self._cmp()

    def _cmp(self) -> Tree:
        left = self._add()
        op = self._accept("==", "!=", "<", "<=", ">", ">=", *(("matches",) if self.mode == "expr" else ()))
        if op:
            if op not in ("==", "!="):
                self._expr_only(repr(op))
            return ("bin", op, left, self._add())
        return left

    def _add(self) -> Tree:
        left = self._postfix()
        while self._accept("+"):
            self._expr_only("'+'")
            left = ("bin", "+", left, self._postfix())
        return left

    def _postfix(self) -> Tree:
        kind, value = self._need()
        if kind == "str":
            return ("lit", _unquote(value))
        if kind == "num":
            return ("lit", float(value) if "." in value else int(value))
        if (kind, value) == ("op", "("):
            inner = self._ternary()
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
                raise ExpressionError(f"unknown function {name}() in {self.text!r}; known: {', '.join(FUNCTIONS)}")
            args: list[Tree] = []
            if not self._accept(")"):
                args.append(self._ternary())
                while self._accept(","):
                    args.append(self._ternary())
                self._expect(")")
            return ("call", name, args)
        if self.mode == "when":
            return ("lit", ".".join(path))  # govaluate variables become strings in Argo's `when`
        return ("var", path)


def parse_expression(text: str, mode: str = "expr") -> Tree:
    """Parse ``text`` as a ``when`` (govaluate) or ``expr`` (expr-lang subset) expression.

    Raises:
        ExpressionError: a syntax error or anything outside the supported subset, naming it.
    """
    return _Parser(text, mode).parse()


def expression_vars(tree: Tree) -> list[list[str]]:
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


def evaluate(tree: Tree, env: Mapping[str, Any]) -> Any:
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
    if kind == "if":
        return evaluate(tree[2] if _want_bool(evaluate(tree[1], env), "?:") else tree[3], env)
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
    if op == "matches" and isinstance(left, str) and isinstance(right, str):
        try:  # expr-lang: regexp.MatchString, an unanchored RE2 search
            return re.search(right, left) is not None
        except re.error as exc:
            raise ExpressionError(f"matches {right!r}: {exc}") from None
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


__all__ = ["FUNCTIONS", "ExpressionError", "Tree", "evaluate", "evaluate_when", "expression_vars", "parse_expression"]
