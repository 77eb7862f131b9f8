"""Every broker message is checked for its sender, which RabbitMQ vouches for in ``user_id``.

RabbitMQ checks topic permissions when a message is published or a queue
bound, not when it is dead-lettered or passed to an alternate exchange. These
tests take those routes, as an identity with no grant on the endpoint, and
show that the endpoint sets what arrives aside with the reason, and that the
SDK drops a result its endpoint's owner did not send.
"""

import secrets
import time
import uuid

import cloudpickle
import pika
import pytest

from compute_endpoint.protocol import Command, CommandAction, Result, Task
from compute_endpoint.protocol.broker_names import RESULT_EXCHANGE, TASK_EXCHANGE, EndpointNames
from compute_endpoint.sdk import Client, Executor, SDKError
from compute_endpoint.serialize import function_hash

from ..support.broker import BROKER_URL, create_identity, delete_identity, delete_queues_of, wait_for
from ..support.endpoints import Identity
from ..support.tasks import nap


def channel_of(identity: Identity):
    params = pika.URLParameters(BROKER_URL)
    params.credentials = pika.PlainCredentials(identity.client_id, identity.secret)
    return pika.BlockingConnection(params).channel()


def planting_task(marker, reply_to: str) -> bytes:
    def plant():
        with open(marker, "w") as planted:
            planted.write("ran")

    fn, args = cloudpickle.dumps(plant), cloudpickle.dumps(((), {}))
    return Task(task_id=str(uuid.uuid4()), fn_hash=function_hash(fn), fn_len=len(fn), reply_to=reply_to,
                payload=fn + args).pack()


def dead_letters(ep) -> list[tuple[dict, bytes]]:
    """What the endpoint set aside so far, read (and removed) as its owner."""
    channel = channel_of(ep.identity)
    queue = EndpointNames(ep.identity.client_id, ep.endpoint_id).dead_queue
    found = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        found.append((props.headers or {}, body))
    channel.connection.close()
    return found


def refused_senders(ep, timeout: float = 20.0) -> list[str]:
    seen: list[dict] = []

    def arrived():
        seen.extend(headers for headers, _body in dead_letters(ep))
        return [h for h in seen if h.get("x-reject-reason") == "sender-not-permitted"]

    return [h["x-reject-detail"] for h in wait_for(arrived, timeout, 0.3, "a dead letter")]


def dead_letter_route(channel, bob: Identity, target_exchange: str, target_key: str) -> str:
    """Bob's own queue whose messages expire at once into ``target_exchange`` under ``target_key``."""
    detour = f"detour-{secrets.token_hex(3)}"
    queue, key = f"ce.{bob.client_id}.{detour}", f"{bob.client_id}.{detour}.tasks"  # a key bob may publish to
    channel.queue_declare(queue, auto_delete=True, arguments={
        "x-message-ttl": 0, "x-dead-letter-exchange": target_exchange, "x-dead-letter-routing-key": target_key})
    channel.queue_bind(queue, TASK_EXCHANGE, key)
    return key


@pytest.mark.parametrize("claims_sender", [True, False], ids=["user_id-set", "no-user_id"])
def test_a_task_rerouted_through_a_dead_letter_exchange_is_set_aside_unrun(endpoint, bob, tmp_path, claims_sender):
    names = EndpointNames(endpoint.identity.client_id, endpoint.endpoint_id)
    marker = tmp_path / "planted"
    channel = channel_of(bob)
    detour = dead_letter_route(channel, bob, TASK_EXCHANGE, names.tasks_key)
    props = pika.BasicProperties(user_id=bob.client_id if claims_sender else None)
    channel.basic_publish(TASK_EXCHANGE, detour, planting_task(marker, f"{bob.client_id}.x"), props)
    details = refused_senders(endpoint)
    who = repr(bob.client_id) if claims_sender else "an unnamed sender"
    assert any(d.startswith(f"sender not permitted: {who}") for d in details), details
    assert not marker.exists()
    with endpoint.executor() as ex:  # and it goes on serving its owner
        assert ex.submit(sum, [1, 2]).result(timeout=30) == 3
    assert not marker.exists()


def test_a_command_rerouted_through_an_alternate_exchange_is_set_aside(endpoint, bob):
    names = EndpointNames(endpoint.identity.client_id, endpoint.endpoint_id)
    channel = channel_of(bob)
    detour = f"ce.{bob.client_id}.ae-{secrets.token_hex(3)}"
    channel.exchange_declare(detour, "direct", auto_delete=True, arguments={"alternate-exchange": TASK_EXCHANGE})
    command = Command(command_id="c1", action=CommandAction.SHUTDOWN, reply_to=f"{bob.client_id}.x")
    channel.basic_publish(detour, names.commands_key, command.pack(), pika.BasicProperties(user_id=bob.client_id))
    details = refused_senders(endpoint)
    assert any("may not command this endpoint" in d for d in details), details
    assert endpoint.state() == "Running"


def test_a_result_from_anyone_but_the_endpoints_owner_is_dropped_by_the_sdk(endpoint, bob):
    channel = channel_of(bob)
    with endpoint.executor() as ex:
        future = ex.submit(nap, 3, "real")
        reply_key = ex._session.reply.key
        detour = dead_letter_route(channel, bob, RESULT_EXCHANGE, reply_key)
        forged = Result(task_id=future.task_id, ok=True, payload=cloudpickle.dumps("forged")).pack()
        channel.basic_publish(TASK_EXCHANGE, detour, forged, pika.BasicProperties(user_id=bob.client_id))
        wait_for(lambda: ex.foreign_results_dropped, 20, 0.1, "the forged result to be dropped")
        assert future.result(timeout=30) == "real"


def grantee_executor(ep, grantee: Identity) -> Executor:
    return Executor(endpoint_id=ep.endpoint_id, broker_url=ep.broker_url, client_id=grantee.client_id,
                    client_secret=grantee.secret, endpoint_owner=ep.identity.client_id)


@pytest.fixture
def grant():
    """An owner and a grantee with ``submit_to: [owner]``, as the broker role sets them up.

    Ask for it before ``endpoint_factory``: its clean-up must come after the endpoint stopped,
    or the running endpoint declares the queues it deleted again.
    """
    owner = f"olive-{secrets.token_hex(3)}"
    grantee = f"gus-{secrets.token_hex(3)}"
    made = (Identity(owner, create_identity(owner, submitters=[grantee])),
            Identity(grantee, create_identity(grantee, submit_to=[owner])))
    yield made
    for identity in made:
        delete_queues_of(identity.client_id)
        delete_identity(identity.client_id)


def test_a_grantee_listed_in_allowed_submitters_may_submit_but_not_command(grant, endpoint_factory):
    owner, grantee = grant
    ep = endpoint_factory(identity=owner, config={"allowed_submitters": [grantee.client_id]})
    with grantee_executor(ep, grantee) as ex:
        assert ex.submit(pow, 2, 5).result(timeout=30) == 32
    client = Client(ep.broker_url, grantee.client_id, grantee.secret)
    with pytest.raises(SDKError, match="ACCESS_REFUSED"):
        client.send_command(ep.endpoint_id, CommandAction.SHUTDOWN, owner=owner.client_id)
    time.sleep(1)
    assert ep.state() == "Running"


def test_a_grantee_the_owner_has_not_listed_is_refused_by_the_endpoint(grant, endpoint_factory):
    owner, grantee = grant
    ep = endpoint_factory(identity=owner)
    ex = grantee_executor(ep, grantee)
    try:
        ex.submit(pow, 2, 5)
        details = refused_senders(ep)
    finally:
        ex.shutdown(wait=False, cancel_futures=True)  # its one task will never be answered
    assert any(grantee.client_id in d and "allowed_submitters" in d for d in details), details


def implant():
    import builtins
    import os

    builtins.left_behind_by = "grantee"  # what a task could do to the next one in the same interpreter
    return os.getpid()


def look():
    import builtins
    import os

    return os.getpid(), getattr(builtins, "left_behind_by", None)


@pytest.mark.parametrize("isolate", [False, True])
def test_isolate_submitters_gives_each_submitter_worker_processes_of_its_own(grant, endpoint_factory, isolate):
    owner, grantee = grant
    ep = endpoint_factory(identity=owner, config={"allowed_submitters": [grantee.client_id],
                                                  "isolate_submitters": isolate,
                                                  "engine": {"max_workers_per_node": 2}})
    with grantee_executor(ep, grantee) as ex:
        planted = {f.result(timeout=60) for f in [ex.submit(implant) for _ in range(8)]}
    with ep.executor() as ex:
        seen = [f.result(timeout=60) for f in [ex.submit(look) for _ in range(8)]]
    leaked = [pid for pid, who in seen if who]
    if isolate:
        assert not leaked and not planted & {pid for pid, _ in seen}, "the owner's tasks ran in fresh processes"
        with grantee_executor(ep, grantee) as ex:
            assert ex.submit(look).result(timeout=60)[1] is None, "and so do the grantee's, after the owner's"
    else:
        assert leaked, "without it, one submitter's task changes what the next one runs in (README)"
