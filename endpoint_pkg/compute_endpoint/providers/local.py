"""LocalProvider: manager processes ("blocks") on this host.

Starts ``init_blocks`` managers, replaces any that die, and scales between
``min_blocks`` and ``max_blocks`` with the load: up when outstanding tasks
need more slots (times ``parallelism``), down after ``max_idletime`` with
nothing to do. A replacement manager keeps its block's manager id, so the
interchange recognises it and requeues the dead one's tasks at once.
"""

import logging
import math
import os
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

from ..config import Config
from ..manager.settings import ManagerSettings
from ..paths import EndpointDir
from ..procs import describe_exit, spawn, terminate

log = logging.getLogger(__name__)


@dataclass
class Block:
    block_id: int
    manager_id: str
    process: subprocess.Popen
    started: float
    stopping: bool = False


class LocalBlocks:
    def __init__(self, ep: EndpointDir, config: Config, interchange_address: str, env: dict[str, str]):
        self.ep = ep
        self.config = config
        self.engine = config.engine
        self.provider = config.engine.provider
        self.interchange_address = interchange_address
        self.env = {**env, **config.engine.worker_environment()}
        self.blocks: dict[int, Block] = {}
        self._next_block = 0
        self._idle_since: float | None = None
        self._last_decision = 0.0
        self.replaced = 0

    @property
    def slots_per_block(self) -> int:
        return self.engine.max_workers_per_node + (self.engine.prefetch_capacity or 0)

    def start(self) -> None:
        for _ in range(self.provider.init_blocks):
            self._start_block()

    def pids(self) -> list[int]:
        return [b.process.pid for b in self.blocks.values()]

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

    def scale(self, outstanding: int) -> None:
        """One strategy step: add blocks for demand, remove idle ones after max_idletime."""
        now = time.monotonic()
        if now - self._last_decision < self.engine.job_status_kwargs.strategy_period:
            return
        self._last_decision = now
        active = [b for b in self.blocks.values() if not b.stopping]
        demand = math.ceil(outstanding * self.provider.parallelism / max(1, self.slots_per_block))
        wanted = min(self.provider.max_blocks, max(self.provider.min_blocks, demand))
        if wanted > len(active):
            log.info("scaling up from %d to %d managers for %d outstanding tasks", len(active), wanted, outstanding)
            for _ in range(wanted - len(active)):
                self._start_block()
            self._idle_since = None
            return
        if outstanding > 0 or len(active) <= wanted:
            self._idle_since = None
            return
        self._idle_since = self._idle_since or now
        if now - self._idle_since >= self.engine.job_status_kwargs.max_idletime:
            for block in active[wanted:]:
                log.info("manager %s idle for %.0fs; stopping it", block.manager_id, now - self._idle_since)
                self._signal(block, signal.SIGTERM)
            self._idle_since = None

    def stop(self, timeout: float) -> None:
        for block in self.blocks.values():
            block.stopping = True
        killed = terminate([block.process for block in self.blocks.values()], timeout)
        if killed:
            log.warning("managers (pids %s) did not stop within %gs; killed them", killed, timeout)
        self.blocks.clear()

    # --- internals -----------------------------------------------------------

    def _start_block(self, block_id: int | None = None) -> Block:
        if block_id is None:
            block_id = self._next_block
            self._next_block += 1
        manager_id = f"{socket.gethostname()}.{self.ep.name}.block-{block_id}"
        name = f"manager-{block_id}"
        settings = ManagerSettings.from_config(self.config, self.interchange_address, manager_id,
                                               parent_pid=os.getpid(), log_file=self.ep.log_file(name))
        process, _ = spawn(self._command(settings), self.ep.stderr_log(name), self.env)
        block = Block(block_id, manager_id, process, time.monotonic())
        self.blocks[block_id] = block
        log.info("started manager %s (pid %d)", manager_id, process.pid)
        return block

    def _command(self, settings: ManagerSettings) -> list[str]:
        cmd = settings.command()
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

