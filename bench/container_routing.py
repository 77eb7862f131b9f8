"""Per-function containers under soft routing and under random routing: completion time and cold starts.

    python bench/container_routing.py [--tasks 240] [--images 6] [--seconds 0.05] [--rate 20]
                                      [--managers 4] [--workers 1]

The pattern of the funcX paper's routing experiment: several functions, each in its own container image,
many short tasks arriving mixed over time (--rate per second; 0: all at once). One endpoint with --managers
managers of --workers workers, real podman (the worker image from scripts/worker-image.sh, tagged once per
image so that each is its own container type). The same workload, in the same order and at the same times,
runs once under each scheduler_mode; prints one JSON object with, for each, the
completion time, the placements the interchange chose (warm hits, cold starts, replacements) and the container
workers the managers started and reused, from the endpoint's status.
"""

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMAGE_SCRIPT = HERE.parent / "scripts" / "worker-image.sh"
IMAGE_PYTHON = "/opt/compute-endpoint/bin/python3"


def nap(seconds):
    import time
    time.sleep(seconds)
    return seconds


def images(count: int) -> list[str]:
    base = subprocess.run([IMAGE_SCRIPT, "--podman"], capture_output=True, text=True, check=True,
                          timeout=1800).stdout.strip()
    names = [f"localhost/compute-endpoint-bench-{n}:1" for n in range(count)]
    for name in names:
        subprocess.run(["podman", "tag", base, name], check=True, capture_output=True, timeout=60)
    return names


def run(mode: str, names: list[str], workload: list[int], args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(HERE))
    from common import BenchEndpoint

    ep = BenchEndpoint(f"routing-{mode}", engine={
        "max_workers_per_node": args.workers, "container_python": IMAGE_PYTHON, "scheduler_mode": mode,
        "worker_env": {"USER": "root"}, "heartbeat_period": 1,
        "provider": {"type": "LocalProvider", "init_blocks": args.managers, "min_blocks": args.managers,
                     "max_blocks": args.managers}},
        containers={f"f{n}": {"runtime": "podman", "image": name} for n, name in enumerate(names)})
    try:
        ep.start()
        executors = {}
        try:
            for n in range(len(names)):
                executors[n] = ep.executor(container=f"f{n}")
            began = time.perf_counter()
            futures = []
            for index, n in enumerate(workload):
                if args.rate:  # arrivals at a steady rate, as requests come to a service
                    time.sleep(max(0.0, began + index / args.rate - time.perf_counter()))
                futures.append(executors[n].submit(nap, args.seconds))
            for future in futures:
                future.result(timeout=600)
            elapsed = time.perf_counter() - began
        finally:
            for ex in executors.values():
                ex.shutdown()
        status = final_status(ep, len(workload))
    finally:
        ep.delete()
    # The interchange's placements are its decisions; the managers' counts are what happened (a worker that
    # died, or a warm one the interchange had not heard of yet, makes them differ).
    placements, started = status["container_placements"], status["container_starts"]
    return {"scheduler_mode": mode, "completion_s": round(elapsed, 2), "placements": placements,
            "cold_starts": started.get("cold", 0), "warm_hits": started.get("warm", 0)}


def final_status(ep, tasks: int, patience: float = 30.0) -> dict:
    """The status once every manager's counts include the last task (they come with heartbeats)."""
    deadline = time.monotonic() + patience
    while True:
        status = json.loads(ep.cli("status", ep.name, "--json"))
        started = status["container_starts"]
        if started.get("cold", 0) + started.get("warm", 0) >= tasks or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=240)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=0.05, help="how long each task runs")
    parser.add_argument("--rate", type=float, default=20.0, help="tasks submitted per second (0: all at once)")
    parser.add_argument("--managers", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="workers per manager")
    args = parser.parse_args()
    names = images(args.images)
    rng = random.Random(7)
    # Skewed, as real function popularity is: image n is asked for about half as often as image n-1.
    weights = [2.0 ** -n for n in range(args.images)]
    workload = rng.choices(range(args.images), weights=weights, k=args.tasks)
    report = {"tasks": args.tasks, "images": args.images, "task_seconds": args.seconds, "rate": args.rate,
              "managers": args.managers, "workers_per_manager": args.workers,
              "runs": [run(mode, names, workload, args) for mode in ("soft", "random")]}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
