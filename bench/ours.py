"""One run of our whole path: SDK -> RabbitMQ -> endpoint -> interchange -> manager -> workers -> back.

    python bench/ours.py [--workers 2] [--tasks 5000] [--latency 200] [--skip-cold]

Prints one JSON object: cold_start_s (from `compute-endpoint start` to the first
result, with the task already queued), throughput (no-op tasks/s, submit all then
wait all), latency_ms p50/p99 (sequential, after warm-up), and the peak RSS (VmHWM)
of each of our processes.
"""

import argparse
import json
import time

from common import BenchEndpoint, children, latency_ms, throughput, vm_hwm_mib


def noop(i):
    return i


def cold_start(ep: BenchEndpoint) -> float:
    """The endpoint is registered but stopped; a task waits on the broker while it starts."""
    with ep.executor() as ex:
        future = ex.submit(noop, 0)
        began = time.perf_counter()
        ep.start()
        future.result(timeout=120)
        return time.perf_counter() - began


def peak_rss(ep: BenchEndpoint) -> dict:
    pids = ep.pids()
    rss = {"endpoint": vm_hwm_mib(pids.get("endpoint")), "interchange": vm_hwm_mib(pids.get("interchange"))}
    for index, pid in enumerate(pids.get("managers") or []):
        rss[f"manager{index}"] = vm_hwm_mib(pid)
        for worker_index, worker in enumerate(children(pid)):
            rss[f"worker{index}.{worker_index}"] = vm_hwm_mib(worker)
    rss["sdk_client"] = vm_hwm_mib("self")
    return rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--skip-cold", action="store_true")
    args = parser.parse_args()

    ep = BenchEndpoint("ours", engine={"max_workers_per_node": args.workers})
    try:
        ep.start()  # register once, so the queue exists for the cold start
        ep.stop()
        report = {"system": "ours", "workers": args.workers}
        if args.skip_cold:
            ep.start()
        else:
            report["cold_start_s"] = cold_start(ep)
        with ep.executor() as ex:
            def submit(i):
                return ex.submit(noop, i)

            throughput(submit, 500)  # warm-up: imports, caches, connections
            report["throughput"] = throughput(submit, args.tasks)
            if args.latency:
                report["latency_ms"] = latency_ms(submit, args.latency)
            report["peak_rss_mib"] = peak_rss(ep)
    finally:
        ep.delete()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
