"""`compute-endpoint migrate-queues`: an upgraded endpoint's classic queues become quorum queues with every
task in them, a grantee's task still its grantee's; and an endpoint under queue_type auto keeps serving from
the classic queues it had until then."""

import yaml

from ..support.broker import rabbitmqctl, wait_for
from .test_sender_checks import grant, grantee_executor  # noqa: F401,F811  (grant is a fixture)


def _queue_types(ep) -> dict[str, str]:
    listing = rabbitmqctl("list_queues", "name", "type", "--no-table-headers").stdout
    prefix = f"ce.{ep.identity.client_id}.{ep.endpoint_id}."
    return {name.removeprefix(prefix): kind for name, kind in
            (line.split("\t") for line in listing.splitlines() if line.startswith(prefix))}


def _set_queue_type(ep, queue_type: str) -> None:
    path = ep.dir / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["broker"]["queue_type"] = queue_type
    path.write_text(yaml.safe_dump(config))


def test_classic_queues_move_to_quorum_queues_with_their_tasks_and_the_endpoint_runs_them(grant, endpoint_factory):  # noqa: F811
    owner, grantee = grant
    ep = endpoint_factory(identity=owner, config={"broker": {"queue_type": "classic"},
                                                  "allowed_submitters": [grantee.client_id]})
    assert _queue_types(ep) == dict.fromkeys(["tasks", "commands", "status", "dead"], "classic")
    ep.stop()
    with ep.executor() as mine, grantee_executor(ep, grantee) as theirs:
        futures = [mine.submit(pow, 2, i) for i in range(40)] + [theirs.submit(pow, 3, i) for i in range(10)]
        wait_for(lambda: mine.unconfirmed == 0 and theirs.unconfirmed == 0, timeout=30, what="tasks queued")
        _set_queue_type(ep, "auto")
        done = ep.cli("migrate-queues", ep.name)
        assert done.returncode == 0, done.stderr
        moved = {row.split("|")[1].strip(): row.split("|")[4].strip() for row in done.stdout.splitlines()
                 if row.startswith("| ") and row.split("|")[1].strip() in ("tasks", "status")}
        assert int(moved["tasks"]) > 0 and moved["status"] == "1", done.stdout  # (tasks travel in bundles)
        assert _queue_types(ep) == dict.fromkeys(["tasks", "commands", "status", "dead"], "quorum")
        again = ep.cli("migrate-queues", ep.name)
        assert again.returncode == 0 and again.stdout.count("already as configured") == 4, again.stdout
        ep.start()
        assert [f.result(timeout=60) for f in futures] == [2**i for i in range(40)] + [3**i for i in range(10)]
    assert ep.status()["broker"]["queue_types"]["tasks"] == "quorum"


def test_under_auto_an_upgraded_endpoint_keeps_its_classic_queues_and_says_so(endpoint_factory):
    ep = endpoint_factory(config={"broker": {"queue_type": "classic"}})
    ep.stop()
    _set_queue_type(ep, "auto")
    ep.start()
    status = ep.status()["broker"]
    assert status["queue_types"] == dict.fromkeys(["tasks", "commands", "status", "dead"], "classic")
    assert "migrate-queues" in ep.logs()
    with ep.executor() as ex:
        assert ex.submit(pow, 2, 8).result(timeout=30) == 256
    refused = ep.cli("migrate-queues", ep.name)
    assert refused.returncode != 0 and "is running: stop it first" in refused.stderr
