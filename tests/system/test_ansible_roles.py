"""What the Ansible roles write must match what the package and the broker model say.

The packages ship the systemd units rendered from the roles' own templates,
and the broker role writes the permission grants as RabbitMQ definitions;
these tests render both with Ansible itself, compare them with their other
users, and import the definitions into the real broker to show its password
hashes authenticate.
"""

import json
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pika
import pytest

from compute_endpoint.protocol.broker_names import RESULT_EXCHANGE, TASK_EXCHANGE, broker_permissions

from ..support import REPO
from ..support.broker import BROKER_URL, delete_identity

TEMPLATES = REPO / "roles/compute_common/templates"


def ansible_template(tmp_path: Path, src: Path, variables: dict) -> str:
    """Render one role template with Ansible itself; returns the text it wrote."""
    playbook, out = tmp_path / f"render-{src.stem}.yml", tmp_path / f"rendered-{src.stem}"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "connection": "local", "gather_facts": False, "vars": variables,
        "tasks": [{"ansible.builtin.template": {"src": str(src), "dest": str(out), "mode": "0600"}}],
    }]))
    # The templates name the collection's filter by FQCN: the source checkout's view of the collection.
    env = {"ANSIBLE_COLLECTIONS_PATH": str(REPO / "playbooks/collections"), "PATH": "/usr/bin:/bin",
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    playbook_cmd = Path(sys.executable).parent / "ansible-playbook"
    done = subprocess.run([str(playbook_cmd), str(playbook)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return out.read_text()


def test_the_packages_units_are_the_roles_templates_rendered(tmp_path):
    """One source: the packages ship the role's templates, rendered for /opt/compute-endpoint."""
    subprocess.run([str(REPO / "packaging/render-units.sh"), str(tmp_path / "pkg")], check=True, timeout=60)
    templates = sorted(TEMPLATES.glob("*.j2"))
    assert len(templates) == 5
    for template in templates:
        by_ansible = ansible_template(tmp_path, template, {"compute_common_prefix": "/opt/compute-endpoint",
                                                           "ansible_managed": "managed"})
        name = template.name.removesuffix(".j2")
        packaged = tmp_path / "pkg" / ("bin/compute-endpoint" if name.endswith(".sh") else f"systemd/{name}")
        assert by_ansible.replace("#\n# managed\n#\n", "") == packaged.read_text(), name
        if not name.endswith(".target"):
            assert "/opt/compute-endpoint/bin/compute-endpoint" in packaged.read_text(), name


def render_definitions(tmp_path: Path, identities: list[dict]) -> dict:
    """Render the broker role's definitions template with Ansible itself."""
    text = ansible_template(tmp_path, REPO / "roles/compute_broker/templates/compute-definitions.json.j2",
                            {"compute_broker_vhost": "/", "compute_broker_identities": identities})
    return json.loads(text)


def test_the_broker_roles_grants_are_the_documented_ones(tmp_path):
    identities = [{"name": "alice", "password": "a-secret"},
                  {"name": "bob", "password": "b-secret", "submit_to": ["alice"]},
                  {"name": "carol", "password": "c-secret", "submit_to": ["alice", "bob"]}]
    definitions = render_definitions(tmp_path, identities)
    assert "a-secret" not in json.dumps(definitions), "only hashes are written"
    assert {x["name"] for x in definitions["exchanges"]} == {TASK_EXCHANGE, RESULT_EXCHANGE}
    submitters = {"alice": ["bob", "carol"], "bob": ["carol"], "carol": []}
    for identity in identities:
        name = identity["name"]
        expected = broker_permissions(name, identity.get("submit_to", []), submitters[name])
        grant = next(p for p in definitions["permissions"] if p["user"] == name)
        assert (grant["configure"], grant["write"], grant["read"]) == (
            expected["configure"], expected["write"], expected["read"])
        topics = {t["exchange"]: {"write": t["write"], "read": t["read"]}
                  for t in definitions["topic_permissions"] if t["user"] == name}
        assert topics == expected["topic"], name
    bob_tasks = broker_permissions("bob", ["alice"])["topic"][TASK_EXCHANGE]["write"]
    assert re.match(bob_tasks.replace("{username}", "bob"), "alice.3f2a.tasks"), "bob may submit to alice"
    assert not re.match(bob_tasks.replace("{username}", "bob"), "alice.3f2a.commands"), "but not command her"


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


def test_the_broker_role_deletes_the_identities_it_no_longer_lists_and_no_others(tmp_path, broker):
    """Run the role's users.yml against the real broker, keeping guest (the tests' administrator)."""
    stale, foreign = f"stale-{secrets.token_hex(3)}", f"site-admin-{secrets.token_hex(3)}"
    for name, tags in ((stale, "compute-endpoint-identity"), (foreign, "monitoring")):
        subprocess.run(["rabbitmqctl", "-q", "add_user", name, secrets.token_hex(8)], check=True, timeout=60)
        subprocess.run(["rabbitmqctl", "-q", "set_user_tags", name, tags], check=True, timeout=60)
    playbook = tmp_path / "users.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"compute_broker_identities": [], "compute_broker_delete_guest": False},
        "tasks": [{"ansible.builtin.import_tasks": str(REPO / "roles/compute_broker/tasks/users.yml")}],
    }]))
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "ANSIBLE_LOCALHOST_WARNING": "false",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    try:
        done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(playbook)], env=env,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        users = subprocess.run(["rabbitmqctl", "-q", "list_users", "--formatter", "json"], check=True,
                               capture_output=True, text=True, timeout=60).stdout
        names = {entry["user"] for entry in json.loads(users)}
        assert stale not in names, "an identity the inventory no longer lists is deleted"
        assert {foreign, "guest"} <= names, "users the role did not make are left alone"
    finally:
        delete_identity(stale)
        delete_identity(foreign)
