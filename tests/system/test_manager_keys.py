"""Managers on other hosts reach the interchange only over CurveZMQ, with a key the operator authorized.

The interchange listens on a veth address; managers connect from a network
namespace of the test's own (another host, as far as the network goes), from
this host as another user, or as raw ZeroMQ peers that try what a rogue
manager would: register without a key the endpoint knows, take over another
manager's id, and answer for a task it was never given.
"""

import os
import subprocess
import sys
import textwrap
import time

import pytest
import zmq

from compute_endpoint.curve import KeyStore
from compute_endpoint.endpoint.components import free_ports
from compute_endpoint.protocol import (
    Control,
    ControlAction,
    Result,
    ResultBatch,
)

from ..support.attacker import run_as_nobody
from ..support.broker import wait_for
from ..support.netns import NetnsHost
from ..support.raw_manager import RawManager
from ..support.tasks import nap, netns_and_nap

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


@pytest.fixture
def served(endpoint_factory, remote_host):
    """An endpoint whose interchange listens on the veth address, with one manager of its own on this host."""
    port = free_ports(remote_host.host_ip)[0]
    ep = endpoint_factory(config={"engine": {"address": remote_host.host_ip, "worker_port": port}})
    ep.address = f"tcp://{remote_host.host_ip}:{port}"
    return ep


def manager_host_keys(ep, directory) -> KeyStore:
    """What the operator sets up on a manager host: its own pair, and the endpoint's public key."""
    store = KeyStore(directory)
    store.ensure_pair("manager")
    done = ep.cli("keys", "endpoint", ep.name)
    assert done.returncode == 0, done.stderr
    store.set_endpoint_public_key(done.stdout.strip())
    return store


def start_remote_manager(host: NetnsHost, ep, keys: KeyStore, log_path, manager_id: str) -> subprocess.Popen:
    log = open(log_path, "wb")  # noqa: SIM115 - the child holds it
    return host.popen([sys.executable, "-m", "compute_endpoint.manager", "--interchange", ep.address,
                       "--keys-dir", str(keys.directory), "--workers", "2", "--heartbeat-period", "0.5",
                       "--heartbeat-threshold", "3", "--manager-id", manager_id], stdout=log, stderr=log)


def interchange_log(ep) -> str:
    return (ep.dir / "logs" / "interchange.log").read_text()


def test_a_manager_with_an_authorized_key_serves_and_a_revoked_one_is_dropped(served, remote_host, tmp_path):
    ep = served
    keys = manager_host_keys(ep, tmp_path / "node-keys")
    remote = start_remote_manager(remote_host, ep, keys, tmp_path / "remote.log", "node1")
    try:
        time.sleep(3)
        assert ep.status()["managers"] == 1, "not admitted before its key is authorized"
        public = keys.pair("manager").public
        assert "is not authorized" in interchange_log(ep) and public in interchange_log(ep)
        done = ep.cli("keys", "authorize", ep.name, "node1", public)
        assert done.returncode == 0 and done.stdout.strip() == "authorized node1", done.stderr
        wait_for(lambda: ep.status()["managers"] == 2, what="the authorized manager to register")
        here = os.stat("/proc/self/ns/net").st_ino
        with ep.executor() as ex:
            places = {f.result(timeout=60)[0] for f in [ex.submit(netns_and_nap, 0, i) for i in range(40)]}
        assert places - {here}, "the remote manager did part of the work"
        listed = ep.cli("keys", "list", ep.name, "--json")
        assert public in listed.stdout
        assert ep.cli("keys", "revoke", ep.name, "node1").stdout.strip() == "revoked node1"
        wait_for(lambda: ep.status()["managers"] == 1, what="the revoked manager to be dropped")
        with ep.executor() as ex:
            places = {f.result(timeout=60)[0] for f in [ex.submit(netns_and_nap, 0, i) for i in range(20)]}
        assert places == {here}, "nothing runs on a revoked manager"
    finally:
        remote.terminate()
        remote.wait(10)


def test_a_manager_with_an_unknown_key_gets_nothing(served, remote_host, tmp_path):
    ep = served
    keys = manager_host_keys(ep, tmp_path / "rogue-keys")
    rogue = start_remote_manager(remote_host, ep, keys, tmp_path / "rogue.log", "rogue")
    try:
        with ep.executor() as ex:
            assert [f.result(timeout=60) for f in [ex.submit(pow, 2, i) for i in range(20)]] == \
                [2**i for i in range(20)]
        # (the tasks may all be done before the rogue manager, starting in its namespace, first knocks)
        status = wait_for(lambda: next((s for s in [ep.status()] if s["manager_handshakes_refused"] >= 1), None),
                          timeout=60, what="the rogue manager's handshake refused")
        assert status["managers"] == 1
        assert f"refused a manager from {remote_host.ns_ip}" in interchange_log(ep)
    finally:
        rogue.terminate()
        rogue.wait(10)


def test_another_local_user_with_keys_of_its_own_cannot_register(served):
    ep = served
    server_key = ep.cli("keys", "endpoint", ep.name).stdout.strip()
    probe = textwrap.dedent(f"""
        import zmq
        from compute_endpoint.protocol import ManagerRegistration
        public, secret = zmq.curve_keypair()
        sock = zmq.Context().socket(zmq.DEALER)
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = public, secret, {server_key!r}.encode()
        sock.setsockopt(zmq.IDENTITY, b"nobodys")
        sock.connect({ep.address!r})
        sock.send(ManagerRegistration(manager_id="nobodys", hostname="h", pid=1, workers=4).pack())
        print("answered" if sock.poll(4000) else "silence")
        sock.close(linger=0)
    """)
    done = run_as_nobody(probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "silence"
    assert ep.status()["managers"] == 1


class CurveRawManager(RawManager):
    """A raw manager with a key the endpoint authorized."""

    def __init__(self, ep, directory, manager_id: str, label: str):
        store = manager_host_keys(ep, directory)
        pair = store.pair("manager")
        assert ep.cli("keys", "authorize", ep.name, label, pair.public).returncode == 0

        def secure(sock: zmq.Socket) -> None:
            sock.curve_publickey, sock.curve_secretkey = pair.public.encode(), pair.secret.encode()
            sock.curve_serverkey = store.endpoint_public_key().encode()

        time.sleep(1.2)  # the interchange reads new keys within a second; a refused raw peer would not retry
        super().__init__(ep.address, manager_id, secure)


def test_an_authorized_key_cannot_take_over_another_managers_id(served, remote_host, tmp_path):
    ep = served
    keys = manager_host_keys(ep, tmp_path / "node-keys")
    assert ep.cli("keys", "authorize", ep.name, "node1", keys.pair("manager").public).returncode == 0
    remote = start_remote_manager(remote_host, ep, keys, tmp_path / "remote.log", "node1")
    impostor = CurveRawManager(ep, tmp_path / "impostor-keys", "node1", "other-node")
    try:
        wait_for(lambda: ep.status()["managers"] == 2, what="node1 to register")
        assert not impostor.register(), "a second connection under node1's id is refused"
        here = os.stat("/proc/self/ns/net").st_ino
        with ep.executor() as ex:
            results = [f.result(timeout=60) for f in [ex.submit(netns_and_nap, 0, i) for i in range(40)]]
        assert [value for _, value in results] == list(range(40))
        assert {place for place, _ in results} - {here}, "the real node1 still gets its share"
        assert ep.status()["managers"] == 2
    finally:
        impostor.close()
        remote.terminate()
        remote.wait(10)


def test_a_result_from_a_manager_that_was_not_given_the_task_is_dropped(served, tmp_path):
    ep = served
    rogue = CurveRawManager(ep, tmp_path / "rogue-keys", "rogue", "rogue-node")
    try:
        assert rogue.register()
        rogue.sock.send(Control(action=ControlAction.DRAINING).pack())  # so that it is sent no task
        with ep.executor() as ex:
            future = ex.submit(nap, 3, "real")
            time.sleep(1)
            forged = Result(task_id=future.task_id, ok=True, payload=b"\x80\x05\x95\x00").pack()
            rogue.sock.send_multipart([ResultBatch(sender="rogue").pack(), forged])
            assert future.result(timeout=60) == "real"
        assert "which it does not hold" in interchange_log(ep)
        wait_for(lambda: ep.status()["manager_messages_refused"] >= 1, what="the refusal to be counted")
    finally:
        rogue.close()


def test_with_allowed_functions_a_manager_that_would_unpickle_arguments_in_full_is_refused(
        endpoint_factory, remote_host, tmp_path):
    port = free_ports(remote_host.host_ip)[0]
    ep = endpoint_factory(config={"allowed_functions": ["0" * 32],
                                  "engine": {"address": remote_host.host_ip, "worker_port": port}})
    ep.address = f"tcp://{remote_host.host_ip}:{port}"
    careless = CurveRawManager(ep, tmp_path / "careless-keys", "careless", "careless-node")
    careful = CurveRawManager(ep, tmp_path / "careful-keys", "careful", "careful-node")
    try:
        assert not careless.register()
        assert "would load task arguments in full" in interchange_log(ep)
        assert careful.register(plain_arguments=True)
    finally:
        careless.close()
        careful.close()
