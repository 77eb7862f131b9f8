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
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import Engine
from ..procs import describe_exit

log = logging.getLogger("compute_endpoint.provider")


@dataclass
class Block:
    block_id: int
    manager_id: str
    process: subprocess.Popen
    started: float
    stopping: bool = False


class LocalBlocks:
    def __init__(self, engine: Engine, interchange_address: str, log_dir: Path, env: dict,
                 endpoint_name: str, max_result_bytes: int, log_level: str = "INFO"):
        self.engine = engine
        self.provider = engine.provider
        self.interchange_address = interchange_address
        self.log_dir = log_dir
        self.env = {**env, **{k: str(v) for k, v in engine.worker_env.items()}}
        self.endpoint_name = endpoint_name
        self.max_result_bytes = max_result_bytes
        self.log_level = log_level
        self.blocks: dict[int, Block] = {}
        self._next_block = 0
        self._idle_since: float | None = None
        self._last_decision = 0.0
        self.replaced = 0

    @property
    def slots_per_block(self) -> int:
        return self.engine.max_workers_per_node + self.engine.prefetch_capacity

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
            self._signal(block, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for block in self.blocks.values():
            try:
                block.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("manager %s did not stop in time; killing it", block.manager_id)
                block.process.kill()
                block.process.wait()
        self.blocks.clear()

    # --- internals -----------------------------------------------------------

    def _start_block(self, block_id: int | None = None) -> Block:
        if block_id is None:
            block_id = self._next_block
            self._next_block += 1
        manager_id = f"{socket.gethostname()}.{self.endpoint_name}.block-{block_id}"
        cmd = self._command(manager_id, self.log_dir / f"manager-{block_id}.log")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"manager-{block_id}.stderr.log", "ab") as stderr:
            process = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=stderr)
        block = Block(block_id, manager_id, process, time.monotonic())
        self.blocks[block_id] = block
        log.info("started manager %s (pid %d)", manager_id, process.pid)
        return block

    def _command(self, manager_id: str, log_file: Path) -> list[str]:
        e = self.engine
        cmd = [sys.executable, "-m", "compute_endpoint.manager", "--interchange", self.interchange_address,
               "--workers", str(e.max_workers_per_node), "--prefetch", str(e.prefetch_capacity),
               "--manager-id", manager_id, "--heartbeat-period", str(e.heartbeat_period),
               "--heartbeat-threshold", str(e.heartbeat_threshold), "--parent-pid", str(os.getpid()),
               "--max-result-bytes", str(self.max_result_bytes), "--log-file", str(log_file),
               "--log-level", self.log_level]
        if e.task_walltime:
            cmd += ["--walltime", str(e.task_walltime)]
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

