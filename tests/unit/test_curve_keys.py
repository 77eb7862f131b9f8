"""An endpoint's CurveZMQ keys on disk: made once, private, and changed only when asked."""

import stat

import pytest

from compute_endpoint.curve import ENDPOINT, MANAGER, KeyStore, check_public_key
from compute_endpoint.errors import EndpointError
from compute_endpoint.interchange.manager_record import registration_problem
from compute_endpoint.protocol import ManagerRegistration


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_pair_is_made_once_and_its_secret_is_private(tmp_path):
    store = KeyStore(tmp_path / "keys")
    pair, made = store.ensure_pair(MANAGER)
    assert made and store.ensure_pair(MANAGER) == (pair, False)
    assert mode(tmp_path / "keys") == 0o700 and mode(tmp_path / "keys" / "manager.key_secret") == 0o600
    assert (tmp_path / "keys" / "manager.key").read_text().strip() == pair.public
    assert pair.secret not in (tmp_path / "keys" / "manager.key").read_text()


def test_authorize_and_revoke_say_whether_they_changed_anything(tmp_path):
    store = KeyStore(tmp_path / "keys")
    key = KeyStore(tmp_path / "node").ensure_pair(MANAGER)[0].public
    assert store.authorize("node1", key) and not store.authorize("node1", key)
    assert store.authorized() == {"node1": key}
    assert store.revoke("node1") and not store.revoke("node1")
    assert store.authorized() == {}


@pytest.mark.parametrize("label", ["../escape", "", "a/b", "x" * 65])
def test_a_label_cannot_name_a_path(tmp_path, label):
    key = KeyStore(tmp_path / "node").ensure_pair(MANAGER)[0].public
    with pytest.raises(EndpointError, match="invalid label"):
        KeyStore(tmp_path / "keys").authorize(label, key)


@pytest.mark.parametrize("text", ["short", "x" * 41, "é" * 40])
def test_what_is_not_a_public_key_is_refused_with_what_one_looks_like(text):
    with pytest.raises(EndpointError, match="40 Z85 characters"):
        check_public_key(text)


def test_the_endpoint_key_is_installed_only_where_the_endpoint_does_not_run(tmp_path):
    endpoint_host = KeyStore(tmp_path / "head")
    public = endpoint_host.ensure_pair(ENDPOINT)[0].public
    node = KeyStore(tmp_path / "node")
    assert node.set_endpoint_public_key(public) and not node.set_endpoint_public_key(public)
    assert node.endpoint_public_key() == public
    with pytest.raises(EndpointError, match="holds this endpoint's own key pair"):
        endpoint_host.set_endpoint_public_key(KeyStore(tmp_path / "other").ensure_pair(ENDPOINT)[0].public)


@pytest.mark.parametrize("fields, sender, problem", [
    ({"manager_id": "a"}, "b", "comes from 'b'"),
    ({"manager_id": "a\n"}, "a\n", "printable"),
    ({"hostname": "h" * 300}, "a", "host name"),
    ({"workers": 0}, "a", "workers must be"),
    ({"workers": 10**9}, "a", "workers must be"),
    ({"prefetch": -1}, "a", "prefetch 0"),
    ({"pid": -5}, "a", "must not be negative"),
    ({"container_types": []}, "a", "container_types must be 1 to 256"),
    ({"container_types": ["RAW"] * 257}, "a", "container_types must be 1 to 256"),
    ({"container_types": ["podman:" + "x" * 2000]}, "a", "each 1 to 1024"),
    ({"container_types": ["podman:img\n"]}, "a", "printable"),
])
def test_a_registration_out_of_bounds_is_refused_with_the_reason(fields, sender, problem):
    msg = ManagerRegistration(**{"manager_id": "a", "hostname": "h", "pid": 1, "workers": 2, **fields})
    assert problem in registration_problem(msg, sender)
    assert registration_problem(ManagerRegistration(manager_id="a", hostname="h", pid=1, workers=2), "a") is None


def test_with_allowed_functions_only_managers_loading_plain_arguments_register():
    careless = ManagerRegistration(manager_id="a", hostname="h", pid=1, workers=2)
    assert "would load task arguments in full" in registration_problem(careless, "a", plain_arguments=True)
    careful = ManagerRegistration(manager_id="a", hostname="h", pid=1, workers=2, plain_arguments=True)
    assert registration_problem(careful, "a", plain_arguments=True) is None
