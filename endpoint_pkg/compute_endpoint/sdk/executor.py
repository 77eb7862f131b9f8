"""``Executor``: a concurrent.futures.Executor that runs functions on an endpoint.

    with Executor(endpoint_id="...") as ex:
        future = ex.submit(pow, 2, 10)
        print(future.result())

Each submission is published to the endpoint's task queue; results stream
back over AMQP into this session's own queue and resolve the futures. A
remote exception is raised by ``future.result()``: the original type when it
can be imported here, otherwise a ``RemoteExecutionError`` carrying the remote
traceback. Results that arrive twice (after a redelivery) are dropped.
"""

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor as _BaseExecutor
from concurrent.futures import Future
from typing import Any

import pika

from .. import serialize
from ..protocol import ErrorKind, ProtocolError, Result, Task, unbundle
from ..protocol.broker_names import TASK_EXCHANGE, EndpointNames
from ..protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES
from .client import BrokerURL, Client, sdk_identity, sdk_parameters
from .errors import (
    BrokerUnavailableError,
    PayloadTooLargeError,
    SDKError,
    TaskSerializationError,
    UnknownEndpointError,
    exception_from_result,
)
from .session import BrokerSession

log = logging.getLogger(__name__)


def mpi_request(spec: dict | None) -> tuple[int, int]:
    """(num_nodes, ranks_per_node) from a resource_specification; (0, 0) for none."""
    if not spec:
        return 0, 0
    unknown = set(spec) - {"num_nodes", "ranks_per_node", "num_ranks"}
    if unknown:
        raise ValueError(f"resource_specification takes num_nodes, ranks_per_node and num_ranks; not "
                         f"{', '.join(sorted(unknown))}")
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in spec.values()):
        raise ValueError(f"resource_specification values must be whole numbers above 0; got {spec!r}")
    nodes = spec.get("num_nodes", 1)
    ranks_per_node = spec.get("ranks_per_node")
    if ranks_per_node is None:
        ranks = spec.get("num_ranks", nodes)
        if ranks % nodes:
            raise ValueError(f"num_ranks ({ranks}) must be a multiple of num_nodes ({nodes})")
        ranks_per_node = ranks // nodes
    elif "num_ranks" in spec and spec["num_ranks"] != nodes * ranks_per_node:
        raise ValueError("num_ranks must equal num_nodes times ranks_per_node")
    return nodes, ranks_per_node


class Executor(_BaseExecutor):
    def __init__(self, endpoint_id: str, broker_url: BrokerURL = None, client_id: str | None = None,
                 client_secret: str | None = None, endpoint_owner: str | None = None, tls_ca: str | None = None,
                 connect_timeout: float = 30.0, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 walltime: float | None = None, check_endpoint: bool = True,
                 resource_specification: dict | None = None, container: str | None = None):
        """Connect to the broker and check the endpoint exists.

        ``broker_url``: the broker, or every node of a broker cluster (a list, or URLs
        separated by commas; default ``COMPUTE_BROKER_URL``, the same). The executor
        connects to the first node that answers and, when it loses that node, moves
        to the next; tasks not yet confirmed are sent again, and results that arrive
        twice are dropped.

        ``walltime``: seconds each task submitted from now on may run before it is
        killed; the endpoint's ``engine.task_walltime`` applies when unset, and is
        the most any task gets when set. May be changed later through the
        ``walltime`` attribute; it must be a finite number above 0.

        ``resource_specification``: for MPI tasks (``MPIFunction``) on an endpoint with
        GlobusMPIEngine, ``{"num_nodes": N, "ranks_per_node": R}`` (or ``num_ranks``
        in place of ``ranks_per_node``); also an attribute.

        ``container``: run each task in this container: an alias from the endpoint's
        ``containers:`` list, or the RUNTIME:IMAGE of one of its entries (None: no
        container). The endpoint refuses any other with ``InvalidTaskError``; also an
        attribute.
        """
        self.endpoint_id = str(endpoint_id)
        self.identity = sdk_identity(client_id, client_secret)
        self.names = EndpointNames(endpoint_owner or self.identity.client_id, self.endpoint_id)
        self.max_payload_bytes = max_payload_bytes
        self.walltime = walltime
        self.resource_specification = resource_specification
        self.container = container
        self.duplicates_dropped = 0
        self.foreign_results_dropped = 0  # result messages not sent by the endpoint's owner
        self._futures: dict[str, Future] = {}
        self._futures_lock = threading.Lock()
        self._shutdown = False
        if check_endpoint:
            client = Client(broker_url, self.identity.client_id, self.identity.secret, tls_ca)
            if not client.endpoint_exists(self.endpoint_id, self.names.owner):
                raise UnknownEndpointError(
                    f"no endpoint {self.endpoint_id} owned by {self.names.owner!r} on this broker: check the id "
                    "(and endpoint_owner), or start the endpoint once so it registers")
        nodes = sdk_parameters(broker_url, self.identity, tls_ca, "compute-endpoint sdk")
        self._refusal: str | None = None
        self._session = BrokerSession(nodes, self.identity.client_id, self._on_result, self._on_returned,
                                      self._on_refused)
        self._session.start()
        self._wait_connected(connect_timeout)

    def _wait_connected(self, timeout: float) -> None:
        if not self._session.ready.wait(timeout):
            self._session.close(delete_queue=False, timeout=2)
            raise BrokerUnavailableError(f"{self._session.first_error or 'cannot reach the broker'} "
                                         f"(gave up after {timeout:g}s)")
        if self._session.fatal_error:
            raise SDKError(self._session.fatal_error)

    @property
    def broker_node(self) -> str:
        """host:port of the broker node in use (or tried next, while reconnecting)."""
        return self._session.node

    @property
    def broker_reconnects(self) -> int:
        """How many times the connection to the broker was lost and made again."""
        return self._session.reconnects

    @property
    def walltime(self) -> float | None:
        return self._walltime

    @walltime.setter
    def walltime(self, value: float | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value <= 0):
            raise ValueError(f"walltime must be a finite number of seconds above 0, or None; got {value!r}")
        self._walltime = None if value is None else float(value)

    @property
    def resource_specification(self) -> dict | None:
        return self._resources

    @resource_specification.setter
    def resource_specification(self, value: dict | None) -> None:
        self._resources = value
        self._nodes, self._ranks_per_node = mpi_request(value)

    # --- concurrent.futures.Executor -----------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if self._shutdown:
            raise RuntimeError("cannot submit after shutdown")
        if self._refusal:
            raise SDKError(self._refusal)
        future: Future = Future()
        try:
            fn_hash, fn_bytes = serialize.dump_function(fn)
            arg_bytes = serialize.dump_arguments(args, kwargs)
        except serialize.SerializationError as exc:
            future.set_exception(TaskSerializationError(str(exc)))
            return future
        task = Task(task_id=str(uuid.uuid4()), fn_hash=fn_hash, fn_len=len(fn_bytes),
                    reply_to=self._session.reply.key, submitter=self.identity.client_id,
                    walltime=self.walltime, submitted_at=time.time(), num_nodes=self._nodes,
                    ranks_per_node=self._ranks_per_node, container_type=self.container or "RAW",
                    python_version=serialize.python_version(), payload=fn_bytes + arg_bytes)
        body = task.pack()
        if len(body) > self.max_payload_bytes:
            future.set_exception(PayloadTooLargeError(
                f"the task is {len(body) / 2**20:.1f} MiB, over the limit of "
                f"{self.max_payload_bytes / 2**20:.1f} MiB; pass large data by reference (a path or URL)",
                task.task_id, ErrorKind.PAYLOAD_TOO_LARGE))
            return future
        future.task_id = task.task_id  # type: ignore[attr-defined]  # documented: which task it is
        with self._futures_lock:
            self._futures[task.task_id] = future
        self._session.publish(TASK_EXCHANGE, self.names.tasks_key, body, task.task_id)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shutdown = True
        with self._futures_lock:
            pending = list(self._futures.values())
        if cancel_futures:
            for future in pending:
                future.cancel()
        if wait:
            for future in pending:
                if not future.cancelled():
                    try:
                        future.exception()
                    except Exception:  # cancelled meanwhile
                        pass
        with self._futures_lock:
            outstanding = len(self._futures)
        # Keep the result queue if results may still come (a later session cannot read it, but
        # it expires by itself); delete it when nothing is owed to us.
        self._session.close(delete_queue=outstanding == 0)

    def __exit__(self, exc_type, exc_val, exc_tb):
        # Leaving because of an error: do not also wait for every remote task.
        self.shutdown(wait=exc_type is None, cancel_futures=exc_type is not None)
        return False

    @property
    def outstanding(self) -> int:
        """Tasks submitted whose result has not arrived yet."""
        with self._futures_lock:
            return len(self._futures)

    @property
    def unconfirmed(self) -> int:
        """Tasks submitted that the broker has not yet confirmed it holds."""
        return self._session.unconfirmed()

    # --- results (session thread) --------------------------------------------

    def _on_result(self, body: bytes, props: pika.BasicProperties) -> None:
        if props.user_id != self.names.owner:
            # Only the endpoint's owner publishes its results; RabbitMQ vouches for user_id.
            self.foreign_results_dropped += 1
            log.error("dropped a result message from %r: only the endpoint's owner %r sends results",
                      props.user_id, self.names.owner)
            return
        try:
            results = [Result.unpack(item) for item in unbundle(body)]
        except ProtocolError as exc:
            log.error("dropped a malformed result message: %s", exc)
            return
        for result in results:
            self._resolve(result)

    def _resolve(self, result: Result) -> None:
        with self._futures_lock:
            future = self._futures.pop(result.task_id, None)
        if future is None:
            self.duplicates_dropped += 1  # a redelivered task ran twice; the first result won
            return
        if future.cancelled():
            return
        if result.ok:
            try:
                value = serialize.load(result.payload)
            except Exception as exc:
                future.set_exception(TaskSerializationError(
                    f"task {result.task_id} succeeded but its result cannot be deserialized here: "
                    f"{type(exc).__name__}: {exc}", result.task_id, ErrorKind.SERIALIZATION))
                return
            future.set_result(value)
        else:
            future.set_exception(exception_from_result(result))

    def _on_refused(self, message: str) -> None:
        """The broker refused our publishes: nothing in flight can succeed, so fail it all."""
        self._refusal = message
        with self._futures_lock:
            futures, self._futures = self._futures, {}
        for future in futures.values():
            if not future.done():
                future.set_exception(SDKError(message))

    def _on_returned(self, task_id: str, reason: str) -> None:
        with self._futures_lock:
            future = self._futures.pop(task_id, None)
        if future is not None and not future.done():
            future.set_exception(UnknownEndpointError(
                f"task {task_id} could not be delivered to endpoint {self.endpoint_id} ({reason}): its task queue "
                "no longer exists; was the endpoint deleted?"))
