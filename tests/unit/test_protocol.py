"""The wire protocol: round trips, and refusals that name what is wrong."""

import struct
import uuid

import pytest

from compute_endpoint.protocol import (
    Bundle,
    Command,
    CommandAction,
    ErrorKind,
    Heartbeat,
    ManagerRegistration,
    ProtocolError,
    Result,
    ResultAck,
    StatusReport,
    Task,
    unbundle,
    unpack_any,
)
from compute_endpoint.protocol.codec import MAX_HEADER_BYTES, PROTOCOL_VERSION, encode
from compute_endpoint.protocol.worker_stream import FrameReader, FrameTooLarge
from compute_endpoint.sdk.errors import TaskFailed, exception_from_result


def test_every_message_round_trips():
    messages = [
        Task(task_id="t", fn_hash="ab" * 16, fn_len=3, reply_to="alice.s1", payload=b"fn-args"),
        Result(task_id="t", ok=True, payload=b"\x00\x01"),
        Result.failure("t", "worker_died", "gone", worker_pid=7),
        StatusReport(endpoint_id="e", name="n", owner="o", state="online", sent_at=1.5, heartbeat_period=30),
        Command(command_id="c", action="status", reply_to="alice.cmd"),
        ManagerRegistration(manager_id="m", hostname="h", pid=1, workers=2, known_tasks=["a"]),
        Heartbeat(sender="m", known_tasks=["a", "b"], last_batch=3),
    ]
    for msg in messages:
        assert unpack_any(msg.pack()) == msg
        assert type(msg).unpack(msg.pack()) == msg


def test_peek_skips_the_payload():
    task = Task(task_id="t", fn_hash="h", fn_len=1, reply_to="a.b", payload=b"x" * 1000)
    assert Task.peek(task.pack()).payload == b"" and Task.peek(task.pack()).task_id == "t"


@pytest.mark.parametrize("data, reason, text", [
    (b"", "truncated", "shorter than the 8-byte prefix"),
    (b"XX\x01\x01\x00\x00\x00\x00", "bad-magic", "not a compute-endpoint message"),
    (b"CE\x09\x01\x00\x00\x00\x02{}", "unsupported-version", "protocol version 9 is not supported"),
    (b"CE\x01\x01\x00\x00\x00\x10{}", "truncated", "header claims 16 bytes"),
    (b"CE\x01\x01\x00\x00\x00\x02[]", "bad-header", "must be a JSON object"),
    (b"CE\x01\x01\x00\x00\x00\x02{x", "bad-header", "not valid JSON"),
    (b"CE\x01\x01\x7f\x00\x00\x00", "header-too-large", "exceeds the 65536-byte limit"),
])
def test_malformed_bytes_are_refused_by_reason(data, reason, text):
    with pytest.raises(ProtocolError) as caught:
        Task.unpack(data)
    assert caught.value.reason == reason and text in str(caught.value)


def test_missing_and_mistyped_fields_are_named():
    with pytest.raises(ProtocolError, match="lacks required field 'fn_hash'"):
        Task.unpack(encode(Task.KIND, {"task_id": "t"}))
    with pytest.raises(ProtocolError, match="field 'fn_len' must be an integer, got '3'"):
        Task.unpack(encode(Task.KIND, {"task_id": "t", "fn_hash": "h", "fn_len": "3", "reply_to": "a.b"}))
    with pytest.raises(ProtocolError, match="expected a Task message"):
        Task.unpack(Command(command_id="c", action="status").pack())


@pytest.mark.parametrize("header, text", [
    ({"command_id": "c", "action": "reboot"},
     "Command field 'action' must be one of 'status', 'shutdown', 'drain', got 'reboot'"),
    ({"command_id": "c", "action": ["status"]}, "Command field 'action' must be one of 'status'"),
])
def test_a_word_outside_the_protocols_vocabulary_is_refused_by_name(header, text):
    with pytest.raises(ProtocolError, match=text):
        Command.unpack(encode(Command.KIND, header))


def test_words_of_the_vocabulary_come_back_as_their_enum():
    cmd = Command.unpack(Command(command_id="c", action=CommandAction.DRAIN).pack())
    assert cmd.action is CommandAction.DRAIN
    failed = Result.unpack(Result.failure("t", ErrorKind.WORKER_DIED, "gone").pack())
    assert failed.error_kind is ErrorKind.WORKER_DIED
    assert Result.unpack(Result(task_id="t", ok=True).pack()).error_kind is None


def test_an_error_kind_from_a_newer_peer_still_fails_the_task_with_its_message():
    result = Result.unpack(encode(Result.KIND, {"task_id": "t", "ok": False, "error_kind": "gpu_fell_off",
                                                "error_message": "the GPU is gone"}))
    assert result.error_kind == "gpu_fell_off"
    error = exception_from_result(result)
    assert type(error) is TaskFailed and "the GPU is gone" in str(error)


@pytest.mark.parametrize("container_types, text", [
    ([["a"]], "must be a list of strings, got a list holding list"),
    ([{"id": 1}], "must be a list of strings, got a list holding dict"),
    ("abc", "must be a list of strings, got 'abc'"),
])
def test_list_fields_check_every_item(container_types, text):
    header = {"manager_id": "m", "hostname": "h", "pid": 1, "workers": 1, "container_types": container_types}
    with pytest.raises(ProtocolError, match=text):
        ManagerRegistration.unpack(encode(ManagerRegistration.KIND, header))


@pytest.mark.parametrize("payload, text", [
    (b'[["a"]]', "'known_tasks' must be a list of strings"),
    (b'{"a": 1}', "'known_tasks' must be a list of strings"),
    (b"[1, 2", "'known_tasks' \\(its payload\\) is not a JSON array"),
    (b"\xff\xfe", "'known_tasks' \\(its payload\\) is not a JSON array"),
])
def test_id_lists_in_the_payload_are_checked_too(payload, text):
    with pytest.raises(ProtocolError, match=text):
        Heartbeat.unpack(encode(Heartbeat.KIND, {"sender": "m"}, payload))


def test_lists_that_grow_with_work_are_not_bounded_by_the_header_cap():
    """A manager on a big node holds more task ids than the 64 KiB header could carry (about 1,700 uuids)."""
    ids = [str(uuid.uuid4()) for _ in range(20_000)]
    for msg in (Heartbeat(sender="m", known_tasks=ids), ResultAck(task_ids=ids),
                ManagerRegistration(manager_id="m", hostname="h", pid=1, workers=1, known_tasks=ids)):
        packed = msg.pack()
        assert len(packed) > 10 * MAX_HEADER_BYTES
        assert unpack_any(packed) == msg


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_numbers_that_disable_limits_are_refused(number):
    header = b'{"task_id":"t","fn_hash":"h","fn_len":0,"reply_to":"a.b","walltime":' + number.encode() + b"}"
    data = b"CE\x01\x01" + len(header).to_bytes(4, "big") + header
    with pytest.raises(ProtocolError) as caught:
        Task.unpack(data)
    assert caught.value.reason == "bad-header"
    with pytest.raises(ValueError):
        Task(task_id="t", fn_hash="h", fn_len=0, reply_to="a.b", walltime=float(number)).pack()


def test_a_worker_frame_longer_than_the_limit_is_refused_before_it_is_buffered():
    reader = FrameReader(max_frame=1000)
    assert reader.feed(struct.pack("!I", 5) + b"hello") == [b"hello"]
    with pytest.raises(FrameTooLarge, match="4294967295 bytes announced, over the limit of 1000"):
        reader.feed(struct.pack("!I", 2**32 - 1) + b"x")


def test_a_bundle_with_sizes_that_are_not_counts_is_refused_when_unpacked():
    body = encode(Bundle.KIND, {"sizes": ["8", None]}, b"12345678")
    with pytest.raises(ProtocolError, match="Bundle field 'sizes' must be a list of integers"):
        unbundle(body)
    with pytest.raises(ProtocolError, match="unknown message kind 99"):
        unpack_any(encode(99, {}))
    assert PROTOCOL_VERSION == 1


def test_frame_reader_reassembles_split_frames():
    import struct

    frames = [b"one", b"", b"three" * 1000]
    stream = b"".join(struct.pack("!I", len(f)) + f for f in frames)
    reader = FrameReader()
    got = []
    for i in range(0, len(stream), 7):
        got += reader.feed(stream[i:i + 7])
    assert got == frames


def test_a_thousand_managers_fit_in_status_messages():
    """Manager lists grow with the cluster, so they travel in payloads, not size-limited headers."""
    from compute_endpoint.protocol import CommandReply, InterchangeStatus

    managers = [{"manager_id": f"node{i:04d}.cluster.example.org.hpc.block-0", "hostname": f"node{i:04d}",
                 "pid": 10000 + i, "workers": 100, "tasks": 100, "idle_workers": 0,
                 "container_types": ["RAW"], "last_seen_seconds_ago": 0.1, "draining": False} for i in range(1000)]
    status = InterchangeStatus.of(managers, incarnation="i", pid=1, capacity=100000, free_slots=0, queued=5,
                                  running=100000)
    decoded = unpack_any(status.pack())
    assert decoded.managers == managers and decoded.capacity == 100000
    reply = CommandReply.of("c", True, "ok", {"manager_details": managers})
    assert unpack_any(reply.pack()).data["manager_details"] == managers
