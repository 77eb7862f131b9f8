"""The seed's lifecycle: configure, start, list, status, stop, restart, delete, and crash recovery."""

import json
import os
import signal
import time

from compute_endpoint.procs import pid_alive

from ..support.broker import queue_depth, wait_for


def test_states_go_initialized_running_stopped(endpoint_factory):
    ep = endpoint_factory(start=False)
    assert ep.state() == "Initialized"
    rows = json.loads(ep.cli("list", "--json").stdout)
    assert rows == [{"name": "default", "status": "Initialized", "endpoint_id": None}]

    ep.start()
    assert ep.state() == "Running"
    endpoint_id = ep.endpoint_id
    assert len(endpoint_id) == 36

    stopped = ep.stop()
    assert stopped.returncode == 0, stopped.stderr
    assert ep.state() == "Stopped"
    assert ep.endpoint_id == endpoint_id, "the id survives a stop"


def test_list_prints_the_seed_table(endpoint_factory):
    ep = endpoint_factory()
    endpoint_factory("gpu_cluster", start=False)
    table = ep.cli("list").stdout
    lines = table.splitlines()
    assert lines[1].split("|")[1:4] == [" Endpoint Name ", " Status      ", " Endpoint ID                          "]
    assert lines[2].startswith("+====")
    assert f"| default       | Running     | {ep.endpoint_id} |" in table
    assert "| gpu_cluster   | Initialized | None" in table


def test_stop_stops_everything_and_twice_is_harmless(endpoint):
    comp = endpoint.components()
    pids = [comp["endpoint"], comp["interchange"], *comp["managers"]]
    with endpoint.executor() as ex:
        worker_pids = {ex.submit(os.getpid).result(timeout=60) for _ in range(10)}
    first = endpoint.stop()
    assert first.returncode == 0 and "stopped" in first.stdout
    for pid in pids + list(worker_pids):
        assert not pid_alive(pid), f"pid {pid} survived stop"
    second = endpoint.stop()
    assert second.returncode == 0
    assert "not running" in second.stdout
    assert endpoint.state() == "Stopped"


def test_kill_9_shows_disconnected_and_start_works_again(endpoint):
    comp = endpoint.components()
    os.kill(comp["endpoint"], signal.SIGKILL)
    wait_for(lambda: endpoint.state() == "Disconnected", what="Disconnected state")
    # components die with the daemon instead of lingering
    wait_for(lambda: not any(pid_alive(p) for p in [comp["interchange"], *comp["managers"]]), timeout=10,
             what="orphaned components to exit")

    restarted = endpoint.cli("start", "default")
    assert restarted.returncode == 0, restarted.stderr
    assert "not stopped cleanly" in restarted.stderr
    assert endpoint.state() == "Running"
    with endpoint.executor() as ex:
        assert ex.submit(pow, 3, 3).result(timeout=60) == 27


def test_stop_after_a_crash_cleans_up(endpoint):
    os.kill(endpoint.components()["endpoint"], signal.SIGKILL)
    wait_for(lambda: endpoint.state() == "Disconnected", what="Disconnected state")
    cleaned = endpoint.stop()
    assert cleaned.returncode == 0 and "not stopped cleanly" in cleaned.stdout
    assert endpoint.state() == "Stopped"


def test_status_json_has_the_promised_shape(endpoint):
    with endpoint.executor() as ex:
        assert ex.submit(abs, -4).result(timeout=60) == 4
    status = endpoint.status()
    assert status["state"] == "Running"
    assert status["endpoint_id"] == endpoint.endpoint_id
    assert set(status["queues"]) == {"tasks", "commands", "status", "dead_letter"}
    assert status["queues"]["tasks"] == f"ce.{endpoint.identity.client_id}.{endpoint.endpoint_id}.tasks"
    assert status["managers"] == 1 and status["workers"] == 2
    assert status["tasks_outstanding"] == 0 and status["tasks_completed"] >= 1
    pids = status["pids"]
    assert set(pids) == {"endpoint", "interchange", "managers"}
    assert all(pid_alive(p) for p in [pids["endpoint"], pids["interchange"], *pids["managers"]])

    endpoint.stop()
    after = endpoint.status()
    assert after["state"] == "Stopped"
    assert after["pids"] == {"endpoint": None, "interchange": None, "managers": []}


def test_restart_keeps_the_id_and_serves(endpoint):
    endpoint_id = endpoint.endpoint_id
    done = endpoint.cli("restart", "default")
    assert done.returncode == 0, done.stderr
    assert endpoint.endpoint_id == endpoint_id
    with endpoint.executor() as ex:
        assert ex.submit(max, 1, 9).result(timeout=60) == 9


def test_delete_removes_files_and_queues(endpoint):
    tasks_queue = endpoint.status()["queues"]["tasks"]
    assert queue_depth(tasks_queue) == 0
    done = endpoint.cli("delete", "default", "--yes")
    assert done.returncode == 0, done.stderr
    assert not endpoint.dir.exists()
    assert queue_depth(tasks_queue) is None
    listing = endpoint.cli("list").stdout
    assert "No endpoints configured" in listing


def test_start_twice_says_already_running(endpoint):
    again = endpoint.cli("start", "default")
    assert again.returncode == 73  # EX_CANTCREAT: already running
    assert "already running" in again.stderr
    assert "Traceback" not in again.stderr


def test_unknown_endpoint_name_is_a_clear_error(endpoint_factory, tmp_path):
    ep = endpoint_factory(start=False)
    for command in ("start", "stop", "status"):
        done = ep.cli(command, "nosuch")
        assert done.returncode == 2
        assert "endpoint 'nosuch' is not configured" in done.stderr
        assert "Traceback" not in done.stderr


def test_help_on_every_command(endpoint_factory):
    ep = endpoint_factory(start=False)
    for command in ("configure", "login", "start", "stop", "restart", "list", "status", "delete", "check-config"):
        done = ep.cli(command, "--help")
        assert done.returncode == 0, (command, done.stderr)
        assert "Usage:" in done.stdout
    assert "--install-completion" in ep.cli("--help").stdout


def test_start_returns_only_once_consuming(endpoint_factory):
    ep = endpoint_factory(start=False)
    began = time.monotonic()
    ep.start()
    # a task submitted the moment start returns is served: the queue exists and is consumed
    with ep.executor() as ex:
        assert ex.submit(sum, [1, 2, 3]).result(timeout=30) == 6
    assert time.monotonic() - began < 30


def test_start_fails_clearly_when_the_interchange_cannot_start(endpoint_factory):
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ep = endpoint_factory(config={"engine": {"address": "0.0.0.0", "worker_port": port}}, start=False)
        done = ep.cli("start", "default")
    assert done.returncode != 0
    assert "the interchange could not start" in done.stderr and "Address already in use" in done.stderr
    assert "Traceback" not in done.stderr
    assert ep.state() in ("Stopped", "Initialized")


def test_ports_chosen_for_the_interchange_never_collide():
    from compute_endpoint.endpoint.components import free_ports

    for _ in range(200):
        first, second = free_ports("127.0.0.1", "127.0.0.1")
        assert first != second
    assert 5000 not in free_ports("127.0.0.1", avoid=(5000,))
