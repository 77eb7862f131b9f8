"""The command's operations against real endpoints: exit codes a script can act on, endpoints named by their
id, logs, and the live status view."""

import signal
import socket
import subprocess
import sys
import threading
import time

from ..support.endpoints import CLI, Identity


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the socket is closed


def test_starting_a_running_endpoint_exits_73(endpoint):
    again = endpoint.cli("start", "default")
    assert again.returncode == 73, again.stderr
    assert "already running" in again.stderr and "Traceback" not in again.stderr


def test_a_bad_config_exits_78(endpoint_factory):
    ep = endpoint_factory(config={"engine": {"provider": {"type": "NoSuchProvider"}}}, start=False)
    done = ep.cli("start", "default")
    assert done.returncode == 78, done.stderr
    assert "engine.provider.type" in done.stderr
    assert ep.cli("check-config", str(ep.dir / "config.yaml")).returncode == 78


def test_a_broker_that_cannot_be_reached_exits_69(endpoint_factory):
    ep = endpoint_factory(config={"broker": {"url": f"amqp://127.0.0.1:{_closed_port()}/%2F"}}, start=False)
    done = ep.cli("start", "default", "--timeout", "5")
    assert done.returncode == 69, done.stderr
    assert "cannot reach the broker" in done.stderr and "Traceback" not in done.stderr


def test_refused_credentials_exit_77_from_the_command_and_the_daemon(endpoint):
    endpoint.stop()
    wrong = Identity(endpoint.identity.client_id, "not-the-password")
    done = endpoint.cli("start", "default", identity=wrong)
    assert done.returncode == 77, done.stderr
    assert "refused the credentials" in done.stderr
    # run in the foreground, as systemd runs it: the daemon's own exit status is the code
    daemon = subprocess.run([sys.executable, "-m", "compute_endpoint.endpoint", "default", "--log-to-stderr"],
                            env=endpoint.env(wrong), capture_output=True, text=True, timeout=120)
    assert daemon.returncode == 77, daemon.stderr


def test_a_running_endpoint_started_again_in_the_foreground_exits_73(endpoint):
    daemon = subprocess.run([sys.executable, "-m", "compute_endpoint.endpoint", "default", "--log-to-stderr"],
                            env=endpoint.env(), capture_output=True, text=True, timeout=60)
    assert daemon.returncode == 73 and "already running" in daemon.stderr


def test_an_endpoint_is_named_by_its_id_too(endpoint):
    endpoint_id = endpoint.endpoint_id
    stopped = endpoint.cli("stop", endpoint_id)
    assert stopped.returncode == 0 and "endpoint 'default' stopped" in stopped.stdout, stopped.stderr
    started = endpoint.cli("start", endpoint_id)
    assert started.returncode == 0, started.stderr
    assert endpoint.cli("status", endpoint_id.upper(), "--json").returncode == 0
    unknown = endpoint.cli("stop", "00000000-0000-4000-8000-000000000000")
    assert unknown.returncode == 2 and "has the id" in unknown.stderr


def test_logs_shows_the_last_lines_of_each_component(endpoint):
    done = endpoint.cli("logs", "default", "-n", "5")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert 0 < len(lines) <= 5 and any("INFO" in line for line in lines)
    for component in ("interchange", "manager"):
        other = endpoint.cli("logs", endpoint.endpoint_id, "--component", component, "--lines", "3")
        assert other.returncode == 0 and other.stdout.strip(), (component, other.stderr)


def test_logs_follow_prints_new_lines(endpoint):
    appending = threading.Event()

    def append() -> None:  # until the follower shows one: it may take a moment to begin following
        while not appending.wait(0.3):
            with (endpoint.dir / "logs" / "endpoint.log").open("a") as log:
                log.write("a line appended by the test\n")

    writer = threading.Thread(target=append, daemon=True)
    with subprocess.Popen(CLI + ["logs", "default", "-n", "0", "-f"], env=endpoint.env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as follower:
        writer.start()
        assert follower.stdout is not None
        threading.Timer(60, follower.kill).start()  # a follower that shows nothing fails the test, not hangs it
        first = follower.stdout.readline()
        appending.set()
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=20)
    assert follower.returncode == 0, err
    assert first == "a line appended by the test\n"


def test_logs_of_an_endpoint_never_started_is_a_clear_error(endpoint_factory):
    ep = endpoint_factory(start=False)
    done = ep.cli("logs", "default")
    assert done.returncode == 2 and "has no endpoint log yet" in done.stderr


def test_status_watch_refreshes_until_ctrl_c(endpoint):
    with endpoint.executor() as ex:
        assert ex.submit(sum, [1, 2]).result(timeout=60) == 3
    with subprocess.Popen(CLI + ["status", "default", "--watch", "--interval", "0.5"], env=endpoint.env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as watcher:
        deadline = time.monotonic() + 60
        seen = ""
        assert watcher.stdout is not None
        while seen.count("Ctrl-C to stop") < 2 and time.monotonic() < deadline:
            seen += watcher.stdout.readline()
        watcher.send_signal(signal.SIGINT)
        rest, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    assert seen.count("Ctrl-C to stop") >= 2, seen + err
    for label in ("Waiting in the broker", "Held by the endpoint", "Task rate", "Managers", "Dead-lettered",
                  "Blocks"):
        assert label in seen, label
    assert "Completed" in seen and "Traceback" not in err


def test_config_dir_option_reaches_the_daemon(endpoint_factory, tmp_path):
    ep = endpoint_factory(start=False)
    env = ep.env()
    del env["COMPUTE_ENDPOINT_HOME"]
    env["HOME"] = str(tmp_path / "elsewhere")  # the default home would be empty
    try:
        started = subprocess.run(CLI + ["--config-dir", str(ep.home), "start", "default"], env=env,
                                 capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr
        listed = subprocess.run(CLI + ["-c", str(ep.home), "list", "--json"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert '"Running"' in listed.stdout, listed.stdout
        assert (ep.dir / "logs" / "endpoint.log").exists()
        assert not (tmp_path / "elsewhere" / ".compute_endpoint").exists()
    finally:
        ep.stop()
