"""The parts an engine is made of: the local provider, the scaling settings, the workers' limits."""

import re
from dataclasses import dataclass

from ..limits import WorkerLimits
from .fields import ConfigError, check_fields, setting

MiB = 1024 * 1024


@dataclass
class LocalProvider:
    """Managers as processes on this host (Parsl's LocalProvider semantics)."""

    init_blocks: int = setting(1, kind=int, minimum=0, doc="managers started with the endpoint")
    min_blocks: int = setting(0, kind=int, minimum=0, doc="never scale below this many managers")
    max_blocks: int = setting(1, kind=int, minimum=1, doc="never scale above this many managers")
    nodes_per_block: int = setting(1, kind=int, choices=(1,), doc="always 1 on this host")
    parallelism: float = setting(1.0, kind=float, minimum=0,
                                 doc="fraction of outstanding tasks to provision slots for (0-1)")
    worker_init: str = setting("", kind=str, doc="shell commands run before each manager starts")

    type = "LocalProvider"

    def __post_init__(self):
        check_fields(self)
        if self.parallelism > 1:
            raise ConfigError("parallelism", f"expected a number between 0 and 1, got {self.parallelism!r}")
        if self.min_blocks > self.max_blocks:
            raise ConfigError("min_blocks", f"is {self.min_blocks}, above max_blocks ({self.max_blocks})")
        if not self.min_blocks <= self.init_blocks <= self.max_blocks:
            raise ConfigError(
                "init_blocks",
                f"is {self.init_blocks}; it must lie between min_blocks ({self.min_blocks}) "
                f"and max_blocks ({self.max_blocks})",
            )

    @classmethod
    def from_parsl(cls, provider: object) -> "LocalProvider":
        """Ours in place of Parsl's: managers as children of the endpoint, replaced at once when they die."""
        try:
            return cls(init_blocks=provider.init_blocks, min_blocks=provider.min_blocks,  # type: ignore[attr-defined]
                       max_blocks=provider.max_blocks, nodes_per_block=provider.nodes_per_block,  # type: ignore
                       parallelism=float(provider.parallelism),  # type: ignore[attr-defined]
                       worker_init=provider.worker_init.strip())  # type: ignore[attr-defined]
        except ConfigError as exc:
            raise exc.located(f"provider.{exc.key}") from None


@dataclass
class Strategy:
    """When to add and remove blocks (upstream's ``job_status_kwargs``)."""

    max_idletime: float = setting(120.0, kind=float, positive=True,
                                  doc="seconds a manager may sit idle before it is removed")
    strategy_period: float = setting(5.0, kind=float, positive=True, doc="seconds between scaling decisions")
    status_period: float | None = setting(None, kind=float, positive=True, nullable=True,
                                          doc="seconds between asking the scheduler for its jobs' states (null: "
                                              "the provider's own interval, 60 s for batch schedulers)")
    max_held_time: float | None = setting(None, kind=float, positive=True, nullable=True,
                                          doc="seconds a held or suspended block may stay so before it is "
                                              "cancelled and replaced (null: wait)")

    def __post_init__(self):
        check_fields(self)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|K|M|G|T)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20, "g": 2**30, "gib": 2**30, "t": 2**40,
          "tib": 2**40}


def parse_size(value: int | str) -> int:
    """Bytes from an integer or a text like '2GiB', '512 MiB' or '4G' (binary units)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"expected a size in bytes or with a unit (e.g. 2GiB, 512MiB), got {value!r}")
    return int(float(match[1]) * _UNITS[(match[2] or "b").lower()])


@dataclass
class WorkerLimitsConfig:
    """What one worker process (and everything it starts) may use; unset is unlimited."""

    memory: int | str | None = setting(None, kind=object, nullable=True,
                                       doc="address space per worker, e.g. 4GiB (RLIMIT_AS)")
    processes: int | None = setting(None, kind=int, minimum=1, nullable=True,
                                    doc="processes the workers' user may have (RLIMIT_NPROC)")
    cpu_seconds: float | None = setting(None, kind=float, positive=True, nullable=True,
                                        doc="CPU seconds one task may use")

    def __post_init__(self):
        check_fields(self)
        if self.memory is not None:
            try:
                size = parse_size(self.memory)
            except ValueError as exc:
                raise ConfigError("memory", str(exc)) from None
            if size < 64 * MiB:
                raise ConfigError("memory", f"{self.memory!r} is less than 64 MiB, too little to start a worker")

    def limits(self) -> WorkerLimits:
        memory = parse_size(self.memory) if self.memory is not None else None
        return WorkerLimits(memory, self.processes, self.cpu_seconds)
