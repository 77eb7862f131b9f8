"""By-value code from another Python version is refused before it is loaded; by-reference code still runs."""

import operator

import pytest

from compute_endpoint import serialize
from compute_endpoint.protocol import ErrorKind, Task
from compute_endpoint.worker.worker import FunctionCache, execute

OTHER = "3.99"


def task_of(fn, *args, python_version: str = OTHER, **kwargs) -> Task:
    fn_hash, fn_bytes = serialize.dump_function(fn)
    return Task(task_id="t1", fn_hash=fn_hash, fn_len=len(fn_bytes), reply_to="r",
                python_version=python_version, payload=fn_bytes + serialize.dump_arguments(args, kwargs))


def run(task: Task):
    return execute(task, FunctionCache(), max_result_bytes=2**20)


@pytest.mark.parametrize("value", [lambda v: v, [1, (lambda: 2)], type("Local", (), {})])
def test_code_pickled_by_value_is_recognised(value):
    assert serialize.carries_code(serialize.dump_value(value))


@pytest.mark.parametrize("value", [operator.add, len, {"a": [1, 2.5, "x", b"y", None]}, serialize.dump_value])
def test_references_and_plain_data_carry_no_code(value):
    assert not serialize.carries_code(serialize.dump_value(value))


def test_garbage_is_not_taken_for_code():
    assert not serialize.carries_code(b"\x80\x05not a pickle")


def test_a_lambda_from_another_python_is_refused_unloaded_and_says_what_to_do():
    result = run(task_of(lambda v: v + 1, 1))
    assert not result.ok and result.error_kind == ErrorKind.SERIALIZATION
    assert result.error_type == "PythonVersionMismatch"
    assert "the function was sent by value" in result.error_message
    assert f"from Python {OTHER}" in result.error_message
    assert f"workers run Python {serialize.python_version()}" in result.error_message


def test_a_by_value_argument_from_another_python_is_named():
    result = run(task_of(sorted, [3, 1, 2], key=lambda v: -v))
    assert result.error_type == "PythonVersionMismatch" and "an argument was sent by value" in result.error_message


def test_functions_by_reference_run_whatever_the_submitters_python():
    result = run(task_of(operator.add, 2, 3))
    assert result.ok and serialize.load(result.payload) == 5


@pytest.mark.parametrize("version", ["", serialize.python_version()])
def test_by_value_code_runs_when_the_versions_match_or_a_sender_does_not_say(version):
    result = run(task_of(lambda v: v * 2, 21, python_version=version))
    assert result.ok and serialize.load(result.payload) == 42
