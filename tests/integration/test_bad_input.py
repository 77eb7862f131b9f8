"""Bad input: malformed queue messages are dead-lettered with a reason and the endpoint keeps
serving; results that cannot be serialized come back as errors naming their type; hostile
config values are refused at start."""

import json

import pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compute_endpoint.protocol import Bundle, Heartbeat, ManagerRegistration, ProtocolError, ResultAck, Task, unpack_any
from compute_endpoint.protocol.broker_names import TASK_EXCHANGE, EndpointNames
from compute_endpoint.protocol.codec import MAX_HEADER_BYTES, encode
from compute_endpoint.protocol.messages import _REGISTRY as _KINDS
from compute_endpoint.protocol.worker_stream import FrameReader, FrameTooLarge
from compute_endpoint.sdk import TaskSerializationError

from ..support.broker import queue_depth, wait_for


def frame(kind: int, header: dict, payload: bytes = b"") -> bytes:
    """A message framed as a careless or hostile peer would: NaN and Infinity allowed in the header."""
    head = json.dumps(header, allow_nan=True).encode()
    return b"CE\x01" + bytes([kind]) + len(head).to_bytes(4, "big") + head + payload


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
    "bundle-sizes-not-counts": (encode(Bundle.KIND, {"sizes": ["x"]}, b"x"), "bad-field"),
    "bundle-sizes-too-large": (encode(Bundle.KIND, {"sizes": [2**70]}, b"x"), "bad-bundle"),
    "bundle-of-too-many": (Bundle.of([VALID] * 1025).pack(), "bundle-too-large"),
    "task-id-with-newline": (Task(task_id="t\n5", fn_hash="h", fn_len=0, reply_to="x.y").pack(), "bad-task-id"),
    "walltime-nan": (frame(Task.KIND, {"task_id": "t-6", "fn_hash": "h", "fn_len": 0, "reply_to": "x.y",
                                       "walltime": float("nan")}), "bad-header"),
    "walltime-overflow": (VALID.replace(b'"reply_to"', b'"walltime":1e400,"reply_to"').replace(
        VALID[4:8], (int.from_bytes(VALID[4:8], "big") + 16).to_bytes(4, "big"), 1), "bad-header"),
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


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                     lambda children: st.lists(children) | st.dictionaries(st.text(), children), max_leaves=20)


def decodes_or_refuses(data: bytes) -> None:
    """Every way a message from outside is decoded: accepted and round-tripping, or a ProtocolError."""
    try:
        message = unpack_any(data)
    except ProtocolError:
        return
    assert unpack_any(message.pack()) == message
    if isinstance(message, Bundle):
        try:
            items = message.items()
        except ProtocolError:
            return
        assert b"".join(items) == message.payload


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(sorted({*_KINDS, 0, 99, 255})), header=st.dictionaries(
    st.sampled_from(["task_id", "fn_hash", "fn_len", "reply_to", "walltime", "ok", "payload", "sizes", "manager_id",
                     "hostname", "pid", "workers", "container_types", "sender", "last_batch", "x"]), _json),
    payload=st.binary(max_size=64))
def test_fuzz_decoder_on_well_framed_messages_with_arbitrary_headers(kind, header, payload):
    decodes_or_refuses(frame(kind, header, payload))


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=3) | st.none(), max_size=8),
       payload=st.binary(max_size=64))
def test_fuzz_bundles_down_to_their_items(sizes, payload):
    decodes_or_refuses(frame(Bundle.KIND, {"sizes": sizes}, payload))


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from([ManagerRegistration.KIND, Heartbeat.KIND, ResultAck.KIND]),
       ids=st.recursive(st.text(max_size=5) | st.integers() | st.floats(), st.lists, max_leaves=8) | st.binary())
def test_fuzz_id_lists_carried_in_the_payload(kind, ids):
    header = {"manager_id": "m", "hostname": "h", "pid": 1, "workers": 1, "sender": "m"}
    payload = ids if isinstance(ids, bytes) else json.dumps(ids, allow_nan=True).encode()
    decodes_or_refuses(frame(kind, header, payload))


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.binary(max_size=16), max_size=8))
def test_fuzz_the_worker_frame_reader(chunks):
    reader = FrameReader(max_frame=64)
    try:
        for chunk in chunks:
            for item in reader.feed(chunk):
                assert len(item) <= 64
    except FrameTooLarge:
        pass


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
     "unknown provider type 'NoSuchProvider'; expected one of: AWSProvider"),
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
