"""The endpoint daemon: tasks in from the broker, through the interchange, results back out.

Single-threaded on pika's ioloop, which also watches the ZeroMQ link to the
interchange. The rule that keeps tasks safe: a task's broker delivery is
acked only after the broker has confirmed the task's result.
"""

import logging
import time
from collections.abc import Callable

import pika
from pika.adapters.select_connection import IOLoop

from ..broker import node_parameters, where
from ..config import Config
from ..credentials import Identity
from ..errors import ExitCode, exit_code_of
from ..limits import deadline_after, effective_walltime
from ..paths import EndpointDir
from ..protocol import (
    ControlAction,
    EndpointState,
    ErrorKind,
    InterchangeStatus,
    Message,
    ProtocolError,
    Result,
    ResultBatch,
    Task,
    unbundle,
)
from ..protocol.broker_names import TASK_EXCHANGE, EndpointNames
from ..readiness import Readiness, watchdog_interval
from .admission import Admission, with_container_type
from .amqp import AmqpAgent, Delivery
from .commands import CommandHandler
from .components import Components
from .dead_letters import DeadLetters
from .inflight import DeliveryGroup, InflightLedger, InflightTask, Receipt
from .interchange_link import InterchangeLink
from .loop_tasks import every, install_signals
from .metrics import EndpointMetrics
from .publisher import ResultOutbox
from .queues import QueueSettings
from .reload import reload_file
from .status import DaemonSnapshot, DaemonState, StatusBuilder

log = logging.getLogger(__name__)

SUPERVISE_PERIOD = 1.0
MAX_BUNDLE_ITEMS = 1024  # the SDK sends at most 32; more is not a client of ours


class EndpointDaemon:
    def __init__(self, ep: EndpointDir, config: Config, identity: Identity, endpoint_id: str, owner: str,
                 readiness: Readiness, components: Components, on_registered: Callable[[], None],
                 metrics: EndpointMetrics | None = None):
        self.ep = ep
        self.config = config
        self.identity = identity
        self.readiness = readiness
        self.on_registered = on_registered
        self.names = EndpointNames(owner, endpoint_id)
        self.ioloop = IOLoop()
        broker = config.broker
        nodes = node_parameters(broker.urls, identity.client_id, identity.secret, tls_ca=broker.tls_ca,
                                heartbeat=broker.heartbeat, connect_timeout=broker.connect_timeout,
                                name=f"compute-endpoint {ep.name}")
        self.broker_where = ", ".join(where(params) for params in nodes)
        self.agent = AmqpAgent(self.ioloop, nodes, self.names, self, identity.client_id,
                               QueueSettings(broker.queue_type, broker.delivery_limit))
        self.components = components
        self.link = InterchangeLink(self.ioloop, components.interchange_address, self._on_interchange)
        self.ledger = InflightLedger()
        self.admission = Admission(owner, config)
        self.dead_letters = DeadLetters(self.agent, self.names)
        self.commands = CommandHandler(self.agent, self.names, self.admission, self.dead_letters,
                                       lambda: self.status.as_dict(self.snapshot()), lambda: len(self.ledger),
                                       self.request_stop)
        self.internal_errors = 0  # exceptions caught at the edge of a callback (each logged with its traceback)
        self.outbox = ResultOutbox(self.agent, self.ioloop, self._backlog, self._on_results_confirmed,
                                   self._undeliverable)
        self.status = StatusBuilder()
        self.ix_status: InterchangeStatus | None = None
        self.ix_managers: list[dict] = []
        self.state = DaemonState.STARTING
        self.exit_code = 0
        self.registered = False
        self.ever_ready = False
        self.idle_heartbeats = 0
        self._stop_deadline: float | None = None
        self.metrics = metrics or EndpointMetrics()  # gauges read status on this loop; scrapes come on other threads
        self.metrics.read_status_with(lambda: self.status.as_dict(self.snapshot()), self.ioloop.add_callback_threadsafe)
        self.dead_letters.on_set_aside = self.metrics.set_aside

    # --- running -------------------------------------------------------------

    def run(self) -> int:
        install_signals(self.ioloop, self.request_stop, self.reload)
        self.readiness.progress("starting the interchange and managers")
        self.components.start()
        self.link.send_control(ControlAction.HELLO)
        self.readiness.progress(f"connecting to the broker at {self.broker_where} as {self.identity.client_id!r}")
        self.agent.start()
        self._every(SUPERVISE_PERIOD, self._supervise)
        self._every(lambda: self.config.heartbeat_period, self._heartbeat)
        watchdog = watchdog_interval()
        if watchdog:
            self._every(watchdog, self.readiness.watchdog)
        try:
            self.ioloop.start()
        finally:
            self.components.stop()
            self.link.close()
        return self.exit_code

    def _every(self, period: float | Callable[[], float], action: Callable[[], None]) -> None:
        every(self.ioloop, period, action, on_error=self._count_internal_error)

    def _count_internal_error(self) -> None:
        self.internal_errors += 1

    def reload(self) -> None:
        """Re-read the config (SIGHUP, `systemctl reload`): apply what is safe, name what needs a restart."""
        self.readiness.reloading()
        reload_file(self.config, self.ep.config_file())
        self.readiness.ready("reloaded")

    # --- broker side (AgentCallbacks) -----------------------------------------

    def on_ready(self) -> None:
        if self.state in (DaemonState.STARTING, DaemonState.RECONNECTING):
            self.state = DaemonState.ONLINE
        self.publish_status()
        self.outbox.resume()
        if not self.registered:
            self.registered = True
            self.on_registered()
            log.info("endpoint %s (%s) registered and consuming %s", self.ep.name, self.names.endpoint_id,
                     self.names.tasks_queue)
            self._maybe_ready()
        else:
            log.info("reconnected to the broker")
            self.metrics.reconnected()

    def _maybe_ready(self) -> None:
        """Ready once registered with the broker and the interchange has reported in."""
        if self.ever_ready or not self.registered or self.ix_status is None:
            return
        self.ever_ready = True
        self.readiness.ready(f"endpoint {self.ep.name} is running with id {self.names.endpoint_id}")

    def on_lost(self, reason: str) -> None:
        log.warning("%s", reason)
        if self.state == DaemonState.ONLINE:
            self.state = DaemonState.RECONNECTING
        if not self.ever_ready:
            self.readiness.progress(f"{reason}; retrying")

    def on_fatal(self, message: str) -> None:
        log.error("%s", message)
        self.exit_code = exit_code_of(message, ExitCode.FAILED)  # refusals carry their code (errors.Verdict)
        self.readiness.failed(message, self.exit_code)
        self.state = DaemonState.STOPPING
        self.agent.stop()

    def on_stopped(self) -> None:
        self.ioloop.stop()

    def on_returned(self, message_id: str, reason: str) -> None:
        log.warning("message %s could not be routed (%s): its destination queue no longer exists",
                    message_id, reason)

    def on_task(self, delivery: Delivery) -> None:
        body = delivery.body
        sender = self.admission.sender_of(delivery.properties)
        refused = self.admission.task_sender_refusal(sender)
        if refused:
            self.dead_letters.set_aside(body, "sender-not-permitted", refused, DeliveryGroup(delivery, 1), sender)
            return
        try:
            items = unbundle(body)
        except ProtocolError as exc:
            self.dead_letters.set_aside(body, exc.reason, str(exc), DeliveryGroup(delivery, 1), sender)
            return
        if len(items) > MAX_BUNDLE_ITEMS:
            self.dead_letters.set_aside(body, "bundle-too-large", f"a bundle of {len(items)} tasks; this endpoint "
                                        f"takes at most {MAX_BUNDLE_ITEMS} in one message", DeliveryGroup(delivery, 1),
                                        sender)
            return
        group = DeliveryGroup(delivery, len(items))
        for item in items:
            self._take_task(item, group, sender or "")  # (a permitted sender always has a name)
        self.link.flush()  # the delivery's tasks leave together, without waiting for the next loop
        self.components.note_load(len(self.ledger), self.ledger.by_type)
        if group.pending == 0:  # every task in it was finished already
            self.agent.ack(delivery)
        self.idle_heartbeats = 0

    def _take_task(self, body: bytes, group: DeliveryGroup, sender: str) -> None:
        try:
            task = Task.peek(body)
            refused = self.admission.task_refusal_reason(task, sender)
        except ProtocolError as exc:
            self.dead_letters.set_aside(body, exc.reason, str(exc), group, sender)
            return
        except Exception as exc:  # a case the checks above missed: set aside, named, never a stop
            self.internal_errors += 1
            log.exception("internal error reading a task")
            self.dead_letters.set_aside(body, "internal-error", f"the endpoint could not read this task: "
                                                      f"{type(exc).__name__}: {exc}", group, sender)
            return
        if refused:
            self.dead_letters.set_aside(body, *refused, group, sender)
            return
        if self.ledger.receive(task.task_id, body, task.reply_to, group) != Receipt.NEW:
            return
        self.metrics.task_received()
        entry = self.ledger[task.task_id]
        asked_for = task.container_type
        refusal = self.admission.task_refusal(task, len(body))
        if refusal:
            self._complete_locally(entry, refusal)
            return
        if task.container_type != asked_for:  # an alias: the interchange routes by RUNTIME:IMAGE
            body = entry.body = with_container_type(body, task.container_type)
        self.ledger.set_type(entry, task.container_type)
        entry.walltime = effective_walltime(task.walltime, self.config.engine.task_walltime)
        self._start_deadline(entry)
        self.link.send_task(body)

    def _start_deadline(self, entry: InflightTask) -> None:
        engine = self.config.engine
        if entry.walltime is not None:
            self.ledger.set_deadline(entry, deadline_after(entry.walltime, engine.max_workers_per_node,
                                                           engine.prefetch_capacity or 0,
                                                           engine.max_retries_on_system_failure,
                                                           engine.heartbeat_threshold))

    def _complete_locally(self, entry: InflightTask, result: Result) -> None:
        result.finished_at = time.time()
        entry.result = result.pack()
        self.outbox.send_now([entry])

    def on_command(self, delivery: Delivery) -> None:
        self.commands.on_command(delivery)

    # --- results -------------------------------------------------------------

    def _backlog(self) -> bool:
        """More tasks held than the workers can take at once: results may wait a moment for others."""
        return len(self.ledger) > (self.ix_status.capacity if self.ix_status else 0)

    def _on_results_confirmed(self, entries: list[InflightTask]) -> None:
        self.metrics.results_published(entries)
        for entry in entries:
            for group in self.ledger.finish(entry.task_id):
                self.agent.ack(group.delivery)
        if self.state == DaemonState.STOPPING:
            self._maybe_finish_stop()

    def _undeliverable(self, entry: InflightTask, refusal: str) -> None:
        """Even the failure standing in for a result was refused: keep it in the dead-letter queue, and move on."""
        self.dead_letters.set_aside(entry.result or b"", "undeliverable-result",
                                    f"the result of task {entry.task_id} for {entry.reply_to} was refused by the "
                                    f"broker: {refusal}", None, self.names.owner,
                                    then=lambda: self._on_results_confirmed([entry]))

    # --- interchange side ----------------------------------------------------

    def _on_interchange(self, msg: Message, frames: list[bytes]) -> None:
        if isinstance(msg, ResultBatch):
            arrived = []
            for data in frames:
                try:
                    task_id = Result.peek(data).task_id
                except ProtocolError as exc:  # (the interchange forwards results it could read)
                    log.error("dropped a malformed result from the interchange: %s", exc)
                    continue
                entry = self.ledger.get(task_id)
                if entry is None or entry.result is not None:
                    continue  # a duplicate of a result we already have
                entry.result = data
                arrived.append(entry)
            self.outbox.add(arrived)
        elif isinstance(msg, InterchangeStatus):
            previous, self.ix_status = self.ix_status, msg
            self.ix_managers = msg.managers  # decoded once here, not on every status request
            self.components.observe(msg)
            self.metrics.observe_interchange(msg)
            if previous is not None and previous.incarnation != msg.incarnation:
                self._resend_to_new_interchange()
            self.agent.set_prefetch(2 * msg.capacity)  # (capped at what AMQP can carry)
            self._maybe_ready()

    def _resend_to_new_interchange(self) -> None:
        waiting = self.ledger.awaiting_result()
        log.warning("the interchange restarted; resending the %d tasks it held", len(waiting))
        self.metrics.resent(len(waiting))
        for entry in waiting:
            self.link.send_task(entry.body)
            self._start_deadline(entry)  # its time starts again

    # --- periodic work -------------------------------------------------------

    def _supervise(self) -> None:
        if self.state == DaemonState.STOPPING:
            self._maybe_finish_stop()
            return
        self._fail_overdue()
        self.agent.check_confirms()
        failure = self.components.interchange_failure()
        if failure and not self.ever_ready:
            self.on_fatal(f"the interchange could not start: {failure} (see {self.ep.log_dir})")
            return
        if self.components.supervise(len(self.ledger), self.ledger.by_type):
            self.ix_status = None  # the next status carries the new incarnation
            self._resend_to_new_interchange()
        for request in self.components.take_requests():  # for the blocks: managers to drain, tasks to fail
            self.link.send(request)
        # A ROUTER learns a DEALER's identity only from a message: a restarted
        # interchange cannot send us anything until we say something.
        self.link.send_control(ControlAction.HELLO)

    def _fail_overdue(self) -> None:
        now = time.monotonic()
        for entry in self.ledger.overdue(now):
            age = now - entry.received_at
            log.error("task %s: no result %.0fs after it arrived (walltime %gs); failing it as lost", entry.task_id,
                      age, entry.walltime or 0)
            self._complete_locally(entry, Result.failure(
                entry.task_id, ErrorKind.DEADLINE_EXCEEDED, error_type="TaskDeadlineExceeded",
                message=f"the endpoint had no result for this task {age:.0f}s after it arrived, long past its "
                        f"walltime of {entry.walltime:g}s: it was lost inside the endpoint, or waited that long for a "
                        "worker; it is not retried (the endpoint's logs say more)"))

    def _heartbeat(self) -> None:
        if self.state == DaemonState.STOPPING:
            return
        self.publish_status()
        if self.config.idle_heartbeats_soft:
            self.idle_heartbeats = self.idle_heartbeats + 1 if not self.ledger else 0
            if self.idle_heartbeats >= self.config.idle_heartbeats_soft:
                self.request_stop(f"idle for {self.idle_heartbeats} heartbeats")

    def snapshot(self) -> DaemonSnapshot:
        return DaemonSnapshot(
            name=self.ep.name, names=self.names, config=self.config, state=self.state, interchange=self.ix_status,
            managers=self.ix_managers, tasks_outstanding=len(self.ledger), tasks_completed=self.ledger.completed,
            broker_connected=self.agent.ready, broker_messages=self.agent.counts,
            broker_link={**self.agent.describe(), "results_unpublished": len(self.outbox),
                         "result_publishes_unconfirmed": self.outbox.in_flight}, pids=self.components.pids(),
            interchange_restarts=self.components.interchange_restarts,
            managers_replaced=self.components.managers_replaced, prefetch=self.agent.prefetch,
            internal_errors=self.internal_errors, blocks=self.components.describe_blocks(),
        )

    def publish_status(self, state: EndpointState | None = None) -> None:
        report = self.status.report(self.snapshot(), state)
        props = pika.BasicProperties(delivery_mode=2, timestamp=int(time.time()))
        self.agent.publish(TASK_EXCHANGE, self.names.status_key, report.pack(), props)

    # --- stopping ------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        if self.state == DaemonState.STOPPING:
            return
        log.info("stopping (%s); %d tasks in flight", reason, len(self.ledger))
        self.readiness.stopping(f"stopping: {reason}")
        self.state = DaemonState.STOPPING
        self._stop_deadline = time.monotonic() + self.config.stop_timeout
        self.agent.pause_tasks()
        self._maybe_finish_stop()

    def _maybe_finish_stop(self) -> None:
        if self._stop_deadline is None:
            return
        pending = len(self.ledger)
        if pending and time.monotonic() < self._stop_deadline and self.agent.ready:
            return
        if pending:
            log.warning("%d tasks still in flight at stop; the broker returns them to the queue", pending)
        self._stop_deadline = None
        self.publish_status(EndpointState.OFFLINE)
        if self.components.owns_interchange:
            self.link.send_control(ControlAction.SHUTDOWN)
        # Give the offline report a moment to be confirmed before closing.
        self.ioloop.call_later(0.2, self.agent.stop)

