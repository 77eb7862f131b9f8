"""The README's backup and restore procedure, followed to the letter: the endpoint comes back as itself.

What the README says to keep is BACKUP below; everything else in the endpoint's
directory (logs, pid and lock files, sockets, block records) is made again at
start. A restored endpoint keeps its id, so submitters' endpoint ids stay
valid, and it finds the tasks that waited for it in the broker.
"""

import os
import shutil
import subprocess

from compute_endpoint import serialize

# Per-user layout: paths relative to the endpoints' home (~/.compute_endpoint).
BACKUP = ["credentials.key", "{name}/config.yaml", "{name}/credentials.enc", "{name}/endpoint.json",
          "{name}/interchange.json", "{name}/keys"]


def test_an_endpoint_restored_from_its_backup_keeps_its_id_credentials_and_waiting_tasks(endpoint_factory, tmp_path):
    ep = endpoint_factory("site", start=False)
    stored = ep.cli("login", ep.name, "--client-id", ep.identity.client_id, input=ep.identity.secret + "\n")
    assert stored.returncode == 0, stored.stderr
    without_secret = {k: v for k, v in ep.env().items() if k not in ("COMPUTE_CLIENT_ID", "COMPUTE_CLIENT_SECRET")}
    assert ep.cli("start", ep.name, env=without_secret).returncode == 0, ep.logs()
    endpoint_id = ep.endpoint_id
    with ep.executor() as ex:
        assert ex.submit(serialize.python_version).result(timeout=60) == serialize.python_version()
    assert ep.stop().returncode == 0

    archive = tmp_path / "site-backup.tar.gz"
    paths = [p.format(name=ep.name) for p in BACKUP if (ep.home / p.format(name=ep.name)).exists()]
    assert {"site/config.yaml", "site/endpoint.json", "site/credentials.enc", "credentials.key"} <= set(paths)
    subprocess.run(["tar", "-C", str(ep.home), "-czpf", str(archive), *paths], check=True)
    submitter = ep.executor()
    shutil.rmtree(ep.home)  # the disk is lost

    with submitter as ex:  # submitted while the endpoint is down: the broker keeps them
        waiting = [ex.submit(pow, 2, n) for n in range(5)]

        os.makedirs(ep.home, mode=0o700)
        subprocess.run(["tar", "-C", str(ep.home), "-xzpf", str(archive)], check=True)
        restarted = ep.cli("start", ep.name, env=without_secret)
        assert restarted.returncode == 0, f"{restarted.stderr}\n{ep.logs()}"
        assert ep.endpoint_id == endpoint_id
        assert [f.result(timeout=60) for f in waiting] == [1, 2, 4, 8, 16]
