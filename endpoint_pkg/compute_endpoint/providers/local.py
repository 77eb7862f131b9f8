"""LocalProvider: manager processes ("blocks") on this host.

Starts ``init_blocks`` managers, replaces any that die, and scales between
``min_blocks`` and ``max_blocks`` with the load by the engine's ``strategy``
(see strategy.py); a manager asked to go drains first. A replacement manager
keeps its block's manager id, so the interchange recognises it and requeues
the dead one's tasks at once.
"""

import logging
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..config import Config
from ..manager.settings import ManagerSettings
from ..paths import EndpointDir
from ..procs import describe_exit, spawn, terminate
from .containers import check_binds, remove_leftovers, wrap_local
from .strategy import Load, Strategy

log = logging.getLogger(__name__)


@dataclass
class Block:
    block_id: int
    manager_id: str
    process: subprocess.Popen
    started: float
    stopping: bool = False
    idle_since: float | None = None  # monotonic: since when the interchange has seen it hold no task


class LocalBlocks:
    def __init__(self, ep: EndpointDir, config: Config, interchange_address: str, env: dict[str, str], *,
                 worker_type: str | None = None, pool: str = ""):
        self.ep = ep
        self.worker_type = worker_type  # hard routing: the one container type this pool's managers serve
        self.pool = pool  # prefixes its block names, unique among the endpoint's pools
        self.config = config
        self.engine = config.engine
        self.provider = config.engine.provider
        self.interchange_address = interchange_address
        self.env = {**env, **config.engine.worker_environment()}
        self.blocks: dict[int, Block] = {}
        self._next_block = 0
        self.strategy = Strategy.for_engine(self.engine)
        self._last_decision = 0.0
        self.replaced = 0
        check_binds(self.engine, ep)

    def start(self) -> None:
        remove_leftovers(self.engine.container, self.ep)  # a crashed run's containers
        for _ in range(self.provider.init_blocks):
            self._start_block()

    def pids(self) -> list[int]:
        return [b.process.pid for b in self.blocks.values()]

    def observe(self, managers: list[dict]) -> None:
        """Which managers hold tasks: the strategy stops only idle ones."""
        busy = {m["manager_id"] for m in managers if m.get("tasks")}
        now = time.monotonic()
        for block in self.blocks.values():
            if block.manager_id in busy:
                block.idle_since = None
            elif block.idle_since is None:
                block.idle_since = now

    def take_requests(self) -> list:
        return []  # managers are drained with SIGTERM, not through the interchange

    def describe(self) -> dict:
        now = time.monotonic()
        blocks = [{"block_id": f"{self.pool}{b.block_id}", "job_id": str(b.process.pid), "manager_id": b.manager_id,
                   "state": "DRAINING" if b.stopping else "RUNNING", "managers": 1,
                   "running_seconds": round(now - b.started, 1)} for b in self.blocks.values()]
        return {"provider": "LocalProvider", "strategy": self.strategy.kind, "blocks": blocks, "active": len(blocks),
                "failed_in_a_row": 0, "degraded": None}

    # --- supervision ---------------------------------------------------------

    def poll(self) -> None:
        """Reap managers that exited and replace those that were not asked to stop."""
        for block in list(self.blocks.values()):
            code = block.process.poll()
            if code is None:
                continue
            del self.blocks[block.block_id]
            if block.stopping:
                continue
            log.warning("manager %s (pid %d) exited unexpectedly (%s); starting a replacement",
                        block.manager_id, block.process.pid, describe_exit(code))
            self.replaced += 1
            self._start_block(block_id=block.block_id)

    def scale(self, outstanding: int, by_type: Mapping[str, int] | None = None) -> None:
        """One strategy step (see strategy.py): add managers for demand, stop idle ones (they drain first)."""
        now = time.monotonic()
        if now - self._last_decision < self.engine.job_status_kwargs.strategy_period:
            return
        self._last_decision = now
        active = {str(b.block_id): b for b in self.blocks.values() if not b.stopping}
        idle = [(key, now - b.idle_since) for key, b in active.items() if b.idle_since is not None]
        decision = self.strategy.decide(Load(outstanding, len(active), self.engine.max_workers_per_node,
                                             sorted(idle, key=lambda item: -item[1])), now)
        if decision.add or decision.remove:
            log.info("strategy %s (%s): %d tasks, %d managers; adding %d, stopping %s", self.strategy.kind,
                     decision.rule, outstanding, len(active), decision.add, decision.remove or "none")
        for _ in range(decision.add):
            self._start_block()
        for key in decision.remove:
            self._signal(active[key], signal.SIGTERM)

    def stop(self, timeout: float) -> None:
        for block in self.blocks.values():
            block.stopping = True
        killed = terminate([block.process for block in self.blocks.values()], timeout)
        if killed:
            log.warning("managers (pids %s) did not stop within %gs; killed them", killed, timeout)
        self.blocks.clear()
        remove_leftovers(self.engine.container, self.ep)  # those whose runtime client was killed

    # --- internals -----------------------------------------------------------

    def _start_block(self, block_id: int | None = None) -> Block:
        if block_id is None:
            block_id = self._next_block
            self._next_block += 1
        manager_id = f"{socket.gethostname()}.{self.ep.name}.block-{self.pool}{block_id}"
        name = f"manager-{self.pool}{block_id}"
        # In a container the manager's parent is the runtime's, not this process: it cannot watch for our death.
        parent = 0 if self.engine.container else os.getpid()
        settings = ManagerSettings.from_config(self.config, self.interchange_address, manager_id,
                                               parent_pid=parent, log_file=self.ep.log_file(name),
                                               worker_type=self.worker_type)
        process, _ = spawn(self._command(settings, block_id), self.ep.stderr_log(name), self.env)
        block = Block(block_id, manager_id, process, time.monotonic(), idle_since=time.monotonic())
        self.blocks[block_id] = block
        log.info("started manager %s (pid %d)", manager_id, process.pid)
        return block

    def _command(self, settings: ManagerSettings, block_id: int) -> list[str]:
        cmd = settings.command()
        container = self.engine.container
        if container:
            cmd = wrap_local(self.engine, container, self.ep, cmd, f"block-{self.pool}{block_id}")
        if self.provider.worker_init:
            # worker_init runs in a shell first, then the shell becomes the manager.
            script = f"{self.provider.worker_init}\nexec {shlex.join(cmd)}"
            return ["/bin/sh", "-c", script]
        return cmd

    @staticmethod
    def _signal(block: Block, sig: int) -> None:
        block.stopping = True
        try:
            block.process.send_signal(sig)
        except ProcessLookupError:
            pass

