"""Argo's string parameters become the types a step declares, once, with a clear error for a bad value."""

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from steps.runtime.errors import ConfigError
from steps.runtime.params import coerce
from steps.runtime.step import step

ROOT = Path(__file__).resolve().parents[2]


@step
def typed(name: str, flag: bool = False, count: int | None = None, number: int = 1) -> dict:
    return {"name": name, "flag": flag, "count": count, "number": number}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"name": "x", "flag": "true", "count": "42", "number": "7"}, {"flag": True, "count": 42, "number": 7}),
        ({"name": "x", "flag": "False", "count": ""}, {"flag": False, "count": None, "number": 1}),
        ({"name": "x", "count": "null"}, {"count": None}),  # Hera renders a None default as 'null'
        ({"name": "x", "flag": True, "count": 3}, {"flag": True, "count": 3}),  # typed callers pass through
    ],
)
def test_strings_become_declared_types(kwargs, expected):
    result = typed(**kwargs)
    assert {k: result[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"flag": "yes"}, "parameter flag='yes' must be true or false"),
        ({"count": "4.5"}, "parameter count='4.5' must be an integer"),
        ({"number": ""}, "parameter number='' must be an integer"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_parameter(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        typed("x", **kwargs)


def test_the_runner_sees_strings_and_the_function_keeps_its_types():
    assert {p.annotation for p in inspect.signature(typed).parameters.values()} == {str}
    assert [p.default for p in inspect.signature(typed).parameters.values()] == [
        inspect.Parameter.empty,
        False,
        None,
        1,
    ]
    assert coerce(typed.__wrapped__, ("x",), {"flag": "true"}) == {"name": "x", "flag": True}


def test_hera_runner_passes_strings_and_a_bad_value_reaches_the_termination_log(tmp_path):
    inputs = tmp_path / "inputs.json"
    termination = tmp_path / "termination-log"
    # Argo hands the pod every input, defaults included, all as strings.
    values = {"name": "x", "flag": "false", "count": "many", "number": "1"}
    inputs.write_text(json.dumps([{"name": k, "value": v} for k, v in values.items()]))
    done = subprocess.run(
        [sys.executable, "-m", "hera.workflows.runner", "-e", "tests.unit.test_params:typed", str(inputs)],
        env={"STEP_TERMINATION_LOG": str(termination), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert termination.read_text() == "parameter count='many' must be an integer"
    assert "Traceback" not in done.stderr
