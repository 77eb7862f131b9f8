"""The endpoint in front of a real Slurm (slurmctld, slurmd and munge from Debian, on this host).

Each block is a Slurm job whose manager connects back over CurveZMQ; the
strategy adds and removes jobs with the load, failed jobs are reported with
their output, and a job killed under its tasks loses none of them.
"""

import subprocess
import time

import pytest

from compute_endpoint.sdk import MPIFunction, NoResourcesError

from ..support.broker import wait_for


def slurm_config(**provider) -> dict:
    return {"engine": {
        "max_workers_per_node": 1, "address": "127.0.0.1", "heartbeat_threshold": 6,
        "job_status_kwargs": {"strategy_period": 1, "status_period": 1, "max_idletime": 4},
        "provider": {"type": "SlurmProvider", "partition": "debug", "init_blocks": 0, "min_blocks": 0,
                     "max_blocks": 1, "walltime": "00:10:00", "cmd_timeout": 30,
                     "launcher": {"type": "SingleNodeLauncher"}, **provider},
    }}


def our_jobs(ep) -> dict[str, str]:
    """Job id -> Slurm state of the endpoint's jobs that Slurm still lists."""
    out = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%i %T %j"], capture_output=True,
                         text=True, check=True).stdout
    prefix = f"compute-endpoint.{ep.name}.block-"
    return {job: state for job, state, name in (line.split() for line in out.splitlines())
            if name.startswith(prefix)}


def live_jobs(ep) -> dict[str, str]:
    return {job: state for job, state in our_jobs(ep).items() if state in ("PENDING", "RUNNING", "CONFIGURING")}


def blocks(ep) -> list[dict]:
    return ep.status()["provider"]["blocks"]


def square(x):
    return x * x


def nap(seconds, value):
    import time
    time.sleep(seconds)
    return value


def test_with_no_blocks_the_first_task_starts_a_job_and_returns_through_it(slurm, endpoint_factory):
    ep = endpoint_factory("slurm-first", config=slurm_config())
    assert live_jobs(ep) == {}, "init_blocks: 0 submits nothing"
    started = time.monotonic()
    with ep.executor() as ex:
        assert ex.submit(square, 7).result(timeout=120) == 49
    print(f"\nfirst result through a new Slurm job: {time.monotonic() - started:.1f} s")
    (block,) = blocks(ep)
    assert block["state"] == "RUNNING" and block["managers"] == 1 and block["job_id"] in our_jobs(ep)
    table = ep.cli("status", ep.name).stdout
    assert "Blocks from SlurmProvider" in table and block["job_id"] in table
    assert ep.stop().returncode == 0
    wait_for(lambda: not live_jobs(ep), timeout=30, what="the job to end with the endpoint")


def test_a_burst_scales_out_to_max_blocks_and_back_in_after_max_idletime(slurm, endpoint_factory):
    ep = endpoint_factory("slurm-burst", config=slurm_config(max_blocks=3))
    with ep.executor() as ex:
        futures = [ex.submit(nap, 3, i) for i in range(6)]
        jobs = wait_for(lambda: (lambda j: j if len(j) == 3 else None)(live_jobs(ep)), timeout=60,
                        what="three jobs")
        assert "PENDING" in jobs.values(), "an exclusive node runs one job: the others wait in the queue"
        assert sorted(f.result(timeout=180) for f in futures) == list(range(6))
    wait_for(lambda: not live_jobs(ep), timeout=90, what="idle blocks to be scaled in")
    assert {b["state"] for b in blocks(ep)} <= {"SCALED_IN"}, blocks(ep)


def test_a_block_whose_job_fails_is_reported_and_tasks_fail_with_its_output(slurm, endpoint_factory):
    ep = endpoint_factory("slurm-broken", config=slurm_config(
        worker_init="echo 'loading the site environment failed' >&2; exit 3"))
    with ep.executor() as ex:
        future = ex.submit(square, 3)
        with pytest.raises(NoResourcesError) as failure:
            future.result(timeout=120)
    message = str(failure.value)
    assert "ended before any manager connected" in message
    assert "loading the site environment failed" in message
    status = ep.status()
    assert status["state"] == "Degraded" and "every block failed" in status["degraded"]
    assert blocks(ep)[0]["state"] == "FAILED"
    assert ep.state() == "Running", "the endpoint stays up and tries again"


def test_scancel_of_a_running_block_loses_no_task(slurm, endpoint_factory):
    ep = endpoint_factory("slurm-cancel", config=slurm_config())
    with ep.executor() as ex:
        futures = [ex.submit(nap, 2, i) for i in range(4)]
        wait_for(lambda: any(b["managers"] for b in blocks(ep)), timeout=60, what="the block's manager")
        time.sleep(1)  # a task is running
        (job,) = live_jobs(ep)
        subprocess.run(["scancel", job], check=True)
        assert sorted(f.result(timeout=180) for f in futures) == [0, 1, 2, 3]
    states = {b["job_id"]: b["state"] for b in blocks(ep)}
    # Without an accounting database Parsl reads states from squeue, which soon forgets a cancelled job.
    assert states[job] in ("CANCELLED", "COMPLETED") and len(states) >= 2, "a new block took over"


def test_drain_period_retires_a_block_and_a_new_one_takes_over(slurm, endpoint_factory):
    config = slurm_config(walltime="00:01:00")
    config["engine"]["drain_period"] = 8
    ep = endpoint_factory("slurm-drain", config=config)
    with ep.executor() as ex:
        futures = [ex.submit(nap, 1, i) for i in range(14)]
        assert sorted(f.result(timeout=180) for f in futures) == list(range(14))
    ended = [b for b in blocks(ep) if b["state"] != "RUNNING"]
    assert ended and ended[0]["state"] in ("SCALED_IN", "COMPLETED"), blocks(ep)
    assert len(blocks(ep)) >= 2


def test_mpi_function_runs_its_ranks_with_srun_inside_the_block(slurm, endpoint_factory):
    config = slurm_config(exclusive=False, scheduler_options="#SBATCH --ntasks-per-node=2",
                          launcher={"type": "SimpleLauncher"})
    config["engine"].update(type="GlobusMPIEngine", mpi_launcher="srun")
    ep = endpoint_factory("slurm-mpi", config=config)
    with ep.executor(resource_specification={"num_nodes": 1, "ranks_per_node": 2}) as ex:
        result = ex.submit(MPIFunction("sh -c 'echo rank $SLURM_PROCID of $SLURM_NTASKS'")).result(timeout=120)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == ["rank 0 of 2", "rank 1 of 2"]
    assert result.cmd.startswith("srun -N 1 -n 2 --ntasks-per-node=2 --nodelist=")
