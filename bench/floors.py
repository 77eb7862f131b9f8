"""The floors our round trip is compared with, measured on this machine.

    python bench/floors.py

* pika: a message published to a queue, consumed by another process that
  publishes it back, consumed again: two broker hops, as a task and its result make;
* pyzmq: a DEALER's request echoed by a ROUTER in another process;
* worker exec: what our worker spends on a no-op task (decode, unpickle, call,
  pickle, encode), measured in-process.
Prints JSON with the p50 of each, in milliseconds.
"""

import json
import multiprocessing
import statistics
import time
import uuid

import pika
import zmq

from common import BROKER_URL, IDENTITY

ROUNDS = 2000


def _pika_params():
    params = pika.URLParameters(BROKER_URL)
    params.credentials = pika.PlainCredentials(*IDENTITY)
    return params


def _pika_echo(request_queue: str, reply_queue: str, ready) -> None:
    conn = pika.BlockingConnection(_pika_params())
    channel = conn.channel()
    ready.set()
    for _method, _props, body in channel.consume(request_queue, auto_ack=True):
        channel.basic_publish("", reply_queue, body)
        if body == b"stop":
            break
    conn.close()


def pika_rtt() -> list[float]:
    conn = pika.BlockingConnection(_pika_params())
    channel = conn.channel()
    request, reply = f"floor-req-{uuid.uuid4().hex[:8]}", f"floor-rep-{uuid.uuid4().hex[:8]}"
    channel.queue_declare(request, auto_delete=True)
    channel.queue_declare(reply, auto_delete=True)
    ready = multiprocessing.Event()
    echo = multiprocessing.Process(target=_pika_echo, args=(request, reply, ready))
    echo.start()
    ready.wait(30)
    samples = []
    replies = channel.consume(reply, auto_ack=True)
    for _ in range(ROUNDS + 100):
        began = time.perf_counter()
        channel.basic_publish("", request, b"ping")
        next(replies)
        samples.append((time.perf_counter() - began) * 1000)
    channel.basic_publish("", request, b"stop")
    next(replies)
    echo.join(10)
    conn.close()
    return samples[100:]


def _zmq_echo(port: int) -> None:
    sock = zmq.Context().socket(zmq.ROUTER)
    sock.bind(f"tcp://127.0.0.1:{port}")
    while True:
        frames = sock.recv_multipart()
        sock.send_multipart(frames)
        if frames[-1] == b"stop":
            break


def zmq_rtt() -> list[float]:
    sock = zmq.Context().socket(zmq.DEALER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")  # learn a free port, then free it
    sock.unbind(sock.getsockopt(zmq.LAST_ENDPOINT))
    echo = multiprocessing.Process(target=_zmq_echo, args=(port,))
    echo.start()
    sock.connect(f"tcp://127.0.0.1:{port}")
    samples = []
    for _ in range(ROUNDS + 100):
        began = time.perf_counter()
        sock.send(b"ping")
        sock.recv()
        samples.append((time.perf_counter() - began) * 1000)
    sock.send(b"stop")
    sock.recv()
    echo.join(10)
    return samples[100:]


def worker_exec() -> list[float]:
    from compute_endpoint import serialize
    from compute_endpoint.protocol import Task
    from compute_endpoint.worker.worker import FunctionCache, execute

    def noop(i):
        return i

    fn_hash, fn_bytes = serialize.dump_function(noop)
    cache = FunctionCache()
    samples = []
    for i in range(ROUNDS + 100):
        data = Task(task_id=str(i), fn_hash=fn_hash, fn_len=len(fn_bytes), reply_to="a.b",
                    payload=fn_bytes + serialize.dump_arguments((i,), {})).pack()
        began = time.perf_counter()
        execute(Task.unpack(data), cache, 10 * 2**20).pack()
        samples.append((time.perf_counter() - began) * 1000)
    return samples[100:]


def main() -> None:
    print(json.dumps({name: statistics.median(fn()) for name, fn in
                      (("pika_rtt_ms", pika_rtt), ("zmq_rtt_ms", zmq_rtt), ("worker_exec_ms", worker_exec))}))


if __name__ == "__main__":
    main()
