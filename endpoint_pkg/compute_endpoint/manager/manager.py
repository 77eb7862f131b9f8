"""A manager: connects to the interchange, feeds its worker pool, reports results.

Reliability rules (the link to the interchange may break and heal, or the
interchange may restart):

* every result is kept until the interchange acknowledges it, and resent on
  re-registration or after a heartbeat period without acknowledgement;
* every heartbeat lists the tasks this manager holds and the newest task
  batch it saw, so the interchange can requeue tasks lost in transit;
* a new interchange incarnation, or a "register" request, makes the manager
  register again, declaring the tasks it already holds.
"""

import logging
import os
import signal
import socket
import time
import uuid
from collections import deque
from pathlib import Path

import zmq

from .. import __version__
from ..curve import MANAGER, KeyStore, fingerprint
from ..errors import EndpointError
from ..limits import effective_walltime
from ..protocol import (
    Control,
    ControlAction,
    ErrorKind,
    Heartbeat,
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
from ..protocol.broker_names import reply_key_owner
from ..readiness import Readiness
from ..zmq_sockets import make_socket
from .link_watch import LinkWatch
from .mpi_nodes import MpiRequestError, NodePool, block_nodes
from .settings import ManagerSettings
from .worker_output import WorkerOutput
from .worker_pool import PoolOptions, WorkerHandle, WorkerPool

log = logging.getLogger(__name__)

TICK = 0.05  # seconds between timer checks (walltimes, heartbeats, watchdog)
ANY = "any"  # worker_type for soft routing: workers start per task type


class Manager:
    def __init__(self, settings: ManagerSettings, worker_env: dict[str, str] | None = None,
                 capture_output: bool = False, readiness: Readiness | None = None):
        self.settings = settings
        self.readiness = readiness
        self.id = settings.manager_id
        self.ctx = zmq.Context()
        self.sock = make_socket(self.ctx, zmq.DEALER, self.id.encode())
        # Sends never block: with no connection at all (after a refused handshake) they fail at once, and
        # what they carried comes again (heartbeats, registration) or waits for its acknowledgement (results).
        self.sock.setsockopt(zmq.SNDTIMEO, 0)
        self.link_watch: LinkWatch | None = None
        if settings.interchange.startswith("tcp://"):
            public_key = secure_client(self.sock, settings.keys_dir)
            self.link_watch = LinkWatch(self.sock, settings.interchange, public_key)
        # Workers' prints go through the manager's log when it writes to a file (else to the journal, as its own).
        self.output = WorkerOutput() if capture_output else None
        self.pool = WorkerPool(settings.workers, self.id, PoolOptions(
            settings.max_result_bytes, worker_env, self.output.write_fd if self.output else None,
            settings.plain_arguments, settings.limits(), settings.worker_user, settings.working_dir,
            tuple(a for a in settings.accelerators.split(",") if a), settings.containers(),
            None if settings.worker_type == ANY else settings.worker_type, settings.container_python,
            (settings.working_dir,) if settings.working_dir else ()))
        self.mpi = NodePool(settings.mpi_launcher, block_nodes()) if settings.mpi_launcher else None
        # (task id, packed task, walltime, submitter, container type): waiting for a worker
        self.pending: deque[tuple[str, bytes, float | None, str, str]] = deque()
        self.known: set[str] = set()
        self.unacked: dict[str, tuple[bytes, float]] = {}
        self.last_batch = 0
        self.incarnation = uuid.uuid4().hex[:12]  # this process, as the interchange tells it apart
        self.interchange_incarnation: str | None = None
        self.last_contact = time.monotonic()
        self.contact_lost_logged = False
        self.running = True
        self.draining = False
        self.drain_requested = False
        self._next_heartbeat = 0.0
        self._next_tick = 0.0
        self._drain_at = time.monotonic() + settings.drain_after if settings.drain_after else None

    # --- main loop -----------------------------------------------------------

    def run(self) -> None:
        self.sock.connect(self.settings.interchange)
        self.pool.start()
        self.register()
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        if self.link_watch is not None:
            poller.register(self.link_watch.monitor, zmq.POLLIN)
        if self.output is not None:
            poller.register(self.output.read_fd, zmq.POLLIN)
        watched: set[int] = set()
        generation = -1
        log.info("manager %s connected to %s with %d workers (limits per worker: %s%s)", self.id,
                 self.settings.interchange, self.settings.workers, self.settings.limits().describe(),
                 f"; running as {self.settings.worker_user}" if self.settings.worker_user else "")
        if self.readiness is not None:
            self.readiness.ready(f"{self.settings.workers} workers for {self.settings.interchange}")
        while self.running:
            if generation != self.pool.generation:  # a worker was replaced
                watched, generation = self._sync_poller(poller, watched), self.pool.generation
            events = dict(poller.poll(200))
            if self.sock in events:
                self._drain_interchange()
            if self.link_watch is not None and self.link_watch.monitor in events:
                self.link_watch.on_events()
            if self.output is not None and self.output.read_fd in events:
                self.output.on_readable()
            results = []
            for fd in [fd for fd in events if isinstance(fd, int) and fd in self.pool.workers]:
                results.extend(self.pool.on_readable(fd))
            if results:
                self._send_results(results)
            self._dispatch()
            self._tick()
            if self.drain_requested and not self.draining:
                self._start_draining()
            if self.draining and not self.known:
                log.info("drained; exiting")
                self._send(Control(action=ControlAction.BYE).pack())
                self.running = False
        self.shutdown()

    def _start_draining(self) -> None:
        """Take no more tasks, finish the ones held, then leave (stop or SIGTERM)."""
        log.info("draining: finishing %d tasks, accepting no more", len(self.known))
        self.draining = True
        self._send(Control(action=ControlAction.DRAINING).pack())

    def shutdown(self) -> None:
        self.pool.stop()
        if self.output is not None:
            self.output.on_readable()  # the last words of the workers
            self.output.close()
        if self.link_watch is not None:
            self.link_watch.close()
        self.sock.close(linger=500)  # let a last "bye" or result reach the interchange
        self.ctx.term()

    def _sync_poller(self, poller: zmq.Poller, watched: set[int]) -> set[int]:
        current = set(self.pool.workers)
        for fd in watched - current:
            try:
                poller.unregister(fd)
            except KeyError:
                pass
        for fd in current - watched:
            poller.register(fd, zmq.POLLIN)
        return current

    # --- interchange side ----------------------------------------------------

    def register(self) -> None:
        msg = ManagerRegistration(
            manager_id=self.id, hostname=socket.gethostname(), pid=os.getpid(), incarnation=self.incarnation,
            workers=self.settings.workers, prefetch=self.settings.prefetch,
            known_tasks=sorted(self.known), last_batch=self.last_batch, version=__version__,
            plain_arguments=self.settings.plain_arguments, block_id=self.settings.block_id,
            container_types=self.serves(), **self.pool.census(),
        )
        self._send(msg.pack())
        self._resend_unacked(force=True)

    def serves(self) -> list[str]:
        """The container types this manager runs: its one type (hard routing), or RAW and every container it has."""
        if self.settings.worker_type != ANY:
            return [self.settings.worker_type]
        return ["RAW", *self.pool.options.containers]

    def _drain_interchange(self) -> None:
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.last_contact = time.monotonic()
            if self.contact_lost_logged:
                log.info("interchange reachable again")
                self.contact_lost_logged = False
            try:
                self._handle(unpack_any(frames[0]), frames[1:])
            except ProtocolError as exc:
                log.error("dropped a malformed message from the interchange: %s", exc)
            except Exception:  # a bug in handling one message must not end the manager and the tasks it holds
                log.exception("internal error handling a message from the interchange; carrying on")

    def _handle(self, msg: Message, extra_frames: list[bytes]) -> None:
        if isinstance(msg, TaskBatch):
            self.last_batch = max(self.last_batch, msg.seq)
            for frame in extra_frames:
                self._accept_task(frame)
        elif isinstance(msg, ResultAck):
            for task_id in msg.task_ids:
                if self.unacked.pop(task_id, None) is not None:
                    self.known.discard(task_id)
        elif isinstance(msg, Heartbeat):
            if msg.incarnation != self.interchange_incarnation:
                if self.interchange_incarnation is not None:
                    log.warning("interchange restarted (incarnation %s); registering again", msg.incarnation)
                    self.register()
                self.interchange_incarnation = msg.incarnation
        elif isinstance(msg, Control):
            self._control(msg)

    def _control(self, msg: Control) -> None:
        if msg.action == ControlAction.REGISTER:
            self.register()
        elif msg.action == ControlAction.SHUTDOWN:
            log.info("shutdown requested by the interchange")
            self.running = False
        elif msg.action == ControlAction.DRAIN:
            log.info("asked to leave by the endpoint (%s)", msg.detail or "scaling in")
            self.drain_requested = True

    def _accept_task(self, frame: bytes) -> None:
        try:
            task = Task.peek(frame)  # the header is enough: the frame goes to a worker as it is
        except ProtocolError as exc:
            log.error("dropped a malformed task from the interchange: %s", exc)
            return
        if task.task_id in self.known:
            return  # a resend of a task we already hold
        self.known.add(task.task_id)
        walltime = effective_walltime(task.walltime, self.settings.walltime)  # the operator's is a ceiling
        # The endpoint took it only with a reply_to of its sender's own: that names the submitter.
        self.pending.append((task.task_id, frame, walltime, reply_key_owner(task.reply_to) or "", task.container_type))

    def _send_results(self, results: list[tuple[str, bytes]]) -> None:
        now = time.monotonic()
        if self.mpi is not None:
            for task_id, _ in results:
                self.mpi.release(task_id)
        frames = [ResultBatch(sender=self.id).pack()]
        for task_id, packed in results:
            self.unacked[task_id] = (packed, now)
            frames.append(packed)
        self._send(*frames)

    def _resend_unacked(self, force: bool = False) -> None:
        cutoff = time.monotonic() - self.settings.heartbeat_period
        stale = [(tid, data) for tid, (data, sent) in self.unacked.items() if force or sent < cutoff]
        if not stale:
            return
        now = time.monotonic()
        for tid, data in stale:
            self.unacked[tid] = (data, now)
        self._send(ResultBatch(sender=self.id).pack(), *[data for _, data in stale])

    def _send(self, *frames: bytes) -> None:
        try:
            self.sock.send_multipart(list(frames))
        except zmq.Again:
            log.debug("not connected to the interchange; dropped a %d-frame message that comes again", len(frames))

    # --- workers and timers --------------------------------------------------

    def _dispatch(self) -> None:
        if not self.pending or not (self.pool.unused or self.pool.idle()):
            return
        if self.mpi is not None:
            return self._dispatch_mpi()
        waiting: deque[tuple[str, bytes, float | None, str, str]] = deque()
        while self.pending:
            task_id, data, walltime, submitter, ctype = item = self.pending.popleft()
            if not self.pool.can_start(ctype):
                self._send_results([(task_id, Result.failure(
                    task_id, ErrorKind.INVALID_TASK, f"manager {self.id} runs no workers of type {ctype[:200]!r}",
                    error_type="InvalidTask", manager=self.id).pack())])
                continue
            worker = self._worker_for(submitter, ctype)
            if worker is None:
                waiting.append(item)  # a task of another type may still find a worker
                continue
            self._run(worker, task_id, data, walltime, submitter)
        self.pending = waiting

    def _dispatch_mpi(self) -> None:
        idle = self.pool.idle()
        while self.pending and idle:
            task_id, data, walltime, submitter, _ = self.pending[0]
            try:
                placed = self.mpi.place(task_id, data) if self.mpi else data
            except MpiRequestError as exc:
                self.pending.popleft()
                self._send_results([(task_id, Result.failure(task_id, ErrorKind.INVALID_TASK, str(exc),
                                                             error_type="InvalidTask", manager=self.id).pack())])
                continue
            if placed is None:
                return  # waits for nodes; the tasks behind it wait their turn
            self.pending.popleft()
            worker = idle.pop(0)
            self._run(worker, task_id, placed, walltime, submitter)

    def _run(self, worker: WorkerHandle, task_id: str, data: bytes, walltime: float | None, submitter: str) -> None:
        if self.settings.isolate_submitters and worker.submitter not in (None, submitter):
            worker = self.pool.recycle(worker)  # it ran someone else's code: a fresh process instead
        worker.submitter = submitter
        self.pool.assign(worker, task_id, data, walltime)

    def _worker_for(self, submitter: str, ctype: str) -> WorkerHandle | None:
        """An idle worker of the task's type (with isolate_submitters: one that ran this submitter's tasks, else a
        fresh one, else any); else a new one in an unused slot; else one that replaces an idle worker of another
        type (soft routing); else None: every worker is busy."""
        idle = self.pool.idle(ctype)
        if idle:
            self.pool.warm_hits += ctype != "RAW"
            if self.settings.isolate_submitters:
                for wanted in (submitter, None):
                    for worker in idle:
                        if worker.submitter == wanted:
                            return worker
            return idle[0]
        if self.pool.unused:
            return self.pool.spawn(ctype)
        others = self.pool.idle()
        return self.pool.recycle(others[0], ctype) if others else None

    def _tick(self) -> None:
        now = time.monotonic()
        if now < self._next_tick:
            return
        self._next_tick = now + TICK
        if self.readiness is not None:
            self.readiness.tick()
        if self.link_watch is not None and self.link_watch.reconnect_due(now):
            self.register()
        self.pool.check_limits()
        stopped = self.pool.stop_idle_containers(self.settings.container_idle_timeout, now)
        if stopped:
            log.info("stopped %d container worker(s) idle for over %gs: %s", len(stopped),
                     self.settings.container_idle_timeout, ", ".join(stopped))
        if self._drain_at is not None and now >= self._drain_at and not self.drain_requested:
            log.info("drain_period of %gs reached; leaving so that a fresh block takes over", self.settings.drain_after)
            self.drain_requested = True
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.settings.heartbeat_period
            self._send(Heartbeat(sender=self.id, known_tasks=sorted(self.known), last_batch=self.last_batch,
                                 idle_workers=len(self.pool.idle()), **self.pool.census()).pack())
            self._resend_unacked()
        silent = now - self.last_contact
        if silent > self.settings.heartbeat_threshold and not self.contact_lost_logged:
            log.warning("no word from the interchange for %.0fs; holding %d tasks and retrying",
                        silent, len(self.known))
            self.contact_lost_logged = True


def install_signal_handlers(manager: Manager) -> None:
    """First SIGTERM/SIGINT: drain (finish held tasks, then exit). A second one: exit now."""

    def stop(signum, frame):
        if manager.drain_requested:
            manager.running = False
        manager.drain_requested = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def secure_client(sock: zmq.Socket, keys_dir: Path | None) -> str:
    """Over TCP the interchange admits only CurveZMQ keys it has authorized, and proves it holds its own."""
    if keys_dir is None:
        raise EndpointError("a manager reaches an interchange over TCP only with CurveZMQ keys: give --keys-dir "
                            "(the endpoint's keys directory, or this host's copy made by `compute-endpoint keys`)")
    store = KeyStore(keys_dir)
    pair, server = store.pair(MANAGER), store.endpoint_public_key()
    if pair is None:
        raise EndpointError(f"no manager key pair in {keys_dir}: run `compute-endpoint keys manager NAME` on this "
                            "host, then authorize the key it prints on the endpoint's host")
    if server is None:
        raise EndpointError(f"no endpoint public key in {keys_dir}: on the endpoint's host run `compute-endpoint "
                            "keys endpoint NAME`, then here `compute-endpoint keys endpoint NAME --set KEY`")
    sock.curve_secretkey = pair.secret.encode()
    sock.curve_publickey = pair.public.encode()
    sock.curve_serverkey = server.encode()
    log.info("using CurveZMQ: this manager's key is %s (fingerprint %s)", pair.public, fingerprint(pair.public))
    return pair.public
