"""PBS Pro, LSF and HTCondor through Parsl's providers, against stand-ins for their commands that run each
job on this host (tests/support/fake_scheduler): the submit scripts are rendered right, the states read
right, and blocks work end to end."""

import json
import os
from pathlib import Path

import pytest

from compute_endpoint.sdk import NoResourcesError

from ..support.broker import wait_for

FAKE = Path(__file__).parents[1] / "support" / "fake_scheduler" / "scheduler.py"
COMMANDS = {"PBSProProvider": ("qsub", "qstat", "qdel"), "LSFProvider": ("bsub", "bjobs", "bkill"),
            "CondorProvider": ("condor_submit", "condor_q", "condor_rm")}
PROVIDERS = {
    "PBSProProvider": {"account": "my-allocation", "queue": "debug", "cpus_per_node": 2, "select_options": "ngpus=1",
                       "scheduler_options": "#PBS -l filesystems=home", "walltime": "00:10:00"},
    "LSFProvider": {"project": "my-project", "queue": "batch", "walltime": "00:10:00", "bsub_redirection": False},
    "CondorProvider": {"project": "my-project", "requirements": "OpSys == \"LINUX\""},
}
RENDERED = {  # what each scheduler must find in the submit script (or command line)
    "PBSProProvider": ["#PBS -l select=1:ncpus=2:ngpus=1", "#PBS -l filesystems=home", "#PBS -l walltime=00:10:00"],
    "LSFProvider": ["#BSUB -W 10", "#BSUB -P my-project", "#BSUB -q batch"],
    "CondorProvider": ["+projectname            = my-project", "requirements            = OpSys == \"LINUX\""],
}


@pytest.fixture
def scheduler(tmp_path):
    bin_dir, state = tmp_path / "bin", tmp_path / "scheduler"
    bin_dir.mkdir()
    state.mkdir()
    for names in COMMANDS.values():
        for name in names:
            (bin_dir / name).symlink_to(FAKE)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SCHEDULER_DIR": str(state)}
    yield state, env


def calls(state: Path) -> list[list[str]]:
    path = state / "calls.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def start(ep, env):
    done = ep.cli("start", ep.name, env={**ep.env(), **env})
    assert done.returncode == 0, done.stderr + ep.logs()


def config(provider: str, **extra) -> dict:
    return {"engine": {"max_workers_per_node": 1, "address": "127.0.0.1", "heartbeat_threshold": 6,
                       "job_status_kwargs": {"strategy_period": 1, "status_period": 1, "max_idletime": 60},
                       "provider": {"type": provider, "init_blocks": 0, "min_blocks": 0, "max_blocks": 1,
                                    **PROVIDERS[provider], **extra}}}


def cube(x):
    return x ** 3


@pytest.mark.parametrize("provider", sorted(COMMANDS))
def test_a_task_runs_through_a_block_and_stop_cancels_the_job(endpoint_factory, scheduler, provider):
    state, env = scheduler
    ep = endpoint_factory(f"fake-{provider.lower()}", config=config(provider), start=False)
    start(ep, env)
    with ep.executor() as ex:
        assert ex.submit(cube, 3).result(timeout=90) == 27
    wait_for(lambda: [(b["state"], b["managers"]) for b in ep.status()["provider"]["blocks"]] == [("RUNNING", 1)],
             timeout=20, what="the scheduler's word that the block runs")
    script = next(state.glob("*.script")).read_text()
    for line in RENDERED[provider]:
        assert line in script, f"{line!r} not in the submit script:\n{script}"
    assert any(call[0] == COMMANDS[provider][1] for call in calls(state)), "states come from the status command"
    assert ep.stop().returncode == 0
    # Its manager leaves when the endpoint stops, which ends the job; whatever still runs is cancelled.
    jobs = [path.stem for path in state.glob("*.json")]
    wait_for(lambda: all((state / f"{job}.exit").exists() for job in jobs), timeout=20, what="the jobs to end")


def test_pbs_submit_options_carry_queue_and_account(endpoint_factory, scheduler):
    state, env = scheduler
    ep = endpoint_factory("fake-pbs-args", config=config("PBSProProvider", init_blocks=1), start=False)
    start(ep, env)
    wait_for(lambda: any(c[0] == "qsub" for c in calls(state)), timeout=30, what="qsub")
    qsub = next(c for c in calls(state) if c[0] == "qsub")
    assert qsub[1:5] == ["-q", "debug", "-A", "my-allocation"]


@pytest.mark.parametrize("provider", sorted(COMMANDS))
def test_a_block_that_exits_before_its_manager_connects_fails_with_its_output(endpoint_factory, scheduler,
                                                                               provider):
    state, env = scheduler
    ep = endpoint_factory(f"fake-bad-{provider.lower()}",
                          config=config(provider, worker_init="echo 'no such module: python/3.11' >&2; exit 3"),
                          start=False)
    start(ep, env)
    with ep.executor() as ex, pytest.raises(NoResourcesError, match="before any manager connected") as failure:
        ex.submit(cube, 2).result(timeout=90)
    assert "no such module: python/3.11" in str(failure.value)
    assert ep.status()["state"] == "Degraded"
