"""A manager's settings: built from an endpoint's config, carried on its command line.

``ManagerSettings.command()`` is the one way every provider starts a manager:
as a child of the endpoint, as a systemd unit, or inside a batch job.
"""

import json
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..cmdline import CommandLine, option
from ..containers.runtimes import Container
from ..limits import WorkerLimits
from ..protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES

if TYPE_CHECKING:  # a manager process needs no config machinery, only what its command line says
    from ..config import Config


@dataclass
class ManagerSettings(CommandLine):
    MODULE = "compute_endpoint.manager"
    DESCRIPTION = "Run a pool of workers for an interchange."

    interchange: str = option(help="the interchange's address for managers, e.g. tcp://10.0.0.1:54000")
    workers: int = option(help="worker processes to run")
    keys_dir: Path | None = option(None, help="CurveZMQ keys for a tcp:// interchange: a directory holding this "
                                              "manager's pair (manager.key, manager.key_secret) and the "
                                              "interchange's public key (endpoint.key)")
    manager_id: str = option("", help="stable identity across restarts (default: HOST-PID-RANDOM)")
    block_id: str = option("", help="the endpoint's block (batch job) this manager runs in")
    drain_after: float = option(0.0, help="seconds after start to stop taking tasks, finish them and leave "
                                          "(the engine's drain_period; 0: never)")
    prefetch: int = option(0, help="tasks to queue beyond the workers")
    heartbeat_period: float = option(5.0, help="seconds between heartbeats to the interchange")
    heartbeat_threshold: float = option(20.0, help="seconds without word from the interchange before warning")
    walltime: float | None = option(None, help="default per-task walltime in seconds")
    max_result_bytes: int = option(DEFAULT_MAX_PAYLOAD_BYTES, help="largest result a worker may return")
    plain_arguments: bool = option(False, help="workers load arguments as plain data only (with allowed_functions)")
    memory_limit: int = option(0, help="bytes of address space per worker (0: unlimited)")
    process_limit: int = option(0, help="processes the workers' user may have (0: unlimited)")
    cpu_limit: float = option(0.0, help="CPU seconds per task (0: unlimited)")
    isolate_submitters: bool = option(False, help="a worker runs the tasks of one submitter only")
    worker_user: str = option("", help="run workers as this user, which must not be able to read the endpoint's "
                                       "files (needs CAP_SETUID and CAP_SETGID; the packaged unit sets compute-worker)")
    mpi_launcher: str = option("", help="GlobusMPIEngine: share this block's nodes among MPI tasks, started with "
                                        "srun, mpiexec or aprun (empty: not an MPI manager)")
    working_dir: str = option("", help="the workers' current directory (default: their user's home, else this one)")
    worker_type: str = option("RAW", help="RAW or RUNTIME:IMAGE: the workers the pool starts with and the only type "
                                          "it serves (hard routing); 'any': a worker of each task's type starts when "
                                          "one comes (soft routing)")
    worker_containers: str = option("", help="JSON {RUNTIME:IMAGE: {runtime, image, options}}: the containers "
                                             "workers may run in")
    container_python: str = option("python3", help="the interpreter with compute-endpoint inside the images")
    container_idle_timeout: float = option(600.0, help="soft routing: stop a container worker idle for this many "
                                                       "seconds, freeing its slot (0: never)")
    accelerators: str = option("", help="accelerator ids, comma-separated, one per worker: each worker sees only "
                                        "its own (CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES, ZE_AFFINITY_MASK)")
    parent_pid: int = option(0, help="exit when this process dies")
    log_file: Path | None = option(None, help="log to this file (default: stderr)")
    log_dir: Path | None = option(None, help="log to MANAGER_ID.log in this directory (when no --log-file)")
    log_level: str = option("INFO", help="DEBUG, INFO, WARNING or ERROR")

    def name_this_process(self) -> None:
        """Without --manager-id (each node of a batch block), the manager names itself where it runs."""
        if not self.manager_id:
            block = f"block-{self.block_id}." if self.block_id else ""
            self.manager_id = f"{block}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def containers(self) -> dict[str, Container]:
        """The containers workers may run in, by RUNTIME:IMAGE."""
        specs = json.loads(self.worker_containers) if self.worker_containers else {}
        return {key: Container(spec["runtime"], spec["image"], spec.get("options", "")) for key, spec in specs.items()}

    def limits(self) -> WorkerLimits:
        return WorkerLimits(self.memory_limit or None, self.process_limit or None, self.cpu_limit or None)

    @classmethod
    def from_config(cls, config: "Config", interchange: str, manager_id: str, *, keys_dir: Path | None = None,
                    parent_pid: int = 0, log_file: Path | None = None,
                    worker_type: str | None = None) -> "ManagerSettings":
        """``worker_type``: hard routing's one type for this manager; by default, every listed one (soft)."""
        engine = config.engine
        limits = engine.worker_limits.limits()
        # Soft routing: workers of the endpoint's listed containers start as their tasks come.
        # Hard routing: the manager starts workers of its one type only, but still needs the entry's options.
        registry = {c.key: {"runtime": c.runtime, "image": c.image, "options": c.options}
                    for c in config.container_registry.entries.values()}
        return cls(interchange=interchange, keys_dir=keys_dir, workers=engine.max_workers_per_node,
                   manager_id=manager_id,
                   prefetch=engine.prefetch_capacity or 0, heartbeat_period=engine.heartbeat_period,
                   heartbeat_threshold=engine.heartbeat_threshold, walltime=engine.task_walltime,
                   max_result_bytes=config.max_payload_bytes,
                   plain_arguments=config.allowed_functions is not None, memory_limit=limits.memory_bytes or 0,
                   process_limit=limits.processes or 0, cpu_limit=limits.cpu_seconds or 0.0,
                   isolate_submitters=config.isolate_submitters, drain_after=engine.drain_period or 0.0,
                   working_dir=engine.working_dir or "", accelerators=",".join(engine.accelerators),
                   mpi_launcher=engine.mpi_launcher if engine.mpi else "",
                   worker_type=worker_type or ("any" if registry else "RAW"),
                   worker_containers=json.dumps(registry) if registry else "",
                   container_python=engine.container_python,
                   container_idle_timeout=engine.container_idle_timeout,
                   parent_pid=parent_pid, log_file=log_file,
                   log_dir=Path(engine.worker_logdir_root) if engine.worker_logdir_root else None,
                   log_level="DEBUG" if engine.worker_debug else config.log_level)

