"""The limits a task runs under: its walltime, and its worker's memory, processes and CPU time.

The operator's limits are ceilings: a client may ask for less, never for more.
Memory and processes are kernel resource limits set in each worker process
(inherited by whatever it starts); CPU time is counted per task by the manager
from ``/proc``, since a worker's own CPU clock runs across all its tasks.
"""

import math
import os
import resource
from dataclasses import dataclass


def effective_walltime(requested: float | None, ceiling: float | None) -> float | None:
    """The smaller of the client's and the operator's walltime; a value that is not a finite
    number above 0 counts as unset (the endpoint refuses such tasks before they get here)."""
    usable = [w for w in (requested, ceiling) if w is not None and math.isfinite(w) and w > 0]
    return min(usable) if usable else None


def deadline_after(walltime: float, workers: int, prefetch: int, retries: int, heartbeat_threshold: float) -> float:
    """Seconds after which the endpoint gives up on a task that has no result.

    Room for the turns a worker may take before and including this task (the
    broker hands the endpoint two tasks per slot, and a manager has ``workers
    + prefetch`` slots), each at most ``walltime``; then every retry, and time
    for a lost manager to be noticed. A task past this was lost, or waited
    that long for a worker: either way its submitter is told.
    """
    turns = math.ceil(2 * (workers + prefetch) / workers)
    return walltime * (turns + retries) + 2 * heartbeat_threshold


def walltime_problem(walltime: float | None) -> str | None:
    if walltime is None or (math.isfinite(walltime) and walltime > 0):
        return None
    return f"walltime must be a finite number of seconds above 0, got {walltime!r}"


@dataclass(frozen=True)
class WorkerLimits:
    """Per-worker limits from ``engine.worker_limits``; None means unlimited."""

    memory_bytes: int | None = None
    processes: int | None = None
    cpu_seconds: float | None = None

    def describe(self) -> str:
        parts = []
        if self.memory_bytes:
            parts.append(f"memory {format_bytes(self.memory_bytes)}")
        if self.processes:
            parts.append(f"{self.processes} processes")
        if self.cpu_seconds:
            parts.append(f"CPU time {self.cpu_seconds:g}s per task")
        return ", ".join(parts) or "none"

    def apply_to_this_process(self) -> None:
        """Set the kernel limits in a worker before it runs anything (hard and soft: a task cannot raise them)."""
        if self.memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
        if self.processes:
            resource.setrlimit(resource.RLIMIT_NPROC, (self.processes, self.processes))

    def memory_message(self) -> str:
        return (f"the task ran out of memory under its worker's limit of {format_bytes(self.memory_bytes or 0)} "
                "(engine.worker_limits.memory); the worker was replaced")

    def cpu_message(self) -> str:
        return (f"the task used more than its CPU time limit of {self.cpu_seconds:g}s "
                "(engine.worker_limits.cpu_seconds) and was killed")


def format_bytes(count: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user and system) a process has used, and its children it has waited for; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    # after the command: state is field 0, utime 11, stime 12, cutime 13, cstime 14
    return sum(int(value) for value in fields[11:15]) / _CLOCK_TICKS
