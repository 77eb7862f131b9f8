"""A user submits functions through the SDK and gets results back: SDK -> RabbitMQ -> endpoint
-> interchange -> manager -> workers -> back."""

import ctypes
import os

import pytest

from compute_endpoint.sdk import RemoteExecutionError, WorkerDiedError

from ..support.broker import wait_for


def square(x):
    return x * x


def test_a_thousand_tasks_all_come_back_correct(endpoint):
    with endpoint.executor() as ex:
        futures = [ex.submit(square, i) for i in range(1000)]
        results = [f.result(timeout=120) for f in futures]
    assert results == [i * i for i in range(1000)]


def test_map_keyword_arguments_and_closures(endpoint):
    offset = 7

    def add(a, b=0):
        return a + b + offset

    with endpoint.executor() as ex:
        assert list(ex.map(add, [1, 2, 3], [10, 20, 30], timeout=60)) == [18, 29, 40]
        assert ex.submit(add, 1, b=2).result(timeout=60) == 10
        assert ex.submit(lambda: "λ works").result(timeout=60) == "λ works"


def test_a_remote_exception_is_raised_locally_with_its_type_and_remote_traceback(endpoint):
    def fails():
        return {}["missing"]

    with endpoint.executor() as ex:
        future = ex.submit(fails)
        with pytest.raises(KeyError) as caught:
            future.result(timeout=60)
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "Remote traceback" in notes
    assert "in fails" in notes and "KeyError: 'missing'" in notes


def test_an_exception_whose_type_cannot_be_rebuilt_becomes_remote_execution_error(endpoint):
    def fails_oddly():
        class Unpicklable(Exception):
            def __init__(self, a, b):  # pickling drops the args; rebuilding it would fail
                super().__init__(f"{a}-{b}")

        raise Unpicklable(1, 2)

    with endpoint.executor() as ex, pytest.raises(RemoteExecutionError) as caught:
        ex.submit(fails_oddly).result(timeout=60)
    assert caught.value.remote_type.endswith("Unpicklable")
    assert "in fails_oddly" in caught.value.remote_traceback
    assert "1-2" in str(caught.value)


@pytest.mark.parametrize("how", ["os._exit", "segfault"])
def test_a_dying_worker_fails_its_task_clearly_and_is_replaced(endpoint, how):
    def die():
        if how == "os._exit":
            os._exit(13)
        ctypes.string_at(0)  # reads address 0: SIGSEGV

    with endpoint.executor() as ex:
        pids_before = {ex.submit(os.getpid).result(timeout=60) for _ in range(20)}
        with pytest.raises(WorkerDiedError) as caught:
            ex.submit(die).result(timeout=60)
        assert "worker process running this task died" in str(caught.value)
        assert ("exit code 13" if how == "os._exit" else "SIGSEGV") in str(caught.value)
        # the pool is whole again: every task still runs, on replacement workers
        assert [f.result(timeout=60) for f in [ex.submit(square, 3) for _ in range(10)]] == [9] * 10
        pids_after = {ex.submit(os.getpid).result(timeout=60) for _ in range(20)}
    assert pids_after - pids_before, "a replacement worker should have served tasks"
    assert endpoint.status()["workers"] == 2


def test_print_in_a_function_does_not_break_the_worker(endpoint):
    def chatty(x):
        print("hello from the worker " * 100)
        return x

    with endpoint.executor() as ex:
        assert [f.result(timeout=60) for f in [ex.submit(chatty, i) for i in range(20)]] == list(range(20))


def test_what_workers_print_goes_through_the_managers_rotating_log(endpoint):
    """Appended straight to a file, a function printing in a loop would fill the disk."""
    def shout(n):
        import sys

        print("marker-line-" + "x" * 10_000)  # longer than a log record takes
        print("to stderr", n, file=sys.stderr)
        return n

    with endpoint.executor() as ex:
        assert ex.submit(shout, 7).result(timeout=60) == 7
    logs = endpoint.dir / "logs"
    wait_for(lambda: "to stderr 7" in "".join(p.read_text() for p in logs.glob("manager*.log")),
             what="the worker's output in the manager's log")
    lines = [line for p in logs.glob("manager*.log") for line in p.read_text().splitlines() if "marker-line-" in line]
    assert len(lines) == 1 and len(lines[0]) < 4300, "a long line is cut at 4 KiB"
    assert "compute_endpoint.worker.output" in lines[0]
