"""Broker identities: only the owner can start an endpoint, credentials are stored encrypted,
and no secret shows up in config files, logs, argv or process environments."""

import os
import stat
from pathlib import Path

import pytest

from compute_endpoint.sdk import Executor, SDKError

from ..support.endpoints import Identity


def test_another_identity_cannot_start_the_endpoint(endpoint, bob):
    endpoint.stop()
    refused = endpoint.cli("start", "default", identity=bob)
    assert refused.returncode == 77  # EX_NOPERM
    assert f"refused identity {bob.client_id!r}" in refused.stderr
    assert f"belongs to {endpoint.identity.client_id!r}" in refused.stderr
    assert "only the owner can start an endpoint" in refused.stderr
    assert "ACCESS_REFUSED" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert endpoint.state() == "Stopped", "a refused start leaves no half-running endpoint"
    # the owner still can
    endpoint.start()
    assert endpoint.state() == "Running"


def test_another_identity_cannot_submit_to_the_endpoint(endpoint, bob):
    with Executor(endpoint_id=endpoint.endpoint_id, broker_url=endpoint.broker_url, client_id=bob.client_id,
                  client_secret=bob.secret, endpoint_owner=endpoint.identity.client_id) as ex:
        future = ex.submit(pow, 2, 2)
        with pytest.raises(SDKError) as caught:
            future.result(timeout=30)
    assert "ACCESS_REFUSED" in str(caught.value) and bob.client_id in str(caught.value)


def test_wrong_secret_is_refused_clearly(endpoint):
    endpoint.stop()
    wrong = Identity(endpoint.identity.client_id, "not-the-password")
    done = endpoint.cli("start", "default", identity=wrong)
    assert done.returncode == 77  # EX_NOPERM
    assert "refused the credentials" in done.stderr
    assert "COMPUTE_CLIENT_ID" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_credentials_say_how_to_provide_them(endpoint_factory):
    ep = endpoint_factory(start=False)
    env = ep.env()
    del env["COMPUTE_CLIENT_ID"], env["COMPUTE_CLIENT_SECRET"]
    done = ep.cli("start", "default", env=env)
    assert done.returncode == 78  # EX_CONFIG: no identity to connect as
    assert "no broker credentials" in done.stderr and "compute-endpoint login default" in done.stderr
    env["COMPUTE_CLIENT_ID"] = "someone"
    half = ep.cli("start", "default", env=env)
    assert "COMPUTE_CLIENT_ID is set but COMPUTE_CLIENT_SECRET is not" in half.stderr


def test_login_stores_credentials_encrypted_and_start_uses_them(endpoint_factory):
    ep = endpoint_factory(start=False)
    env = ep.env()
    del env["COMPUTE_CLIENT_ID"], env["COMPUTE_CLIENT_SECRET"]
    secret = ep.identity.secret
    done = ep.cli("login", "default", "--client-id", ep.identity.client_id, env=env, input=secret + "\n")
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout + done.stderr

    store = ep.dir / "credentials.enc"
    key = ep.home / "credentials.key"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert secret.encode() not in store.read_bytes()

    started = ep.cli("start", "default", env=env)
    assert started.returncode == 0, started.stderr
    with ep.executor() as ex:
        assert ex.submit(len, "abc").result(timeout=60) == 3
    _assert_secret_nowhere(ep, secret)


def _assert_secret_nowhere(ep, secret: str) -> None:
    comp = ep.components()
    pids = [comp["endpoint"], comp["interchange"], *comp["managers"]]
    pids += [int(p) for pid in comp["managers"] for p in _children(pid)]
    for pid in pids:
        assert secret.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes(), f"secret in argv of {pid}"
        assert secret.encode() not in Path(f"/proc/{pid}/environ").read_bytes(), f"secret in environment of {pid}"
    for path in ep.home.rglob("*"):
        if path.is_file() and path.name != "credentials.enc":
            assert secret.encode() not in path.read_bytes(), f"secret written to {path}"


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


def test_env_identity_secret_is_not_passed_to_components(endpoint):
    _assert_secret_nowhere(endpoint, endpoint.identity.secret)


def test_a_key_readable_by_others_is_refused(endpoint_factory):
    ep = endpoint_factory(start=False)
    env = ep.env()
    del env["COMPUTE_CLIENT_ID"], env["COMPUTE_CLIENT_SECRET"]
    ep.cli("login", "default", "--client-id", ep.identity.client_id, env=env, input=ep.identity.secret + "\n")
    key = ep.home / "credentials.key"
    os.chmod(key, 0o644)
    done = ep.cli("start", "default", env=env)
    assert done.returncode != 0
    assert "readable by other users" in done.stderr and f"chmod 600 {key}" in done.stderr


def test_login_again_with_the_same_credentials_changes_nothing(endpoint_factory):
    ep = endpoint_factory(start=False)
    first = ep.cli("login", "default", "--client-id", ep.identity.client_id, input=ep.identity.secret + "\n")
    assert first.returncode == 0 and "Stored credentials" in first.stdout
    store = ep.dir / "credentials.enc"
    before = store.read_bytes()
    again = ep.cli("login", "default", "--client-id", ep.identity.client_id, input=ep.identity.secret + "\n")
    assert again.returncode == 0 and "unchanged" in again.stdout
    assert store.read_bytes() == before
    other = ep.cli("login", "default", "--client-id", ep.identity.client_id, input="another-secret\n")
    assert "Stored credentials" in other.stdout and store.read_bytes() != before
