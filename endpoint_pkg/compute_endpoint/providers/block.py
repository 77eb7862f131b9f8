"""One block: a job from a provider, what the scheduler says of it and what its managers do.

States are Parsl's job states (PENDING, RUNNING, HELD, COMPLETED, FAILED,
CANCELLED, TIMEOUT, UNKNOWN) plus three of ours: DRAINING (its managers were
asked to finish and leave, before the job is cancelled), SCALED_IN (ended
because the strategy removed it) and FAILED for a job that ended before any of
its managers connected, whatever the scheduler called its end: without an
accounting database Slurm reports such a job COMPLETED.
"""

import math
import time
from dataclasses import dataclass, field

ACTIVE = ("PENDING", "RUNNING", "HELD", "UNKNOWN")  # count against max_blocks
TAIL_LINES = 15
TAIL_BYTES = 2048


@dataclass
class Block:
    block_id: str
    job_id: str | None
    state: str = "PENDING"
    submitted_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    managers: list[str] = field(default_factory=list)  # connected now
    connected: bool = False  # a manager of it ever registered
    busy: bool = False  # a manager of it holds tasks
    idle_since: float | None = None  # monotonic: when its managers last held nothing
    held_since: float | None = None
    draining_since: float | None = None
    scaled_in: bool = False  # the strategy removed it (not its scheduler, nor its managers by themselves)
    cancelled: bool = False  # we asked the scheduler to cancel it
    failure: str | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None

    @property
    def counts(self) -> bool:
        """Counts against max_blocks and towards slots: not draining, not ended."""
        return self.state in ACTIVE and not self.scaled_in

    @property
    def removable(self) -> bool:
        return self.counts and not self.busy

    def idle_seconds(self, now: float) -> float:
        if not self.connected:
            return math.inf  # never started: the first to go
        return now - self.idle_since if self.idle_since is not None else 0.0

    def observe(self, managers: list[dict], now: float) -> None:
        self.managers = [m["manager_id"] for m in managers]
        self.connected = self.connected or bool(managers)
        self.busy = any(m.get("tasks") for m in managers)
        if self.busy:
            self.idle_since = None
        elif managers and self.idle_since is None:
            self.idle_since = now
        if managers and all(m.get("draining") for m in managers) and self.state in ACTIVE:
            self.start_draining(now)  # its managers are leaving by themselves (drain_period)

    def update(self, status: object, now: float) -> bool:
        """Take the scheduler's word for its state; True once the job has ended."""
        state = getattr(status, "state", None)
        name = getattr(state, "name", "UNKNOWN")
        self.stdout_path = getattr(status, "stdout_path", None) or self.stdout_path
        self.stderr_path = getattr(status, "stderr_path", None) or self.stderr_path
        self.held_since = (self.held_since or now) if name == "HELD" else None
        ended = bool(getattr(status, "terminal", False))
        if ended:
            self.ended_at = time.time()
            self.state = "SCALED_IN" if self.scaled_in else name if self.connected else "FAILED"
        elif self.state != "DRAINING":
            self.state = name
        return ended

    def scale_in(self, now: float) -> None:
        """Chosen by the strategy: drained if it has managers, cancelled at once if not."""
        self.scaled_in = True
        if self.managers:
            self.start_draining(now)
        else:
            self.state = "SCALED_IN"

    def start_draining(self, now: float) -> None:
        self.state = "DRAINING"
        self.draining_since = self.draining_since or now

    def due_for_cancel(self, now: float, grace: float) -> bool:
        """Removed by the strategy and its managers have left, or draining for over ``grace`` seconds.

        A block whose managers leave by themselves (drain_period, SIGTERM from the
        scheduler) ends by itself: it is cancelled only if it lingers.
        """
        if self.state != "DRAINING" or self.cancelled or self.draining_since is None:
            return False
        return now - self.draining_since > grace or (self.scaled_in and not self.managers)

    def fail(self, message: str) -> None:
        self.state = "FAILED"
        self.failure = message
        self.ended_at = self.ended_at or time.time()

    def summary(self, now: float) -> dict:
        idle = self.idle_seconds(now) if self.connected and not self.busy and self.counts else None
        return {"block_id": self.block_id, "job_id": self.job_id, "state": self.state,
                "managers": len(self.managers), "idle_seconds": round(idle, 1) if idle is not None else None,
                "submitted_at": self.submitted_at, "ended_at": self.ended_at, "failure": self.failure}


def explain_end(block: Block, status: object) -> str:
    """Why a block failed, in the words the scheduler and the job's own output give."""
    state = getattr(getattr(status, "state", None), "name", "UNKNOWN")
    code = getattr(status, "exit_code", None)
    message = getattr(status, "message", None)
    text = (f"block {block.block_id} (job {block.job_id}) ended before any manager connected; the scheduler says "
            f"{state}{f' (exit code {code})' if code is not None else ''}{f': {message}' if message else ''}")
    for label, path in (("stdout", block.stdout_path), ("stderr", block.stderr_path)):
        tail = _tail(path)
        if tail:
            text += f"\n{label} ({path}), last lines:\n{tail}"
    if "\n" not in text:
        text += ("; the job wrote no output: check the provider's options (account, partition, walltime) and "
                 "worker_init")
    return text


def _tail(path: str | None) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as output:
            output.seek(0, 2)
            output.seek(max(0, output.tell() - TAIL_BYTES))
            data = output.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(line.rstrip() for line in data.strip().splitlines()[-TAIL_LINES:])
