"""One endpoint, one daemon, even where login nodes share $HOME (and so the endpoint's directory)."""

import shutil
import socket

from ..support.endpoints import EndpointUnderTest


def square(x):
    return x * x


def as_if_written_on(ep: EndpointUnderTest, host: str) -> str:
    """Rewrite the daemon's pid file as a daemon on another login node writes it; returns the original."""
    pid_file = ep.dir / "daemon.pid"
    original = pid_file.read_text()
    pid_file.write_text(f"{original.splitlines()[0]}\n{host}\n")
    return original


def test_the_pid_file_names_the_host(endpoint):
    pid, host = (endpoint.dir / "daemon.pid").read_text().splitlines()
    assert int(pid) > 0 and host == socket.gethostname()


def test_stop_on_another_node_names_the_node_where_it_runs(endpoint):
    original = as_if_written_on(endpoint, "login2")
    done = endpoint.stop()
    assert done.returncode != 0 and "runs on host login2" in done.stderr
    assert endpoint.state() == "Running", "nothing was signalled"
    (endpoint.dir / "daemon.pid").write_text(original)
    assert endpoint.stop().returncode == 0


def test_a_second_start_from_another_node_is_refused_naming_the_node(endpoint, tmp_path):
    # Another login node sees the same files, but not this node's lock: a copy of the directory, with the pid
    # file as that node finds it.
    other = EndpointUnderTest(tmp_path / "home-on-login2", endpoint.name, endpoint.identity)
    shutil.copytree(endpoint.home, other.home, ignore=shutil.ignore_patterns("run", "daemon.lock"))
    as_if_written_on(other, "login1")
    done = other.cli("start", other.name)
    assert done.returncode == 73 and "is running on host login1" in done.stderr, done.stderr
    with endpoint.executor() as ex:
        assert ex.submit(square, 5).result(timeout=30) == 25, "the running one serves on"


def test_without_a_pid_file_the_broker_refuses_a_second_daemon(endpoint, tmp_path):
    other = EndpointUnderTest(tmp_path / "home-on-login2", endpoint.name, endpoint.identity)
    shutil.copytree(endpoint.home, other.home, ignore=shutil.ignore_patterns("run", "daemon.lock", "daemon.pid",
                                                                              "components.json"))
    done = other.cli("start", other.name)
    try:
        assert done.returncode == 73 and "another daemon of this endpoint is already taking its tasks" in (
            done.stdout + done.stderr + other.logs())
    finally:
        other.stop()
    with endpoint.executor() as ex:
        assert ex.submit(square, 6).result(timeout=30) == 36
