"""The limits a task runs under: the operator's walltime is a ceiling, and the endpoint's deadline follows from it."""

import math

import pytest

from compute_endpoint.config import ConfigError, load_yaml_text
from compute_endpoint.endpoint.inflight import DeliveryGroup, InflightLedger
from compute_endpoint.limits import WorkerLimits, deadline_after, effective_walltime, walltime_problem


@pytest.mark.parametrize("client, operator, effective", [
    (1e9, 2.0, 2.0), (1.0, 2.0, 1.0), (None, 2.0, 2.0), (3.0, None, 3.0), (None, None, None),
    (math.nan, 2.0, 2.0), (math.inf, 2.0, 2.0), (0.0, 2.0, 2.0),
])
def test_the_effective_walltime_is_the_smaller_and_never_unbounded_by_the_client(client, operator, effective):
    assert effective_walltime(client, operator) == effective


@pytest.mark.parametrize("walltime", [0.0, -1.0, math.nan, math.inf])
def test_walltimes_that_disable_or_defeat_the_limit_are_named(walltime):
    assert "finite number of seconds above 0" in walltime_problem(walltime)


def test_the_deadline_leaves_room_for_every_turn_and_retry():
    # 2 workers, 2 prefetch: the broker hands over 2 x 4 tasks, 4 per worker; one retry; 20 s heartbeat threshold
    assert deadline_after(10.0, 2, 2, 1, 20.0) == 10 * (4 + 1) + 40


def test_tasks_past_their_deadline_are_found_once_and_only_without_a_result():
    ledger = InflightLedger()
    for task_id in ("late", "answered", "finished"):
        ledger.receive(task_id, b"", "a.b", DeliveryGroup(None, 1))  # type: ignore[arg-type]
        ledger.set_deadline(ledger[task_id], -1.0)
    ledger["answered"].result = b"r"
    ledger.finish("finished")
    assert [e.task_id for e in ledger.overdue(1e12)] == ["late"]
    assert ledger.overdue(1e12) == []


@pytest.mark.parametrize("text, problem", [
    ("memory: lots", "expected a size in bytes or with a unit"),
    ("memory: 1MiB", "less than 64 MiB"),
    ("cpu_seconds: .nan", "expected a finite number"),
    ("processes: 0", "expected an integer of at least 1"),
])
def test_worker_limits_are_checked_naming_the_key(text, problem):
    with pytest.raises(ConfigError, match=f"engine.worker_limits.{text.split(':')[0]}: .*{problem}"):
        load_yaml_text(f"engine:\n  worker_limits:\n    {text}\n", "config.yaml")


def test_worker_limits_read_as_the_operator_writes_them():
    config = load_yaml_text("engine:\n  worker_limits: {memory: 2GiB, processes: 64, cpu_seconds: 30}\n", "c.yaml")
    limits = config.engine.worker_limits.limits()
    assert limits == WorkerLimits(2 * 2**30, 64, 30.0)
    assert limits.describe() == "memory 2.0 GiB, 64 processes, CPU time 30s per task"
