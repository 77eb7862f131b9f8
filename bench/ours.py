"""One run of our whole path: SDK -> RabbitMQ -> endpoint -> interchange -> manager -> workers -> back.

    python bench/ours.py [--workers 2] [--tasks 5000] [--latency 200] [--skip-cold] [--link local|curve]

Prints one JSON object: cold_start_s (from `compute-endpoint start` to the first
result, with the task already queued), throughput (no-op tasks/s, submit all then
wait all), latency_ms p50/p99 (sequential, after warm-up), and the peak RSS (VmHWM)
of each of our processes.

--link local (default): the endpoint's own manager, over a private ipc:// socket.
--link curve: one manager started here as a batch job would start it, over TCP
with CurveZMQ (encrypted and authenticated), with the endpoint's own manager key.
"""

import argparse
import json
import socket
import subprocess
import sys
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


def curve_endpoint(workers: int) -> tuple[BenchEndpoint, int]:
    """An endpoint that runs no manager itself, listening for managers on TCP with CurveZMQ."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ep = BenchEndpoint("ours", engine={
        "max_workers_per_node": workers, "address": "0.0.0.0", "worker_port": port,
        "provider": {"type": "LocalProvider", "init_blocks": 0, "min_blocks": 0, "max_blocks": 1,
                     "parallelism": 0}})
    return ep, port


def start_tcp_manager(ep: BenchEndpoint, port: int, workers: int) -> subprocess.Popen:
    manager = subprocess.Popen([sys.executable, "-m", "compute_endpoint.manager",
                                f"--interchange=tcp://127.0.0.1:{port}", f"--keys-dir={ep.home / ep.name / 'keys'}",
                                f"--workers={workers}", f"--prefetch={workers}", "--manager-id=bench-curve",
                                "--log-level=WARNING"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while json.loads(ep.cli("status", ep.name, "--json")).get("managers") != 1:
        if time.monotonic() > deadline or manager.poll() is not None:
            manager.kill()
            raise RuntimeError("the CurveZMQ manager did not register within 60 s")
        time.sleep(0.2)
    return manager


def peak_rss(ep: BenchEndpoint, manager: subprocess.Popen | None = None) -> dict:
    pids = ep.pids()
    if manager is not None:
        pids["managers"] = [manager.pid]
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
    parser.add_argument("--link", choices=("local", "curve"), default="local")
    args = parser.parse_args()

    manager = None
    if args.link == "curve":
        ep, port = curve_endpoint(args.workers)
    else:
        ep = BenchEndpoint("ours", engine={"max_workers_per_node": args.workers})
    try:
        ep.start()  # register once, so the queue exists for the cold start
        report = {"system": "ours" if args.link == "local" else "ours-curve", "workers": args.workers}
        if args.link == "curve":
            manager = start_tcp_manager(ep, port, args.workers)
        elif args.skip_cold:
            pass
        else:
            ep.stop()
            report["cold_start_s"] = cold_start(ep)
        with ep.executor() as ex:
            def submit(i):
                return ex.submit(noop, i)

            throughput(submit, 500)  # warm-up: imports, caches, connections
            report["throughput"] = throughput(submit, args.tasks)
            if args.latency:
                report["latency_ms"] = latency_ms(submit, args.latency)
            report["peak_rss_mib"] = peak_rss(ep, manager)
    finally:
        if manager is not None:
            manager.terminate()
            manager.wait(30)
        ep.delete()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
