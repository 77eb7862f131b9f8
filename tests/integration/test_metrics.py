"""An operator points Prometheus at the endpoint's metrics address and sees its tasks counted.

A real endpoint runs tasks submitted with the SDK; Debian's real `prometheus`
server scrapes it every second; the test asks Prometheus, as a dashboard would,
through its HTTP API.
"""

import json
import shutil
import signal
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from ..support.broker import wait_for

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def square(x):
    return x * x


def fails():
    raise ValueError("this task fails on purpose")


class Prometheus:
    """A Prometheus server of the test's own: temp config and storage, loopback only."""

    def __init__(self, workdir: Path, target: str):
        self.port = free_port()
        self.workdir = workdir
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                  "scrape_configs": [{"job_name": "compute-endpoint", "static_configs": [{"targets": [target]}]}]}
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (workdir / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.load(reply)

    def value(self, query: str) -> float | None:
        """The one value an instant query returns, or None (no such series yet, or Prometheus not up yet)."""
        try:
            result = self.api("query", query=query)["data"]["result"]
        except OSError:
            return None
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)  # Prometheus' clean shutdown: flushes the head block and exits 0
        try:
            assert self.process.wait(timeout=60) == 0, self.logs()
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.log.close()

    def logs(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")[-3000:]


@pytest.fixture
def prometheus_dir(tmp_path):
    if not Path(PROMETHEUS).exists():
        pytest.fail("prometheus is not installed: run scripts/ensure-test-tools.sh (apt package prometheus)")
    path = tmp_path / "prometheus"
    path.mkdir()
    return path


def test_prometheus_scraping_the_endpoint_sees_completed_and_failed_tasks(endpoint_factory, prometheus_dir):
    address = f"127.0.0.1:{free_port()}"
    endpoint = endpoint_factory(config={"metrics": {"address": address}})
    with endpoint.executor() as ex:
        assert [ex.submit(square, i).result(timeout=60) for i in range(5)] == [0, 1, 4, 9, 16]
        with pytest.raises(ValueError, match="on purpose"):
            ex.submit(fails).result(timeout=60)

    prometheus = Prometheus(prometheus_dir, address)
    try:
        def counted() -> bool:
            return (prometheus.value("compute_endpoint_tasks_completed_total") == 5
                    and prometheus.value('compute_endpoint_tasks_failed_total{kind="exception"}') == 1)

        wait_for(counted, timeout=90, interval=0.5, what="Prometheus to show 5 completed and 1 failed task")
        assert prometheus.value("compute_endpoint_tasks_received_total") == 6
        assert prometheus.value("compute_endpoint_task_latency_seconds_count") == 6
        assert prometheus.value("compute_endpoint_tasks_outstanding") == 0
        assert prometheus.value("compute_endpoint_managers_connected") == 1
        assert prometheus.value("sum(compute_endpoint_workers)") == 2
        assert prometheus.value('compute_endpoint_blocks{state="RUNNING"}') == 1
        assert prometheus.value("compute_endpoint_broker_connected") == 1
        assert prometheus.value('up{job="compute-endpoint"}') == 1
        median = "histogram_quantile(0.5, sum by (le) (compute_endpoint_task_latency_seconds_bucket))"
        latency = prometheus.value(median)
        assert latency is not None and latency > 0
    finally:
        prometheus.stop()


def test_a_metrics_port_in_use_stops_the_start_naming_the_address(endpoint_factory):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        endpoint = endpoint_factory(config={"metrics": {"address": address}}, start=False)
        done = endpoint.cli("start", endpoint.name)
    said = done.stdout + done.stderr
    assert done.returncode != 0, said
    assert f"metrics.address: cannot serve metrics on {address}" in said
    assert "Address already in use" in said
    assert endpoint.state() != "Running"


def test_without_a_metrics_address_nothing_is_served(endpoint_factory):
    endpoint = endpoint_factory()
    assert endpoint.status()["state"] == "Running"
    log = (endpoint.dir / "logs" / "endpoint.log").read_text()
    assert "serving Prometheus metrics" not in log


def test_the_metrics_page_answers_while_the_endpoint_runs_and_again_after_a_restart(endpoint_factory):
    address = f"127.0.0.1:{free_port()}"
    endpoint = endpoint_factory(config={"metrics": {"address": address}})

    def page() -> str:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as reply:
            return reply.read().decode()

    text = wait_for(lambda: (lambda t: t if "compute_endpoint_managers_connected 1.0" in t else "")(page()),
                    timeout=60, what="a manager in the metrics")
    assert 'compute_endpoint_state{state="Running"} 1.0' in text
    assert f'endpoint_id="{endpoint.endpoint_id}"' in text
    assert "process_resident_memory_bytes" in text

    assert endpoint.stop().returncode == 0
    with pytest.raises(OSError):  # the port went with the daemon
        page()
    endpoint.start()  # and the next daemon has it again
    assert "compute_endpoint_tasks_received_total 0.0" in page()
