"""One run of Parsl's HighThroughputExecutor, measured the way bench/ours.py measures us.

    python bench/parsl_htex.py [--workers 2] [--tasks 5000] [--latency 200] [--via executor|apps] [--encrypted]

LocalProvider with one block of --workers workers, as a Globus Compute endpoint
configures it. --via executor (default) submits to the executor itself, as the
upstream endpoint's engine does; --via apps goes through a DataFlowKernel
python_app, as a Parsl script would. Prints one JSON object like ours.py.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from common import children, latency_ms, throughput, vm_hwm_mib


def noop(i):
    return i


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--via", choices=("executor", "apps"), default="executor")
    parser.add_argument("--encrypted", action="store_true", help="CurveZMQ between interchange and workers")
    args = parser.parse_args()
    # Parsl starts its interchange by name; it must be on PATH.
    os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"

    import parsl
    from parsl.app.app import python_app
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider

    run_dir = tempfile.mkdtemp(prefix="parsl-bench-")
    config = Config(
        executors=[HighThroughputExecutor(
            label="htex", max_workers_per_node=args.workers, encrypted=args.encrypted,
            provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1))],
        run_dir=run_dir, initialize_logging=False,
    )
    began = time.perf_counter()
    dfk = parsl.load(config)
    htex = dfk.executors["htex"]
    if args.via == "apps":
        app = python_app(noop, executors=["htex"])

        def submit(i):
            return app(i)
    else:
        def submit(i):
            return htex.submit(noop, {}, i)

    submit(0).result()
    report = {"system": f"parsl-htex-{args.via}{'-encrypted' * args.encrypted}", "workers": args.workers,
              "cold_start_s": time.perf_counter() - began}
    try:
        [submit(i).result() for i in range(500)]  # warm-up, as for ours
        report["throughput"] = throughput(submit, args.tasks)
        if args.latency:
            report["latency_ms"] = latency_ms(submit, args.latency)
        report["peak_rss_mib"] = _parsl_rss(run_dir)
    finally:
        dfk.cleanup()
    print(json.dumps(report))


def _parsl_rss(run_dir: str) -> dict:
    """Peak RSS of this process (the submitting side) and of every process Parsl started.

    LocalProvider detaches the worker pool from us, so it is found by its command
    line, which names this run's directory; its workers are its children.
    """
    rss = {"client": vm_hwm_mib("self")}
    for child in children(os.getpid()):
        if "interchange" in _cmdline(child):
            rss["interchange"] = vm_hwm_mib(child)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and "process_worker_pool" in (cmd := _cmdline(int(proc.name))) and run_dir in cmd:
            rss["manager"] = vm_hwm_mib(int(proc.name))
            for index, worker in enumerate(children(int(proc.name))):
                rss[f"worker{index}"] = vm_hwm_mib(worker)
    return rss


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


if __name__ == "__main__":
    main()
