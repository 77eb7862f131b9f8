"""``allowed_functions`` holds: the worker checks each function's hash against its bytes before loading
anything, and loads the arguments of allowed functions as plain data only."""

import os

import pytest

from compute_endpoint import serialize
from compute_endpoint.sdk import TaskFailed

ALLOWED = [serialize.dump_function(pow)[0], serialize.dump_function(sum)[0]]


class Planter:
    """Unpickling one runs a command: the classic payload hidden in a pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)

    def __call__(self):
        return "called"


@pytest.fixture
def guarded(endpoint_factory):
    return endpoint_factory(config={"allowed_functions": ALLOWED})


def test_only_allowed_functions_run(guarded):
    with guarded.executor() as ex:
        assert ex.submit(pow, 2, 10).result(timeout=30) == 1024
        with pytest.raises(TaskFailed, match="not in this endpoint's allowed_functions"):
            ex.submit(max, [1, 2]).result(timeout=30)


def test_code_sent_under_an_allowed_hash_is_refused_before_it_is_unpickled(guarded, tmp_path, monkeypatch):
    marker = tmp_path / "planted"
    real = serialize.dump_function
    monkeypatch.setattr(serialize, "dump_function", lambda fn: (ALLOWED[0], real(fn)[1]))
    with guarded.executor() as ex, pytest.raises(TaskFailed) as caught:
        ex.submit(Planter(marker)).result(timeout=30)
    assert caught.value.error_kind == "function_not_allowed"
    assert "is not the one its hash" in str(caught.value)
    assert not marker.exists()
    monkeypatch.undo()
    with guarded.executor() as ex:  # nothing was cached under pow's hash: pow still runs for everyone
        assert [ex.submit(pow, 3, 2).result(timeout=30) for _ in range(4)] == [9] * 4


def test_arguments_of_an_allowed_function_are_loaded_as_plain_data_only(guarded, tmp_path):
    marker = tmp_path / "planted"
    with guarded.executor() as ex:
        with pytest.raises(TaskFailed) as caught:
            ex.submit(pow, Planter(marker), 2).result(timeout=30)
        assert "posix.system is not plain data" in str(caught.value)
        assert not marker.exists()
        plain = [1, 2.5, 3 + 0j]
        assert ex.submit(sum, plain).result(timeout=30) == 6.5 + 0j


def test_without_an_allow_list_arguments_may_be_any_object(endpoint, tmp_path):
    with endpoint.executor() as ex:
        assert ex.submit(len, {frozenset({1}), (b"x", None)}).result(timeout=30) == 2
