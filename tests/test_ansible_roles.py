"""What the Ansible roles write must match what the package and the broker model say.

The wheel install path lays down its own copies of the systemd units, and the
broker role writes the permission grants as RabbitMQ definitions; these tests
keep both equal to their sources, and import the definitions into the real
broker to show its password hashes authenticate.
"""

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pika
import pytest

from compute_endpoint.protocol.broker_names import RESULT_EXCHANGE, TASK_EXCHANGE, broker_permissions

from .broker import BROKER_URL, delete_identity

REPO = Path(__file__).resolve().parent.parent
UNITS = ["compute-endpoint@.service", "compute-interchange@.service", "compute-manager@.service",
         "compute-endpoint-stack@.target"]


@pytest.mark.parametrize("unit", UNITS)
def test_the_wheel_paths_units_are_the_packaged_units(unit):
    template = (REPO / "roles/compute_common/templates" / f"{unit}.j2").read_text().splitlines()
    assert template[0] == "{{ ansible_managed | comment }}"
    rendered = "\n".join(template[1:]).replace("{{ compute_common_prefix }}", "/opt/compute-endpoint")
    assert rendered == (REPO / "packaging/systemd" / unit).read_text().rstrip("\n")


def test_the_wheel_paths_command_is_the_packaged_wrapper():
    template = (REPO / "roles/compute_common/templates/compute-endpoint.sh.j2").read_text().splitlines()
    packaged = (REPO / "packaging/bin/compute-endpoint").read_text().splitlines()
    assert template[0] == packaged[0] and template[1] == "{{ ansible_managed | comment }}"
    rendered = [line.replace("{{ compute_common_prefix }}", "/opt/compute-endpoint") for line in template[2:]]
    assert rendered == packaged[1:]


def render_definitions(tmp_path: Path, identities: list[dict]) -> dict:
    """Render the broker role's definitions template with Ansible itself."""
    playbook = tmp_path / "render.yml"
    out = tmp_path / "definitions.json"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"compute_broker_vhost": "/", "compute_broker_identities": identities},
        "tasks": [{"ansible.builtin.template": {
            "src": str(REPO / "roles/compute_broker/templates/compute-definitions.json.j2"), "dest": str(out),
            "mode": "0600"}}],
    }]))
    env = {"ANSIBLE_FILTER_PLUGINS": str(REPO / "roles/compute_broker/filter_plugins"), "PATH": "/usr/bin:/bin",
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    playbook_cmd = Path(sys.executable).parent / "ansible-playbook"
    done = subprocess.run([str(playbook_cmd), str(playbook)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text())


def test_the_broker_roles_grants_are_the_documented_ones(tmp_path):
    identities = [{"name": "alice", "password": "a-secret"},
                  {"name": "bob", "password": "b-secret", "submit_to": ["alice"]}]
    definitions = render_definitions(tmp_path, identities)
    assert "a-secret" not in json.dumps(definitions), "only hashes are written"
    assert {x["name"] for x in definitions["exchanges"]} == {TASK_EXCHANGE, RESULT_EXCHANGE}
    for name in ("alice", "bob"):
        expected = broker_permissions(name)
        grant = next(p for p in definitions["permissions"] if p["user"] == name)
        assert (grant["configure"], grant["write"], grant["read"]) == (
            expected["configure"], expected["write"], expected["read"])
        topics = {t["exchange"]: t for t in definitions["topic_permissions"] if t["user"] == name}
        assert topics[RESULT_EXCHANGE]["write"] == expected["topic"][RESULT_EXCHANGE]["write"]
        assert topics[TASK_EXCHANGE]["read"] == expected["topic"][TASK_EXCHANGE]["read"]
    alice_tasks = next(t for t in definitions["topic_permissions"] if t["user"] == "alice" and
                       t["exchange"] == TASK_EXCHANGE)
    bob_tasks = next(t for t in definitions["topic_permissions"] if t["user"] == "bob" and
                     t["exchange"] == TASK_EXCHANGE)
    assert alice_tasks["write"] == broker_permissions("alice")["topic"][TASK_EXCHANGE]["write"]
    assert bob_tasks["write"] == r"^({username}|alice)\.", "bob may submit to alice's endpoints"


def test_the_broker_roles_password_hashes_authenticate_on_rabbitmq(tmp_path, broker):
    name, password = f"hashcheck-{secrets.token_hex(3)}", secrets.token_hex(12)
    definitions = render_definitions(tmp_path, [{"name": name, "password": password}])
    only_user = {key: definitions[key] for key in ("users", "permissions")}
    try:
        # On stdin: rabbitmqctl runs as the rabbitmq user, which cannot read pytest's private tmp.
        subprocess.run(["rabbitmqctl", "-q", "import_definitions", "--format", "json"], input=json.dumps(only_user),
                       text=True, check=True, capture_output=True, timeout=60)
        params = pika.URLParameters(BROKER_URL)
        params.credentials = pika.PlainCredentials(name, password)
        with pika.BlockingConnection(params) as conn:
            assert conn.is_open
        params.credentials = pika.PlainCredentials(name, password + "x")
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(params)
    finally:
        delete_identity(name)
