"""The interchange process: ZeroMQ sockets, heartbeats and bookkeeping around the Scheduler.

ROUTER sockets: one for the endpoint daemon and one for managers on this
host, both ``ipc://`` in a private directory, and one on TCP for managers on
other hosts when the config gives an address they can reach. Tasks arrive from the endpoint, are
scheduled onto managers, results flow back. The interchange never
deserializes user payloads; it reads message headers only.
"""

import functools
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Callable

import zmq

from ..protocol import (
    Control,
    ControlAction,
    ErrorKind,
    Heartbeat,
    InterchangeStatus,
    ManagerRegistration,
    Message,
    ProtocolError,
    Result,
    ResultAck,
    ResultBatch,
    Task,
    TaskBatch,
    unpack_any,
)
from ..readiness import Readiness
from ..zmq_sockets import bind, make_socket
from .manager_auth import ManagerAuth, ManagerKeys, curve_listener
from .manager_record import ManagerRecord, registration_problem
from .routing import Router
from .scheduler import Completion, Lost, Scheduler
from .settings import InterchangeSettings

log = logging.getLogger(__name__)

ENDPOINT_IDENTITY = b"endpoint"
_RETRYABLE = {ErrorKind.WORKER_DIED}


class Interchange:
    def __init__(self, settings: InterchangeSettings, readiness: Readiness | None = None):
        self.settings = settings
        self.readiness = readiness
        self.incarnation = uuid.uuid4().hex[:12]
        self.ctx = zmq.Context()
        self.endpoint_sock = make_socket(self.ctx, zmq.ROUTER)
        bind(self.endpoint_sock, settings.endpoint_address)
        self.manager_socks: list[zmq.Socket] = []
        if settings.local_managers:
            self.manager_socks.append(make_socket(self.ctx, zmq.ROUTER))
            bind(self.manager_socks[-1], settings.local_managers)
        self.worker_port = 0
        self.auth: ManagerAuth | None = None
        self.tcp_sock: zmq.Socket | None = None
        if settings.worker_address:
            self._listen_for_remote_managers(settings)
        self._links: dict[str, zmq.Socket] = {}  # manager id -> the socket it registered on
        self.manager_keys = ManagerKeys(self.auth)
        self.scheduler = Scheduler(settings.max_retries, Router(settings.routing) if settings.routing else None)
        self.to_endpoint: deque[list[bytes]] = deque()
        self.running = True
        self.status_dirty = True
        self._asked_to_register: dict[bytes, float] = {}
        self._next_heartbeat = 0.0
        self._last_status = 0.0

    def _listen_for_remote_managers(self, settings: InterchangeSettings) -> None:
        """A CURVE server on TCP: only managers whose keys are authorized get through the handshake."""
        self.auth, self.tcp_sock, self.worker_port = curve_listener(self.ctx, settings)
        self.manager_socks.append(self.tcp_sock)

    # --- main loop -----------------------------------------------------------

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.endpoint_sock, zmq.POLLIN)
        for sock in self.manager_socks:
            poller.register(sock, zmq.POLLIN)
        if self.auth is not None:
            poller.register(self.auth.zap, zmq.POLLIN)
        log.info("interchange %s serving managers %s", self.incarnation, self.describe_listeners())
        while self.running:
            events = dict(poller.poll(100))
            if self.auth is not None and self.auth.zap in events:
                self.auth.handle_requests()
            for sock in self.manager_socks:
                if sock in events:
                    self._drain(sock, functools.partial(self._on_manager, sock))
            if self.endpoint_sock in events:
                self._drain(self.endpoint_sock, self._on_endpoint)
            self._dispatch()
            self._tick()
        self.close()

    def describe_listeners(self) -> str:
        where = ["on this host"] if self.settings.local_managers else []
        if self.worker_port:
            where.append(f"on {self.settings.worker_address}:{self.worker_port} (CurveZMQ, authorized keys only)")
        return " and ".join(where) or "nowhere (no manager socket configured)"

    def close(self) -> None:
        for sock in [self.endpoint_sock, *self.manager_socks]:
            sock.close()
        if self.auth is not None:
            self.auth.close()
        self.ctx.term()

    def _drain(self, sock: zmq.Socket, handler: Callable[[bytes, Message, list[bytes], str | None], None]) -> None:
        """Handle waiting messages, each with the CURVE key its sender was admitted with (None off TCP)."""
        with_key = sock is self.tcp_sock
        for _ in range(10_000):  # bounded so one busy side cannot starve the other
            try:
                if with_key:  # a data frame carries its connection's metadata (the ROUTER's own frame may not)
                    parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    frames = [part.bytes for part in parts]
                    key: str | None = str(parts[1].get("User-Id")) if len(parts) > 1 else None
                else:
                    frames, key = sock.recv_multipart(zmq.NOBLOCK), None
            except zmq.Again:
                return
            try:
                handler(frames[0], unpack_any(frames[1]), frames[2:], key)
            except (ProtocolError, IndexError) as exc:
                self.manager_keys.refuse(frames[0].decode(errors="replace"), f"a malformed message: {exc}")
            except Exception:  # a case the checks missed: one peer's message must not stop every manager's tasks
                log.exception("internal error handling a message from %r; dropped it", frames[0])

    # --- endpoint side -------------------------------------------------------

    def _on_endpoint(self, identity: bytes, msg: Message, extra: list[bytes], _key: str | None) -> None:
        if identity != ENDPOINT_IDENTITY:
            log.warning("ignored a %s from %r on the endpoint socket: only the endpoint daemon may use it",
                        type(msg).__name__, identity)
            return
        if isinstance(msg, TaskBatch):
            for data in extra:
                try:
                    task = Task.peek(data)
                except ProtocolError as exc:  # (the daemon sends only tasks it could read)
                    log.error("dropped a malformed task from the endpoint: %s", exc)
                    continue
                self.scheduler.submit(task.task_id, data, task.container_type)
            self.status_dirty = True
        elif isinstance(msg, Control):
            self._endpoint_control(msg)
        self._flush_to_endpoint()

    def _endpoint_control(self, msg: Control) -> None:
        self.status_dirty = True  # (all a HELLO asks for)
        if msg.action == ControlAction.SHUTDOWN:
            log.info("shutdown requested by the endpoint; stopping %d managers", len(self.scheduler.managers))
            self._broadcast(Control(action=ControlAction.SHUTDOWN).pack())
            self.running = False
        elif msg.action == ControlAction.DRAIN_MANAGERS:  # scale-in: they finish what they hold, then leave
            for manager_id in (m for m in msg.manager_ids if m in self.scheduler.managers):
                self.scheduler.set_draining(manager_id)
                self._send_manager(manager_id, Control(action=ControlAction.DRAIN, detail=msg.detail).pack())
        elif msg.action == ControlAction.FAIL_QUEUED:  # no block could start: say why rather than wait
            queued = self.scheduler.take_queued(msg.container_types)
            self._fail_lost([Lost(entry, msg.detail) for entry in queued],
                            ErrorKind.NO_RESOURCES)

    def _send_endpoint(self, frames: list[bytes]) -> None:
        self.to_endpoint.append(frames)
        self._flush_to_endpoint()

    def _flush_to_endpoint(self) -> None:
        while self.to_endpoint:
            try:
                self.endpoint_sock.send_multipart([ENDPOINT_IDENTITY] + self.to_endpoint[0])
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EHOSTUNREACH:
                    raise
                return  # endpoint not connected; keep until it says hello
            self.to_endpoint.popleft()

    # --- manager side --------------------------------------------------------

    def _on_manager(self, sock: zmq.Socket, identity: bytes, msg: Message, extra: list[bytes],
                    key: str | None) -> None:
        manager_id = identity.decode(errors="replace")
        if sock is self.tcp_sock and not (self.auth is not None and self.auth.admits(key)):
            self.manager_keys.refuse(manager_id, f"its key {key} is no longer authorized")
            return
        if isinstance(msg, ManagerRegistration):
            self._register(sock, identity, msg, key)
            return
        record = self.scheduler.managers.get(manager_id)
        conflict = self.manager_keys.conflict(manager_id, key) if record is not None else None
        if conflict:
            self.manager_keys.refuse(manager_id, f"a {type(msg).__name__}: {conflict}")
            return
        if record is not None:
            record.last_seen = time.monotonic()
        if isinstance(msg, ResultBatch):
            self._on_results(sock, identity, extra)
        elif isinstance(msg, Control):
            self._manager_control(manager_id, msg)
        elif isinstance(msg, Heartbeat):
            if record is None:
                self._ask_to_register(sock, identity)
                return
            record.idle_workers = msg.idle_workers
            self.scheduler.advertise(manager_id, msg)
            requeued = self.scheduler.reconcile(manager_id, msg.known_tasks, msg.last_batch)
            if requeued:
                log.warning("manager %s never received %d tasks; requeued them", manager_id, requeued)

    def _ask_to_register(self, sock: zmq.Socket, identity: bytes) -> None:
        """Once per heartbeat period: after a partition heals, a burst of buffered heartbeats arrives at once."""
        now = time.monotonic()
        if now - self._asked_to_register.get(identity, -1e9) < self.settings.heartbeat_period:
            return
        self._asked_to_register[identity] = now
        self._send_to(sock, identity, Control(action=ControlAction.REGISTER).pack())

    def _manager_control(self, manager_id: str, msg: Control) -> None:
        if msg.action == ControlAction.DRAINING:
            log.info("manager %s is draining; sending it no more tasks", manager_id)
            self.scheduler.set_draining(manager_id)
        elif msg.action == ControlAction.BYE:
            log.info("manager %s left", manager_id)
            self._remove_manager(manager_id, f"the manager ({manager_id}) left")
        self.status_dirty = True

    def _register(self, sock: zmq.Socket, identity: bytes, msg: ManagerRegistration, key: str | None) -> None:
        manager_id = identity.decode(errors="replace")
        problem = registration_problem(msg, manager_id, self.settings.plain_arguments)
        if problem is None and manager_id in self.scheduler.managers:
            problem = self.manager_keys.conflict(manager_id, key)
        if problem is not None:
            self.manager_keys.refuse(manager_id, f"registration refused: {problem}")
            return
        self._asked_to_register.pop(identity, None)
        self._links[msg.manager_id] = sock
        self.manager_keys.bind(msg.manager_id, key)
        record = ManagerRecord(
            manager_id=msg.manager_id, hostname=msg.hostname, pid=msg.pid, workers=msg.workers,
            prefetch=msg.prefetch, container_types=tuple(msg.container_types), version=msg.version,
            incarnation=msg.incarnation, batch_seq=msg.last_batch, block_id=msg.block_id,
        )
        lost = self.scheduler.add_manager(record, msg.known_tasks)
        self.scheduler.advertise(record.manager_id, msg)
        log.info("manager %s registered from %s (pid %d, %d workers, holding %d tasks)", msg.manager_id,
                 msg.hostname, msg.pid, msg.workers, len(msg.known_tasks))
        self._send_to(sock, identity, Heartbeat(sender="interchange", incarnation=self.incarnation).pack())
        self._fail_lost(lost)
        self.status_dirty = True

    def _on_results(self, sock: zmq.Socket, identity: bytes, frames: list[bytes]) -> None:
        """Take results only for tasks this manager holds.

        An unregistered manager gets no acknowledgement: it registers again,
        declaring the tasks it holds, and then resends. Results for tasks it
        does not hold are acknowledged, so that it stops resending, and dropped.
        """
        manager_id = identity.decode(errors="replace")
        record = self.scheduler.managers.get(manager_id)
        if record is None:
            self._ask_to_register(sock, identity)
            return
        forward, acked = [], []
        for data in frames:
            try:
                result = Result.peek(data)
            except ProtocolError as exc:  # only this one: the others in the batch are someone's results
                self.manager_keys.refuse(manager_id, f"a malformed result: {exc}")
                continue
            acked.append(result.task_id)
            if result.task_id not in record.tasks:
                self.manager_keys.refuse(manager_id, f"a result for task {result.task_id}, which it does not hold")
                continue
            action = self.scheduler.complete(result.task_id, result.error_kind in _RETRYABLE)
            if action == Completion.RETRY:
                log.warning("task %s: %s; retrying", result.task_id, result.error_message)
                continue
            if result.error_kind in _RETRYABLE:
                data = self._final_failure(data)
            forward.append(data)
        self._send_to(sock, identity, ResultAck(task_ids=acked).pack())
        if forward:
            self._send_endpoint([ResultBatch(sender="interchange").pack()] + forward)
        self.status_dirty = True

    def _final_failure(self, data: bytes) -> bytes:
        result = Result.unpack(data)
        attempts = self.settings.max_retries + 1
        result.attempts = attempts
        result.error_message = f"{result.error_message}; tried {attempts} time{'s' if attempts > 1 else ''}"
        return result.pack()

    def _revoke(self, revoked: set[str]) -> None:
        for manager_id in self.manager_keys.using(revoked):
            log.warning("manager %s: its key was revoked; it gets no more tasks, and what it held runs elsewhere",
                        manager_id)
            self._remove_manager(manager_id, f"the key of the manager running it ({manager_id}) was revoked")

    def _remove_manager(self, manager_id: str, reason: str) -> None:
        self._links.pop(manager_id, None)
        self.manager_keys.forget(manager_id)
        self._fail_lost(self.scheduler.remove_manager(manager_id, reason))

    def _send_manager(self, manager_id: str, *frames: bytes) -> bool:
        sock = self._links.get(manager_id)
        return sock is not None and self._send_to(sock, manager_id.encode(), *frames)

    @staticmethod
    def _send_to(sock: zmq.Socket, identity: bytes, *frames: bytes) -> bool:
        try:
            sock.send_multipart([identity, *frames])
            return True
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            return False  # disconnected right now; heartbeat reconciliation recovers what was lost

    def _broadcast(self, frame: bytes) -> None:
        for manager_id in list(self.scheduler.managers):
            self._send_manager(manager_id, frame)

    # --- scheduling and timers -----------------------------------------------

    def _dispatch(self) -> None:
        for record, entries in self.scheduler.dispatch():
            header = TaskBatch(seq=record.batch_seq).pack()
            # (every entry dispatched has its bytes: see Scheduler._fill)
            self._send_manager(record.manager_id, header, *[e.data for e in entries if e.data is not None])
            self.status_dirty = True

    def _tick(self) -> None:
        now = time.monotonic()
        if self.readiness is not None:
            self.readiness.tick()
        if self.auth is not None:
            self._revoke(self.auth.reload_if_changed(now))
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.settings.heartbeat_period
            self._broadcast(Heartbeat(sender="interchange", incarnation=self.incarnation).pack())
            self._expire_managers(now)
        since = now - self._last_status
        if since >= self.settings.status_interval or (self.status_dirty and since >= 0.1):
            self._last_status = now
            self.status_dirty = False
            self._send_status()

    def _expire_managers(self, now: float) -> None:
        for record in list(self.scheduler.managers.values()):
            silent = now - record.last_seen
            if silent > self.settings.heartbeat_threshold:
                log.warning("manager %s on %s silent for %.0fs; declaring it lost with %d tasks",
                            record.manager_id, record.hostname, silent, len(record.tasks))
                reason = (f"the manager running it ({record.manager_id} on {record.hostname}) stopped "
                          f"responding for {silent:.0f}s")
                self._remove_manager(record.manager_id, reason)
                self.status_dirty = True

    def _fail_lost(self, lost: list[Lost], kind: ErrorKind = ErrorKind.MANAGER_LOST) -> None:
        if not lost:
            return
        frames = [ResultBatch(sender="interchange").pack()]
        for item in lost:
            attempts = item.entry.attempts
            message = f"{item.reason}; tried {attempts} time{'s' * (attempts > 1)}" if attempts else item.reason
            error_type = "ManagerLost" if kind == ErrorKind.MANAGER_LOST else "NoResources"
            frames.append(Result.failure(item.entry.task_id, kind, message, error_type=error_type,
                                         attempts=attempts, finished_at=time.time()).pack())
        self._send_endpoint(frames)

    def _send_status(self) -> None:
        managers = list(self.scheduler.managers.values())
        status = InterchangeStatus.of(
            incarnation=self.incarnation, pid=os.getpid(),
            capacity=sum(r.capacity for r in managers),
            free_slots=sum(r.free_slots for r in managers),
            queued=self.scheduler.queued(), running=self.scheduler.running(),
            refused_messages=self.manager_keys.refused, refused_handshakes=self.auth.refused if self.auth else 0,
            placements={str(k): n for k, n in self.scheduler.router.counts.items()} if self.scheduler.router else {},
            container_starts=self.scheduler.container_starts(), retried=self.scheduler.retried,
            managers=[r.summary() for r in managers],
        )
        try:  # not buffered: a status is only worth sending while current
            self.endpoint_sock.send_multipart([ENDPOINT_IDENTITY, status.pack()])
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
