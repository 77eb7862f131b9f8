"""Shared pieces of the benchmarks: a throwaway endpoint run by the real CLI, and RSS readings."""

import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BROKER_URL = os.environ.get("COMPUTE_BENCH_BROKER_URL", "amqp://127.0.0.1:5672/%2F")
IDENTITY = (os.environ.get("COMPUTE_CLIENT_ID", "guest"), os.environ.get("COMPUTE_CLIENT_SECRET", "guest"))


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


# The measurements take `submit(i)`, returning a future of i, so that ours and Parsl
# are measured by the same code. The function submitted must live in the calling
# script (__main__): workers cannot import this module.

def throughput(submit, tasks: int) -> float:
    """No-op tasks per second: submit them all, then wait for them all."""
    began = time.perf_counter()
    futures = [submit(i) for i in range(tasks)]
    results = [f.result(timeout=600) for f in futures]
    elapsed = time.perf_counter() - began
    assert results == list(range(tasks))
    return tasks / elapsed


def latency_ms(submit, count: int, warmup: int = 20) -> dict:
    """p50 and p99 of sequential round trips, after a warm-up."""
    samples = []
    for i in range(count + warmup):
        began = time.perf_counter()
        submit(i).result(timeout=60)
        samples.append((time.perf_counter() - began) * 1000)
    samples = samples[warmup:]
    return {"p50": statistics.median(samples), "p99": percentile(samples, 99)}


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def vm_hwm_mib(pid) -> float:
    """Peak resident set size (VmHWM) of a process ("self" for this one), in MiB."""
    return _status_mib(pid, "VmHWM:")


def rss_mib(pid: int | None) -> float:
    return _status_mib(pid, "VmRSS:")


def _status_mib(pid, field: str) -> float:
    if not pid:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{platform.node()}: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


class BenchEndpoint:
    """An endpoint in a temporary home, configured from ``engine`` overrides."""

    def __init__(self, name: str = "bench", engine: dict | None = None, **top):
        self.home = Path(tempfile.mkdtemp(prefix="compute-bench-"))
        self.name = name
        self.env = dict(os.environ, COMPUTE_ENDPOINT_HOME=str(self.home), COMPUTE_CLIENT_ID=IDENTITY[0],
                        COMPUTE_CLIENT_SECRET=IDENTITY[1])
        self.cli("configure", name, "--broker-url", BROKER_URL)
        config = {
            "broker": {"url": BROKER_URL},
            "engine": {"max_workers_per_node": 2,
                       "provider": {"type": "LocalProvider", "init_blocks": 1, "min_blocks": 1, "max_blocks": 1},
                       **(engine or {})},
            **top,
        }
        (self.home / name / "config.yaml").write_text(yaml.safe_dump(config))

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "compute_endpoint.cli.main", *args], env=self.env,
                              capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise RuntimeError(f"compute-endpoint {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def start(self) -> float:
        began = time.perf_counter()
        try:
            self.cli("start", self.name)
        except RuntimeError:
            # A start that timed out keeps retrying in the background: leave nothing running.
            self.delete()
            raise
        return time.perf_counter() - began

    def stop(self) -> None:
        self.cli("stop", self.name)

    @property
    def endpoint_id(self) -> str:
        return json.loads((self.home / self.name / "endpoint.json").read_text())["endpoint_id"]

    def pids(self) -> dict:
        try:
            return json.loads((self.home / self.name / "components.json").read_text())
        except (OSError, ValueError):
            return {}

    def executor(self, **kwargs):
        from compute_endpoint.sdk import Executor

        return Executor(endpoint_id=self.endpoint_id, broker_url=BROKER_URL, client_id=IDENTITY[0],
                        client_secret=IDENTITY[1], **kwargs)

    def delete(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.cli("delete", self.name, "--yes")
        shutil.rmtree(self.home, ignore_errors=True)
