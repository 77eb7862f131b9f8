"""The link between a manager and the interchange is cut, then restored: no task is lost.

The manager runs in a network namespace of the test's own; cutting its veth
link partitions it from the interchange while both processes keep running.
"""

import os
import subprocess
import sys
import time

import pytest

from compute_endpoint.endpoint.components import free_ports

from ..support.broker import wait_for
from ..support.tasks import netns_and_nap

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


@pytest.mark.parametrize("outage", [1.0, 6.0], ids=["shorter-than-heartbeat-threshold", "longer"])
def test_a_partitioned_manager_loses_no_task(endpoint_factory, remote_host, outage, tmp_path):
    port = free_ports(remote_host.host_ip)[0]
    ep = endpoint_factory(config={"engine": {"address": remote_host.host_ip, "worker_port": port}})
    log = open(tmp_path / "remote-manager.log", "wb")  # noqa: SIM115 - closed in the finally below
    remote = remote_host.popen(
        [sys.executable, "-m", "compute_endpoint.manager", "--interchange", f"tcp://{remote_host.host_ip}:{port}",
         "--keys-dir", str(ep.dir / "keys"),  # the endpoint's own manager key, as a batch job would use it
         "--workers", "2", "--heartbeat-period", "0.5", "--heartbeat-threshold", "3", "--manager-id", "remote"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: ep.status()["managers"] == 2, what="the remote manager to register")
        here = os.stat("/proc/self/ns/net").st_ino
        with ep.executor() as ex:
            futures = [ex.submit(netns_and_nap, 0.25, i) for i in range(80)]
            wait_for(lambda: any(f.done() and f.result()[0] != here for f in futures), what="remote work")
            remote_host.cut()
            time.sleep(outage)
            remote_host.heal()
            results = [f.result(timeout=120) for f in futures]
        assert [value for _, value in results] == list(range(80))
        assert {ns for ns, _ in results} - {here}, "the partitioned manager did part of the work"
        if outage > 3:
            assert "declaring it lost" in (ep.dir / "logs" / "interchange.log").read_text()
        wait_for(lambda: ep.status()["managers"] == 2, what="the remote manager to be back")
    finally:
        remote.terminate()
        remote.wait(10)
        log.close()
