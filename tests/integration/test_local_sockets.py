"""Components on one host talk over sockets in a private directory: no TCP port, and no other local user gets in."""

import subprocess
import textwrap

from compute_endpoint.paths import EndpointDir

from ..support.attacker import run_as_nobody

# Run as nobody: knock on both of the interchange's sockets as the daemon and as a manager would.
KNOCK = textwrap.dedent("""
    import cloudpickle, sys, uuid, zmq
    from compute_endpoint.serialize import function_hash
    from compute_endpoint.protocol import ManagerRegistration, Task, TaskBatch
    endpoint_sock, manager_sock, marker = sys.argv[1:]
    def plant():
        open(marker, "w").write("ran")
    fn, args = cloudpickle.dumps(plant), cloudpickle.dumps(((), {}))
    task = Task(task_id=str(uuid.uuid4()), fn_hash=function_hash(fn), fn_len=len(fn), reply_to="x.y",
                payload=fn + args)
    ctx = zmq.Context()
    as_daemon = ctx.socket(zmq.DEALER); as_daemon.setsockopt(zmq.IDENTITY, b"endpoint")
    as_daemon.connect(endpoint_sock)
    as_daemon.send_multipart([TaskBatch().pack(), task.pack()])
    as_manager = ctx.socket(zmq.DEALER); as_manager.setsockopt(zmq.IDENTITY, b"rogue")
    as_manager.connect(manager_sock)
    as_manager.send(ManagerRegistration(manager_id="rogue", hostname="h", pid=1, workers=8).pack())
    got = as_manager.poll(3000) or as_daemon.poll(1000)
    print("answered" if got else "silence")
    ctx.destroy(linger=0)
""")


def listening_ports(pid: int) -> list[str]:
    done = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True)
    return [line for line in done.stdout.splitlines() if f"pid={pid}," in line]


def socket_dir(ep) -> EndpointDir:
    return EndpointDir(ep.name, ep.dir, ep.dir).socket_dir


def test_an_endpoint_for_this_host_opens_no_tcp_port(endpoint_factory):
    ep = endpoint_factory()
    pids = ep.components()
    for pid in [pids["interchange"], *pids["managers"]]:
        assert listening_ports(pid) == []
    assert (socket_dir(ep).stat().st_mode & 0o777) == 0o700
    with ep.executor() as ex:
        assert ex.submit(sum, [1, 2]).result(timeout=30) == 3


def test_another_local_user_reaches_neither_the_daemon_socket_nor_the_manager_socket(exposed_endpoint_factory):
    ep = exposed_endpoint_factory()
    ep.dir.chmod(0o755)  # leave only the socket directory in the way
    marker = ep.home / "planted"
    ep.home.chmod(0o777)
    sockets = EndpointDir(ep.name, ep.dir, ep.dir)
    argv = ["knock", sockets.interchange_socket, sockets.local_manager_socket, str(marker)]
    done = run_as_nobody(f"import sys; sys.argv = {argv!r}\n{KNOCK}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "silence"
    assert not marker.exists()
    assert "rogue" not in str(ep.status())
    with ep.executor() as ex:
        assert ex.submit(sum, [2, 3]).result(timeout=30) == 5


def test_an_endpoint_too_deep_for_a_socket_path_keeps_its_sockets_in_a_private_temporary_directory(
        endpoint_factory):
    ep = endpoint_factory(name="n" * 64)  # under pytest's temporary directory: well past 107 bytes
    deep = socket_dir(ep)
    assert str(deep).startswith("/tmp/compute-endpoint-0/")
    assert (deep.stat().st_mode & 0o777) == 0o700 and (deep.parent.stat().st_mode & 0o777) == 0o700
    with ep.executor() as ex:
        assert ex.submit(sum, [3, 4]).result(timeout=30) == 7
