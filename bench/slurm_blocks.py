"""Blocks through a real Slurm: ours beside Parsl HTEX, with the same SlurmProvider and strategy period.

    python bench/slurm_blocks.py --system ours|parsl-htex [--burst 8] [--max-blocks 3]

Starts the one-node Slurm of scripts/single-node-slurm.sh if it is not running (root). With init_blocks 0,
measures the time from the first task's submission to its result (a job is submitted, starts, its manager
connects, the task runs), then submits a burst of 2-second tasks and measures how long the strategy takes
to submit max_blocks jobs and to have as many managers connected as the node runs at once. Prints one
JSON object.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SLURM = HERE.parent / "scripts" / "single-node-slurm.sh"
PERIOD = 1.0  # strategy_period for both
PROVIDER = {"partition": "debug", "init_blocks": 0, "min_blocks": 0, "walltime": "00:10:00", "exclusive": False,
            "cmd_timeout": 30}


def nap(seconds):
    import time
    time.sleep(seconds)
    return seconds


def jobs_named(prefix: str) -> dict[str, str]:
    out = subprocess.run(["squeue", "--noheader", "--format=%i %T %j"], capture_output=True, text=True).stdout
    return {job: state for job, state, name in (line.split() for line in out.splitlines()) if name.startswith(prefix)}


def node_fits() -> int:
    """How many one-CPU jobs the node runs at once."""
    return int(subprocess.run(["sinfo", "--noheader", "--format=%c"], capture_output=True, text=True).stdout.split()[0])


def wait(predicate, timeout: float = 180.0) -> float:
    began = time.perf_counter()
    while not predicate():
        if time.perf_counter() - began > timeout:
            raise TimeoutError("gave up waiting")
        time.sleep(0.05)
    return time.perf_counter() - began


def measure(submit, result, connected, job_prefix: str, burst: int, max_blocks: int) -> dict:
    began = time.perf_counter()
    result(submit(0.0))
    first = time.perf_counter() - began
    began = time.perf_counter()
    futures = [submit(2.0) for _ in range(burst)]
    submitted = wait(lambda: len(jobs_named(job_prefix)) >= max_blocks)
    running = min(max_blocks, node_fits())
    wait(lambda: connected() >= running)
    connected_s = time.perf_counter() - began
    for future in futures:
        result(future)
    return {"first_result_s": first, "scale_out_jobs_submitted_s": submitted,
            "scale_out_managers_connected_s": connected_s, "managers_at_once": running, "burst": burst,
            "max_blocks": max_blocks, "strategy_period_s": PERIOD}


def ours(args) -> dict:
    sys.path.insert(0, str(HERE))
    from common import BenchEndpoint

    ep = BenchEndpoint("slurm-bench", engine={
        "max_workers_per_node": 1, "address": "127.0.0.1",
        "job_status_kwargs": {"strategy_period": PERIOD, "max_idletime": 30},
        "provider": {"type": "SlurmProvider", **PROVIDER, "max_blocks": args.max_blocks,
                     "launcher": {"type": "SingleNodeLauncher"}}})
    try:
        ep.start()
        status = lambda: json.loads(ep.cli("status", ep.name, "--json"))  # noqa: E731
        with ep.executor() as ex:
            report = measure(lambda s: ex.submit(nap, s), lambda f: f.result(timeout=300),
                             lambda: status()["managers"], f"compute-endpoint.{ep.name}.", args.burst,
                             args.max_blocks)
    finally:
        ep.delete()
    return {"system": "ours", **report}


def parsl_htex(args) -> dict:
    os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    import parsl
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.launchers import SingleNodeLauncher
    from parsl.providers import SlurmProvider

    run_dir = tempfile.mkdtemp(prefix="parsl-slurm-bench-")
    provider = SlurmProvider(**PROVIDER, max_blocks=args.max_blocks, launcher=SingleNodeLauncher())
    config = Config(executors=[HighThroughputExecutor(label="htex", max_workers_per_node=1, address="127.0.0.1",
                                                      provider=provider)],
                    strategy="simple", strategy_period=PERIOD, max_idletime=30, run_dir=run_dir,
                    initialize_logging=False)
    dfk = parsl.load(config)
    htex = dfk.executors["htex"]
    try:
        report = measure(lambda s: htex.submit(nap, {}, s), lambda f: f.result(timeout=300),
                         lambda: len(htex.connected_managers()), "parsl.htex.", args.burst, args.max_blocks)
    finally:
        dfk.cleanup()
    return {"system": "parsl-htex", **report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=("ours", "parsl-htex"), required=True)
    parser.add_argument("--burst", type=int, default=8)
    parser.add_argument("--max-blocks", type=int, default=3)
    args = parser.parse_args()
    subprocess.run([SLURM, "up"], check=True, capture_output=True, timeout=600)
    print(json.dumps(ours(args) if args.system == "ours" else parsl_htex(args)))


if __name__ == "__main__":
    main()
