"""Metrics: the metrics: section of config.yaml, counters bumped by the daemon, levels read on scrape, the server."""

import socket
import threading
import time
import urllib.request

import prometheus_client
import pytest

from compute_endpoint.config import Config, ConfigError, MetricsConfig
from compute_endpoint.config.describe import describe
from compute_endpoint.config.template import render_default_config
from compute_endpoint.endpoint import metrics_state
from compute_endpoint.endpoint.inflight import InflightTask
from compute_endpoint.endpoint.metrics import EndpointMetrics, MetricsServer
from compute_endpoint.endpoint.reload import apply_reload
from compute_endpoint.protocol import ErrorKind, InterchangeStatus, Result

from ..support.config_text import error_of, load

# --- config ---------------------------------------------------------------------


def test_metrics_are_off_unless_an_address_is_given():
    for text in ("display_name: x", "metrics:", "metrics: {}", "metrics: {address: ''}", "metrics: {address: null}"):
        assert not load(text).metrics.enabled, text


@pytest.mark.parametrize("address, host, port", [
    ("127.0.0.1:9465", "127.0.0.1", 9465),
    ("[::1]:9465", "::1", 9465),
    ("localhost:9100", "localhost", 9100),
    ("metrics.example.org:1", "metrics.example.org", 1),
])
def test_a_metrics_address_is_host_and_port(address, host, port):
    config = load(f"metrics: {{address: '{address}'}}")
    assert (config.metrics.enabled, config.metrics.host, config.metrics.port) == (True, host, port)


@pytest.mark.parametrize("address, says", [
    ("9465", "expected HOST:PORT"),
    (":9465", "expected HOST:PORT"),
    ("127.0.0.1:0", "the port must be a number from 1 to 65535, got '0'"),
    ("127.0.0.1:65536", "the port must be a number from 1 to 65535"),
    ("127.0.0.1:http", "the port must be a number"),
    ("::1:9465", "an IPv6 address goes in brackets ([::1]:9465)"),
    ("[localhost]:9465", "is not an IPv6 address"),
    ("bad host:9465", "is not a host name or an IP address"),
])
def test_a_bad_metrics_address_is_a_config_error_naming_file_line_and_key(address, says):
    message = error_of(f"""
        display_name: x
        metrics:
          address: '{address}'
    """)
    assert message.startswith("config.yaml:4: metrics.address: ")
    assert says in message


def test_metrics_keys_are_checked_like_every_section():
    assert "metrics.adress: unknown key; expected one of: address" in error_of("metrics: {adress: 1}")
    assert "metrics.address: expected a string, got int 9465" in error_of("metrics: {address: 9465}")
    assert "metrics: expected a mapping of settings" in error_of("metrics: 127.0.0.1:9465")


def test_a_config_py_may_build_the_section_itself():
    assert Config(metrics=MetricsConfig(address="127.0.0.1:9465")).metrics.port == 9465
    with pytest.raises(ConfigError, match="address: the port must be"):
        MetricsConfig(address="127.0.0.1:99999")


def test_configure_writes_metrics_on_loopback_for_the_packaged_service_only():
    system = load(render_default_config("demo", None, 2, system=True))
    mine = load(render_default_config("demo", None, 2, system=False))
    assert system.metrics.address == "127.0.0.1:9465"
    assert not mine.metrics.enabled
    assert "metrics:" in render_default_config("demo", None, 2, system=False)  # there to fill in


def test_a_changed_metrics_address_is_applied_by_a_restart():
    running = load("metrics: {address: '127.0.0.1:9465'}")
    changes = apply_reload(running, load("metrics: {address: '127.0.0.1:9466'}"))
    assert changes.need_restart == ["metrics"] and running.metrics.port == 9465


def test_check_config_says_where_metrics_are_served():
    rows = dict(describe(load("metrics: {address: '127.0.0.1:9465'}")))
    assert rows["Metrics"] == "Prometheus metrics at http://127.0.0.1:9465/metrics"
    assert rows["Metrics"] != dict(describe(load("{}")))["Metrics"]


# --- counters bumped where things happen ---------------------------------------------


def value(metrics: EndpointMetrics, metric: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(metric, labels)


def finished(result: Result, age: float = 0.5) -> InflightTask:
    task = InflightTask(result.task_id, b"", "reply", time.monotonic() - age)
    task.result = result.pack()
    return task


def test_results_count_as_completed_or_failed_by_kind_and_are_timed():
    metrics = EndpointMetrics()
    for _ in range(3):
        metrics.task_received()
    metrics.results_published([
        finished(Result(task_id="a", ok=True)),
        finished(Result(task_id="b", ok=True), age=42),
        finished(Result.failure("c", ErrorKind.WORKER_DIED, "it died")),
    ])
    metrics.results_published([finished(Result(task_id="d", ok=False, error_kind=ErrorKind.EXCEPTION))])
    assert value(metrics, "compute_endpoint_tasks_received_total") == 3
    assert value(metrics, "compute_endpoint_tasks_completed_total") == 2
    assert value(metrics, "compute_endpoint_tasks_failed_total", kind="worker_died") == 1
    assert value(metrics, "compute_endpoint_tasks_failed_total", kind="exception") == 1
    assert value(metrics, "compute_endpoint_tasks_failed_total", kind="walltime_exceeded") == 0  # shown before any
    assert value(metrics, "compute_endpoint_task_latency_seconds_count") == 4
    assert value(metrics, "compute_endpoint_task_latency_seconds_bucket", le="30.0") == 3
    assert 42 < value(metrics, "compute_endpoint_task_latency_seconds_sum") < 44


def test_an_unreadable_result_still_counts_as_a_failure():
    metrics = EndpointMetrics()
    task = InflightTask("x", b"", "reply", time.monotonic())
    task.result = b"not a message"
    metrics.results_published([task])
    assert value(metrics, "compute_endpoint_tasks_failed_total", kind="unreadable") == 1


def test_reconnects_resends_and_set_aside_messages_are_counted():
    metrics = EndpointMetrics()
    metrics.reconnected()
    metrics.reconnected()
    metrics.resent(4)
    metrics.set_aside("sender-not-permitted")
    assert value(metrics, "compute_endpoint_broker_reconnects_total") == 2
    assert value(metrics, "compute_endpoint_tasks_retried_total", reason="interchange_restart") == 4
    assert value(metrics, "compute_endpoint_messages_set_aside_total", reason="sender-not-permitted") == 1


def ix_status(incarnation: str, retried: int, cold: int, warm: int) -> InterchangeStatus:
    return InterchangeStatus.of([], incarnation=incarnation, pid=1, capacity=0, free_slots=0, queued=0, running=0,
                                retried=retried, container_starts={"cold": cold, "warm": warm})


def test_the_interchanges_running_totals_become_counters_that_survive_its_restart():
    metrics = EndpointMetrics()
    for status in (ix_status("one", 1, 2, 5), ix_status("one", 3, 2, 9), ix_status("two", 1, 1, 0),
                   ix_status("two", 0, 1, 0)):  # (a total going backwards adds nothing)
        metrics.observe_interchange(status)
    assert value(metrics, "compute_endpoint_tasks_retried_total", reason="system_failure") == 3 + 1
    assert value(metrics, "compute_endpoint_container_cold_starts_total") == 2 + 1
    assert value(metrics, "compute_endpoint_container_warm_hits_total") == 9


# --- levels read from the status on scrape -----------------------------------------------


STATUS = {"name": "demo", "endpoint_id": "e-1", "version": "9.9", "state": "Running", "degraded": None,
          "broker": {"connected": True}, "managers": 2, "workers": 8, "idle_workers": 3, "capacity": 16,
          "tasks_queued_in_interchange": 4, "tasks_running": 5, "tasks_outstanding": 9, "interchange_restarts": 1,
          "managers_replaced": 2, "internal_errors": 0,
          "provider": {"blocks": [{"state": "RUNNING"}, {"state": "RUNNING"}, {"state": "PENDING"}]}}


class FakeLoop:
    """The daemon's loop on a thread of its own: callbacks run there, as add_callback_threadsafe would run them."""

    def __init__(self):
        self.threads: list[str] = []
        self.closed = False
        self.stuck = False

    def add_callback_threadsafe(self, callback):
        if self.closed:
            raise RuntimeError("the loop is closed")
        if not self.stuck:
            thread = threading.Thread(target=lambda: (self.threads.append(threading.current_thread().name),
                                                      callback()), name="loop")
            thread.start()


def attached(status: dict, loop: FakeLoop) -> EndpointMetrics:
    metrics = EndpointMetrics()
    metrics.read_status_with(lambda: dict(status), loop.add_callback_threadsafe)  # as_dict: a new one each time
    return metrics


def test_gauges_show_what_status_shows():
    loop = FakeLoop()
    metrics = attached(STATUS, loop)
    assert value(metrics, "compute_endpoint_tasks_outstanding") == 9
    assert value(metrics, "compute_endpoint_tasks_queued_in_interchange") == 4
    assert value(metrics, "compute_endpoint_managers_connected") == 2
    assert value(metrics, "compute_endpoint_workers", state="idle") == 3
    assert value(metrics, "compute_endpoint_workers", state="busy") == 5
    assert value(metrics, "compute_endpoint_capacity") == 16
    assert value(metrics, "compute_endpoint_blocks", state="RUNNING") == 2
    assert value(metrics, "compute_endpoint_blocks", state="PENDING") == 1
    assert value(metrics, "compute_endpoint_broker_connected") == 1
    assert value(metrics, "compute_endpoint_state", state="Running") == 1
    assert value(metrics, "compute_endpoint_state", state="Stopping") == 0
    assert value(metrics, "compute_endpoint_info", name="demo", endpoint_id="e-1", version="9.9") == 1
    assert value(metrics, "compute_endpoint_managers_replaced_total") == 2
    assert value(metrics, "compute_endpoint_degraded") == 0
    assert set(loop.threads) == {"loop"}, "the status is read on the daemon's loop, not the scraping thread"


def test_a_block_state_that_empties_shows_zero_rather_than_vanishing():
    status = dict(STATUS)
    metrics = attached(status, FakeLoop())
    assert value(metrics, "compute_endpoint_blocks", state="PENDING") == 1
    status["provider"] = {"blocks": [{"state": "RUNNING"}]}
    assert value(metrics, "compute_endpoint_blocks", state="PENDING") == 0


def test_a_loop_that_does_not_answer_gets_the_last_status(monkeypatch):
    monkeypatch.setattr(metrics_state, "READ_TIMEOUT", 0.05)
    status = dict(STATUS)
    loop = FakeLoop()
    metrics = attached(status, loop)
    assert value(metrics, "compute_endpoint_tasks_outstanding") == 9
    status["tasks_outstanding"] = 1
    loop.stuck = True
    assert value(metrics, "compute_endpoint_tasks_outstanding") == 9
    loop.closed = True
    assert value(metrics, "compute_endpoint_tasks_outstanding") == 9


def test_before_the_daemon_runs_only_counters_and_process_metrics_have_values():
    metrics = EndpointMetrics()
    assert value(metrics, "compute_endpoint_tasks_outstanding") is None
    assert value(metrics, "compute_endpoint_tasks_received_total") == 0
    assert value(metrics, "process_cpu_seconds_total") is not None


def test_a_status_read_that_fails_is_logged_not_raised(caplog):
    def broken():
        raise KeyError("nope")

    metrics = EndpointMetrics()
    metrics.read_status_with(broken, FakeLoop().add_callback_threadsafe)
    assert value(metrics, "compute_endpoint_tasks_outstanding") is None
    assert "internal error reading the status for metrics" in caplog.text


def test_every_endpoint_has_its_own_registry_and_the_global_one_stays_empty_of_ours():
    one, two = EndpointMetrics(), EndpointMetrics()
    one.task_received()
    assert value(two, "compute_endpoint_tasks_received_total") == 0
    assert prometheus_client.REGISTRY.get_sample_value("compute_endpoint_tasks_received_total") is None


def test_names_include_the_suffixes_prometheus_stores():
    names = EndpointMetrics().names()
    assert {"compute_endpoint_tasks_completed_total", "compute_endpoint_task_latency_seconds_bucket",
            "compute_endpoint_task_latency_seconds_sum", "compute_endpoint_task_latency_seconds_count",
            "compute_endpoint_tasks_outstanding", "compute_endpoint_blocks", "process_resident_memory_bytes",
            "compute_endpoint_interchange_restarts_total"} <= names
    assert "compute_endpoint_tasks_completed" not in names  # no such series: counters end in _total


# --- the HTTP server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_server_serves_the_registry_on_the_configured_address_only():
    metrics = EndpointMetrics()
    metrics.task_received()
    port = free_port()
    server = MetricsServer.start(MetricsConfig(address=f"127.0.0.1:{port}"), metrics)
    assert server is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        assert "compute_endpoint_tasks_received_total 1.0" in text
        assert server._httpd.server_address[0] == "127.0.0.1"
    finally:
        server.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_no_address_no_server():
    assert MetricsServer.start(MetricsConfig(), EndpointMetrics()) is None


def test_a_port_in_use_is_a_config_error_naming_the_address_and_why():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ConfigError) as caught:
            MetricsServer.start(MetricsConfig(address=address), EndpointMetrics(), "/etc/ce/demo/config.yaml")
    message = str(caught.value)
    assert message.startswith(f"/etc/ce/demo/config.yaml: metrics.address: cannot serve metrics on {address}: ")
    assert "Address already in use" in message and "choose a free port" in message


def test_an_address_this_host_does_not_have_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot serve metrics on 192.0.2.1:9465: .*no network interface"):
        MetricsServer.start(MetricsConfig(address="192.0.2.1:9465"), EndpointMetrics())
