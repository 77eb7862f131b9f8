"""Bad input: malformed queue messages are dead-lettered with a reason and the endpoint keeps
serving; results that cannot be serialized come back as errors naming their type; hostile
config values are refused at start."""

import json

import pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compute_endpoint.protocol import ProtocolError, Task, unpack_any
from compute_endpoint.protocol.broker_names import TASK_EXCHANGE, EndpointNames
from compute_endpoint.protocol.codec import MAX_HEADER_BYTES, encode
from compute_endpoint.sdk import TaskSerializationError

from ..support.broker import queue_depth, wait_for

VALID = Task(task_id="t-1", fn_hash="00" * 16, fn_len=0, reply_to="x.y").pack()

MALFORMED = {
    "random-bytes": (b"\x8f\x00\x13 not a message at all \xff", "bad-magic"),
    "empty": (b"", "truncated"),
    "wrong-version": (b"CE\x07" + VALID[3:], "unsupported-version"),
    "missing-fields": (encode(Task.KIND, {"task_id": "t-2"}), "missing-field"),
    "wrong-field-type": (encode(Task.KIND, {"task_id": 5, "fn_hash": "h", "fn_len": 0, "reply_to": "a.b"}),
                         "bad-field"),
    "huge-header": (encode(Task.KIND, {"task_id": "t-3", "pad": "x" * (MAX_HEADER_BYTES + 10)}),
                    "header-too-large"),
    "not-a-task": (encode(99, {}), "wrong-kind"),
    "bad-reply-to": (Task(task_id="t-4", fn_hash="h", fn_len=0, reply_to="no-dot").pack(), "bad-reply-to"),
}


def _publish_raw(ep, body: bytes, headers: dict | None = None) -> None:
    params = pika.URLParameters(ep.broker_url)
    params.credentials = pika.PlainCredentials(ep.identity.client_id, ep.identity.secret)
    names = EndpointNames(ep.identity.client_id, ep.endpoint_id)
    with pika.BlockingConnection(params) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(TASK_EXCHANGE, names.tasks_key, body,
                              pika.BasicProperties(delivery_mode=2, headers=headers, user_id=ep.identity.client_id),
                              mandatory=True)


def _dead_letters(ep) -> list[tuple[dict, bytes]]:
    params = pika.URLParameters(ep.broker_url)
    params.credentials = pika.PlainCredentials(ep.identity.client_id, ep.identity.secret)
    names = EndpointNames(ep.identity.client_id, ep.endpoint_id)
    found = []
    with pika.BlockingConnection(params) as conn:
        channel = conn.channel()
        while True:
            method, props, body = channel.basic_get(names.dead_queue, auto_ack=True)
            if method is None:
                return found
            found.append((props.headers or {}, body))


def test_malformed_task_messages_are_dead_lettered_with_the_reason(endpoint):
    for body, _ in MALFORMED.values():
        _publish_raw(endpoint, body)
    # a huge AMQP header table around garbage is refused the same way
    _publish_raw(endpoint, b"garbage, and plenty of it", headers={f"h{i}": "v" * 1000 for i in range(100)})

    with endpoint.executor() as ex:
        assert ex.submit(sum, [1, 2]).result(timeout=60) == 3, "the endpoint keeps serving"

    dead_queue = EndpointNames(endpoint.identity.client_id, endpoint.endpoint_id).dead_queue
    wait_for(lambda: queue_depth(dead_queue) == len(MALFORMED) + 1, what="every malformed message dead-lettered")
    letters = _dead_letters(endpoint)
    reasons = sorted(h["x-reject-reason"] for h, _ in letters)
    assert reasons == sorted([r for _, r in MALFORMED.values()] + ["bad-magic"])
    assert all(h["x-reject-detail"] for h, _ in letters), "each carries a readable detail"
    assert {body for _, body in letters} >= {b for b, _ in MALFORMED.values()}, "the original body is kept"

    log = (endpoint.dir / "logs" / "endpoint.log").read_text()
    assert log.count("message set aside in") == len(MALFORMED) + 1, "logged once each"
    assert endpoint.status()["state"] == "Running"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_fuzz_decoder_on_arbitrary_bytes(data):
    try:
        unpack_any(data)
    except ProtocolError:
        pass


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                     lambda children: st.lists(children) | st.dictionaries(st.text(), children), max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(kind=st.integers(0, 255), header=st.dictionaries(
    st.sampled_from(["task_id", "fn_hash", "fn_len", "reply_to", "walltime", "ok", "payload", "x"]), _json),
    payload=st.binary(max_size=64))
def test_fuzz_decoder_on_well_framed_messages_with_arbitrary_headers(kind, header, payload):
    try:
        message = unpack_any(encode(kind, header, payload))
    except ProtocolError:
        return
    assert unpack_any(message.pack()) == message  # whatever is accepted round-trips


def test_deeply_nested_header_is_refused_not_crashing():
    nested = "[" * 30000 + "]" * 30000
    data = b"CE\x01\x01" + len(nested).to_bytes(4, "big") + nested.encode()
    with pytest.raises(ProtocolError, match="nested too deeply|must be a JSON object"):
        unpack_any(data)


def test_results_that_cannot_be_serialized_name_their_type(endpoint):
    def generator():
        return (i for i in range(3))

    def open_socket():
        import socket

        return socket.socket()

    def nested():
        return {"fine": 1, "bad": [1, (x for x in "ab")]}

    with endpoint.executor() as ex:
        for fn, type_name in ((generator, "generator"), (open_socket, "socket"), (nested, "generator")):
            with pytest.raises(TaskSerializationError) as caught:
                ex.submit(fn).result(timeout=60)
            assert f"{type_name} objects cannot be pickled" in str(caught.value)
        assert ex.submit(len, "still fine").result(timeout=60) == 10


def test_arguments_that_cannot_be_serialized_fail_at_submit(endpoint):
    import threading

    with endpoint.executor() as ex:
        future = ex.submit(print, threading.Lock())
        with pytest.raises(TaskSerializationError, match="the arguments cannot be serialized: lock objects"):
            future.result(timeout=5)


@pytest.mark.parametrize("engine, key, expected", [
    ({"max_workers_per_node": -3}, "engine.max_workers_per_node", "expected an integer of at least 1, got -3"),
    ({"provider": {"type": "NoSuchProvider"}}, "engine.provider.type",
     "provider type 'NoSuchProvider' is not supported; supported: LocalProvider"),
    ({"max_retries_on_system_failure": "many"}, "engine.max_retries_on_system_failure",
     "expected an integer of at least 0, got str 'many'"),
    ({"task_walltime": -1}, "engine.task_walltime", "expected a number greater than 0, got -1"),
    ({"worker_port": 70000}, "engine.worker_port", "expected a TCP port (1-65535), got 70000"),
    ({"provider": {"init_blocks": "lots"}}, "engine.provider.init_blocks",
     "expected an integer of at least 0, got str 'lots'"),
])
def test_hostile_config_values_are_refused_at_start_naming_the_key(endpoint_factory, engine, key, expected):
    ep = endpoint_factory(config={"engine": engine}, start=False)
    done = ep.cli("start", "default")
    assert done.returncode != 0
    assert f"{key}: {expected}" in done.stderr
    assert "config.yaml:" in done.stderr and "Traceback" not in done.stderr
    assert json.loads(ep.cli("list", "--json").stdout)[0]["status"] == "Initialized"
