"""Per-function containers under soft routing and under random routing: completion time and cold starts.

    python bench/container_routing.py [--tasks 240] [--images 4] [--seconds 0.05]

The pattern of the funcX paper's routing experiment: several functions, each in its own container image,
many short tasks arriving mixed. One endpoint, two managers of two workers each, real podman (the worker
image from scripts/worker-image.sh, tagged once per image so that each is its own container type). The
same shuffled workload runs once under each scheduler_mode; prints one JSON object with, for each, the
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


def run(mode: str, names: list[str], workload: list[int], seconds: float) -> dict:
    sys.path.insert(0, str(HERE))
    from common import BenchEndpoint

    ep = BenchEndpoint(f"routing-{mode}", engine={
        "max_workers_per_node": 2, "container_python": IMAGE_PYTHON, "scheduler_mode": mode,
        "worker_env": {"USER": "root"},
        "provider": {"type": "LocalProvider", "init_blocks": 2, "min_blocks": 2, "max_blocks": 2}},
        containers={f"f{n}": {"runtime": "podman", "image": name} for n, name in enumerate(names)})
    try:
        ep.start()
        executors = {}
        try:
            for n in range(len(names)):
                executors[n] = ep.executor(container=f"f{n}")
            began = time.perf_counter()
            futures = [executors[n].submit(nap, seconds) for n in workload]
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
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=0.05, help="how long each task runs")
    args = parser.parse_args()
    names = images(args.images)
    rng = random.Random(7)
    # Skewed, as real function popularity is: image n is asked for about half as often as image n-1.
    weights = [2.0 ** -n for n in range(args.images)]
    workload = rng.choices(range(args.images), weights=weights, k=args.tasks)
    report = {"tasks": args.tasks, "images": args.images, "task_seconds": args.seconds, "managers": 2,
              "workers_per_manager": 2, "runs": [run(mode, names, workload, args.seconds)
                                                 for mode in ("soft", "random")]}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
