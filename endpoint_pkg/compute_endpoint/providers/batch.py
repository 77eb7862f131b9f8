"""Blocks from a Parsl provider: batch jobs (or pods, or cloud instances), each running managers.

A block is one job the provider submits. Its command, wrapped by the
provider's launcher, starts one manager per node with ``--block-id``; the
managers reach the interchange over the CurveZMQ link with the keys in the
endpoint's directory, which the compute nodes share. Only the provider's
public interface is used: ``submit``, ``status``, ``cancel`` (and
``manager_command``, from a provider of ours that starts managers its own way).

Scheduler commands can be slow or hang, so they run in a thread of their own.
The daemon's loop hands it the load and the managers the interchange reports,
and takes back what the interchange must be told: managers to drain before
their block is cancelled, and waiting tasks to fail when no block can start.
"""

import logging
import os
import shlex
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from ..config import Config
from ..credentials.identity import ENV_ID, ENV_SECRET
from ..manager.settings import ManagerSettings
from ..paths import EndpointDir, ensure_private_dir, read_json, write_json
from ..protocol import Control, ControlAction
from .block import ACTIVE, Block, explain_end
from .containers import check_binds, wrap_batch
from .strategy import Load, Strategy

log = logging.getLogger(__name__)

MAX_BACKOFF = 300.0  # seconds between attempts once every block has failed
HISTORY = 20  # ended blocks kept for status


class BatchBlocks:
    replaced = 0  # the scheduler replaces nothing by itself; the strategy starts new blocks

    def __init__(self, ep: EndpointDir, config: Config, interchange: str, *, provider: Any = None,
                 worker_type: str | None = None, pool: str = ""):
        """``provider``, ``worker_type`` and ``pool``: hard routing's pool of one container type (typed.py)."""
        engine = config.engine
        self.ep = ep
        self.config = config
        self.provider = provider or engine.provider
        self.worker_type = worker_type
        self.pool = pool  # prefixes its block ids, unique among the endpoint's pools
        self.provider.script_dir = str(ensure_private_dir(ep.blocks_dir))
        self.interchange = interchange
        self.period = engine.job_status_kwargs.strategy_period
        self.max_held_time = engine.job_status_kwargs.max_held_time
        # Schedulers ask to be polled gently (Parsl's providers say how often: 60 s for the batch ones).
        self.status_period = engine.job_status_kwargs.status_period or float(
            getattr(self.provider, "status_polling_interval", 60))
        self._last_refresh = -float("inf")
        self._refresh_soon = False  # a block's managers all left: its job has likely ended
        self.strategy = Strategy.for_engine(engine)
        self.slots_per_block = engine.max_workers_per_node * self.provider.nodes_per_block
        self.failure_threshold = max(1, self.provider.init_blocks)
        self.drain_grace = 2 * engine.heartbeat_threshold + 30.0
        self.blocks: dict[str, Block] = {}
        self.history: deque[Block] = deque(maxlen=HISTORY)
        self.lock = threading.Lock()  # guards what the daemon's loop reads and writes: blocks, requests, outstanding
        self.requests: list[Control] = []
        self.outstanding = 0
        self.failures_in_a_row = 0
        self.degraded: str | None = None
        self.retry_at = 0.0
        self._next_id = 0
        self._stop = threading.Event()
        self._wake = threading.Event()  # a tick now: tasks outgrew the slots (else every strategy_period)
        self._thread = threading.Thread(target=self._run, name="blocks", daemon=True)
        check_binds(engine, ep)
        # Jobs inherit the daemon's environment (sbatch --export=ALL): never the broker secret.
        for name in (ENV_ID, ENV_SECRET):
            os.environ.pop(name, None)

    @property
    def jobs_file(self):
        return self.ep.blocks_dir / f"jobs{'-' + self.pool.rstrip('-') if self.pool else ''}.json"

    # --- the daemon's side -----------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def poll(self) -> None:
        """Nothing to reap: block states come from the scheduler, in the blocks thread."""

    def scale(self, outstanding: int, by_type: Mapping[str, int] | None = None) -> None:
        with self.lock:
            grew = outstanding > self.outstanding
            self.outstanding = outstanding
            slots = sum(b.counts for b in self.blocks.values()) * self.slots_per_block
        if grew and outstanding > slots:
            self._wake.set()

    def observe(self, managers: list[dict]) -> None:
        """Which managers of which block the interchange knows, and whether they are busy."""
        now = time.monotonic()
        by_block: dict[str, list[dict]] = {}
        for manager in managers:
            by_block.setdefault(str(manager.get("block_id") or ""), []).append(manager)
        with self.lock:
            for block in self.blocks.values():
                present = by_block.get(block.block_id, [])
                if block.managers and not present:
                    self._refresh_soon = True
                block.observe(present, now)
                if present and self.degraded:
                    log.info("block %s has a manager connected; no longer degraded", block.block_id)
                if present:
                    self.failures_in_a_row, self.degraded, self.retry_at = 0, None, 0.0

    def take_requests(self) -> list[Control]:
        with self.lock:
            taken, self.requests = self.requests, []
        return taken

    def pids(self) -> list[int]:
        return []  # managers run on compute nodes: status shows blocks and job ids instead

    def describe(self) -> dict:
        now = time.monotonic()
        with self.lock:
            blocks = [b.summary(now) for b in [*self.history, *self.blocks.values()]]
            return {"provider": type(self.provider).__name__, "strategy": self.strategy.kind,
                    "blocks": blocks, "active": sum(b.state in ACTIVE for b in self.blocks.values()),
                    "failed_in_a_row": self.failures_in_a_row, "degraded": self.degraded}

    def stop(self, timeout: float) -> None:
        """Stop scaling and cancel every job (the interchange has told their managers to stop)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        jobs = [b.job_id for b in self.blocks.values() if b.job_id]
        if jobs:
            self._cancel(jobs, "the endpoint is stopping")
        self.blocks.clear()
        self.jobs_file.unlink(missing_ok=True)

    # --- the blocks thread ------------------------------------------------------

    def begin(self) -> None:
        """Cancel what a crashed run left, and submit ``init_blocks``."""
        self._cancel_leftovers()
        self._submit(self.provider.init_blocks, "init_blocks")

    def _run(self) -> None:
        self.begin()
        while not self._stop.is_set():
            self._wake.wait(self.period)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.tick(time.monotonic())
            except Exception:  # a scheduler answering nonsense must not end scaling for good
                log.exception("internal error while managing blocks; trying again in %gs", self.period)

    def tick(self, now: float) -> None:
        """One step: refresh job states, apply the strategy, cancel what must go (every strategy_period)."""
        if self._refresh_soon or now - self._last_refresh >= self.status_period:
            self._refresh_soon, self._last_refresh = False, now
            self._refresh(now)
        with self.lock:
            load = Load(self.outstanding, sum(b.counts for b in self.blocks.values()), self.slots_per_block,
                        sorted(((b.block_id, b.idle_seconds(now)) for b in self.blocks.values() if b.removable),
                               key=lambda item: -item[1]))
        decision = self.strategy.decide(load, now)
        if decision.add or decision.remove:
            log.info("strategy %s (%s): %d tasks, %d blocks; adding %d, removing %s", self.strategy.kind,
                     decision.rule, load.outstanding, load.active_blocks, decision.add, decision.remove or "none")
        if decision.add and now >= self.retry_at:
            self._submit(decision.add, decision.rule)
        for block_id in decision.remove:
            self._scale_in(block_id, f"scaling in ({decision.rule})")
        self._replace_long_held(now)
        self._finish_drains(now)
        self._save_jobs()

    def _refresh(self, now: float) -> None:
        live = {b.job_id: b for b in list(self.blocks.values()) if b.job_id}
        if not live:
            return
        try:
            statuses = self.provider.status(list(live))
        except Exception as exc:
            log.warning("could not ask %s for the state of jobs %s: %s", type(self.provider).__name__,
                        ", ".join(live), exc)
            return
        for block, status in zip(live.values(), statuses, strict=False):  # (a short answer leaves the rest)
            with self.lock:
                ended = block.update(status, now)
            if ended:
                self._ended(block, status)

    def _ended(self, block: Block, status: object) -> None:
        with self.lock:
            self.blocks.pop(block.block_id, None)
            self.history.append(block)
        if block.state == "SCALED_IN":
            log.info("block %s (job %s) scaled in", block.block_id, block.job_id)
        elif block.connected:
            log.warning("block %s (job %s) ended: %s%s; its managers' tasks run elsewhere", block.block_id,
                        block.job_id, block.state, f" ({block.failure})" if block.failure else "")
        else:
            self._find_output(block)
            block.fail(explain_end(block, status))
            self._block_failed(block)

    def _find_output(self, block: Block) -> None:
        """Some providers (Condor, LSF) do not say where a job's output went: it is beside its submit script."""
        for suffix in ("stdout", "stderr"):
            if getattr(block, f"{suffix}_path"):
                continue
            found = sorted(self.ep.blocks_dir.glob(f"*.block-{block.block_id}.*{suffix}"),
                           key=lambda path: path.stat().st_mtime)
            if found:
                setattr(block, f"{suffix}_path", str(found[-1]))

    def _block_failed(self, block: Block) -> None:
        log.error("%s", block.failure)
        with self.lock:
            self.failures_in_a_row += 1
            if self.failures_in_a_row < self.failure_threshold or any(b.counts for b in self.blocks.values()):
                return
            delay = min(MAX_BACKOFF, self.period * 2 ** (self.failures_in_a_row - self.failure_threshold))
            self.retry_at = time.monotonic() + delay
            self.degraded = (f"every block failed ({self.failures_in_a_row} in a row); trying again in {delay:.0f}s. "
                             f"The last: {block.failure}")
            provider = type(self.provider).__name__
            for_type = f" for {self.worker_type} tasks" if self.worker_type else ""
            self.requests.append(Control(action=ControlAction.FAIL_QUEUED, container_types=self._types(),
                                         detail=f"no block from {provider} could start a manager{for_type}: "
                                                f"{block.failure}"))

    def _types(self) -> list[str]:
        """Whose waiting tasks fail when no block starts: this pool's type (hard routing), else all."""
        return [self.worker_type] if self.worker_type else []

    def _submit(self, count: int, why: str) -> None:
        for _ in range(count):
            block_id = f"{self.pool}{self._next_id}"
            self._next_id += 1
            name = f"compute-endpoint.{self.ep.name}.block-{block_id}"
            try:
                job_id = self.provider.submit(self._command(block_id), 1, name)
                problem = None if job_id else "the provider returned no job id"
            except Exception as exc:  # sbatch: error: invalid partition, and the like
                job_id, problem = None, f"{type(exc).__name__}: {exc}"
            block = Block(block_id, str(job_id) if job_id else None)
            if problem:
                block.fail(f"block {block_id}: {type(self.provider).__name__} could not submit it: {problem}")
                with self.lock:
                    self.history.append(block)
                self._block_failed(block)
                return  # the next tick tries again, if the strategy still wants blocks
            with self.lock:
                self.blocks[block_id] = block
            log.info("submitted block %s as job %s (%s)", block_id, job_id, why)

    def _command(self, block_id: str) -> str:
        own = getattr(self.provider, "manager_command", None)
        if own is not None:  # a provider that runs managers its own way (pods of a type's image: kube_pods.py)
            return own(block_id)
        # No manager id: each node's manager names itself, block-N.HOST-PID-RANDOM.
        settings = ManagerSettings.from_config(self.config, self.interchange, "", keys_dir=self.ep.keys_dir,
                                               worker_type=self.worker_type)
        settings.block_id = block_id
        engine = self.config.engine
        env = [f"{key}={value}" for key, value in engine.worker_environment().items()]
        prefix = shlex.join(["env", *env]) + " " if env else ""
        container = engine.container
        if container:  # the job's shell passes the environment on; docker and podman get the names
            return prefix + wrap_batch(engine, container, self.ep, settings.command(), f"block-{block_id}")
        return prefix + shlex.join(settings.command())

    def _scale_in(self, block_id: str, why: str) -> None:
        """A block no manager reached is cancelled; one with managers is drained first, so no task is lost."""
        with self.lock:
            block = self.blocks.get(block_id)
            if block is None:
                return
            block.scale_in(time.monotonic())
            if block.managers:
                self.requests.append(Control(action=ControlAction.DRAIN_MANAGERS, detail=why,
                                             manager_ids=list(block.managers)))
                log.info("block %s: draining its managers %s (%s)", block_id, ", ".join(block.managers), why)
                return
        if block.job_id:
            self._cancel([block.job_id], why)

    def _finish_drains(self, now: float) -> None:
        """Cancel drained blocks whose managers have left, or that take too long to leave."""
        with self.lock:
            done = [b for b in self.blocks.values() if b.due_for_cancel(now, self.drain_grace)]
            for block in done:
                block.cancelled = True
        for block in done:
            if block.job_id:
                self._cancel([block.job_id], "its managers left")

    def _replace_long_held(self, now: float) -> None:
        if self.max_held_time is None:
            return
        with self.lock:
            held = [b for b in self.blocks.values() if b.held_since and now - b.held_since > self.max_held_time]
            for block in held:
                block.scale_in(now)
                block.failure = f"held by the scheduler for over {self.max_held_time:g}s; cancelled and replaced"
        for block in held:
            log.warning("block %s (job %s): %s", block.block_id, block.job_id, block.failure)
            if block.job_id:
                self._cancel([block.job_id], "held too long")

    def _cancel(self, job_ids: list[str], why: str) -> None:
        try:
            done = self.provider.cancel(job_ids)
        except KeyError:  # Parsl cancelled them, then found no record of jobs it did not submit (leftovers)
            done = [True]
        except Exception as exc:
            done, why = [False], f"{why}; {type(exc).__name__}: {exc}"
        if done and all(done):
            log.info("cancelled jobs %s: %s", ", ".join(job_ids), why)
        else:
            log.error("could not cancel jobs %s (%s); cancel them by hand", ", ".join(job_ids), why)

    def _save_jobs(self) -> None:
        jobs = sorted(b.job_id for b in self.blocks.values() if b.job_id)
        write_json(self.jobs_file, {"provider": type(self.provider).__name__, "jobs": jobs})

    def _cancel_leftovers(self) -> None:
        """Jobs a previous run of this endpoint left behind (it crashed): their managers would confuse the count."""
        recorded = read_json(self.jobs_file) or {}
        jobs = [str(j) for j in recorded.get("jobs") or []]
        if jobs and recorded.get("provider") == type(self.provider).__name__:
            self._cancel(jobs, "left by a previous run of this endpoint")
        self.jobs_file.unlink(missing_ok=True)
