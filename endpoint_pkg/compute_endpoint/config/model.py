"""The configuration objects an endpoint runs from.

``config.yaml`` is translated into these; a ``config.py`` builds them
directly. Validation happens at construction, so a bad value fails the same
way from either source, naming the key.
"""

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..addresses import is_loopback
from ..broker import broker_urls
from ..containers.registry import Registry, parse_registry
from ..containers.runtimes import NO_DOCKER_WORKERS, RUNTIMES, Container, ContainerError
from ..protocol.broker_names import IDENTITY_PATTERN
from ..protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES
from .fields import ConfigError, check_fields, setting
from .metrics import MetricsConfig
from .network import AddressError, AddressSpec
from .parsl_objects import is_parsl_provider
from .parts import LocalProvider, Strategy, WorkerLimitsConfig

DEFAULT_BROKER_URL = "amqp://127.0.0.1:5672/%2F"


def _default_workers() -> int:
    return max(1, os.cpu_count() or 1)


WORKER_MODES = ("auto", "no_container", "singularity_reuse", *(r for r in RUNTIMES if r != "custom"))
ENGINE_TYPES = ("GlobusComputeEngine", "HighThroughputEngine", "ComputeEngine", "GlobusMPIEngine")
MPI_LAUNCHERS = ("mpiexec", "srun", "aprun")
STRATEGIES = ("none", "simple", "htex_auto_scale")


@dataclass
class Engine:
    """How tasks run: managers from a provider, each with a pool of worker processes."""

    provider: Any = setting(kind=object, factory=LocalProvider,
                            doc="LocalProvider, or a Parsl provider (SlurmProvider, ...)")
    type: str = setting("GlobusComputeEngine", kind=str, choices=ENGINE_TYPES)
    max_workers_per_node: int = setting(kind=int, minimum=1, factory=_default_workers,
                                        doc="worker processes per manager")
    max_retries_on_system_failure: int = setting(
        1, kind=int, minimum=0, doc="re-runs of a task whose worker or manager died")
    task_walltime: float | None = setting(None, kind=float, positive=True, nullable=True,
                                          doc="seconds a task may run before it is killed")
    heartbeat_period: float = setting(5.0, kind=float, positive=True,
                                      doc="seconds between interchange<->manager heartbeats")
    heartbeat_threshold: float = setting(20.0, kind=float, positive=True,
                                         doc="seconds of silence before a manager is declared lost")
    prefetch_capacity: int | None = setting(
        None, kind=int, minimum=0, nullable=True,
        doc="tasks a manager may queue beyond its workers (default: one per worker; 0 for long, uneven tasks)")
    address: str = setting("127.0.0.1", kind=object,
                           doc="address the interchange listens on for managers, or how to find it (AddressSpec)")
    worker_port: int | None = setting(None, kind=int, minimum=1, nullable=True,
                                      doc="port for managers; chosen freely when unset")
    worker_env: dict = setting(kind=dict, factory=dict, doc="extra environment variables for workers")
    worker_limits: WorkerLimitsConfig = setting(kind=WorkerLimitsConfig, factory=WorkerLimitsConfig)
    label: str = setting("", kind=str, doc="free text, shown in status")
    job_status_kwargs: Strategy = setting(kind=Strategy, factory=Strategy)
    strategy: str | None = setting("simple", kind=str, nullable=True, choices=STRATEGIES,
                                   doc="how blocks scale: none (init_blocks only), simple, htex_auto_scale")
    available_accelerators: int | list | None = setting(
        None, kind=object, nullable=True,
        doc="accelerators per node, a count or a list of ids: one worker per accelerator, each seeing only its own")
    working_dir: str | None = setting(None, kind=str, nullable=True, doc="the workers' current directory")
    mpi_launcher: str = setting("mpiexec", kind=str, choices=MPI_LAUNCHERS,
                                doc="GlobusMPIEngine: what starts an MPI task's ranks on its nodes")
    worker_logdir_root: str | None = setting(None, kind=str, nullable=True,
                                             doc="where managers in batch jobs write their logs (one file each)")
    worker_debug: bool = setting(False, kind=bool, doc="managers and workers log at DEBUG")
    encrypted: bool = setting(True, kind=bool, doc="managers connect over CurveZMQ (always; false is ignored)")
    drain_period: float | None = setting(None, kind=float, positive=True, nullable=True,
                                         doc="seconds after which a block's managers stop taking tasks, finish "
                                             "theirs and leave (set it below the block's walltime)")
    container_type: str | None = setting(None, kind=str, nullable=True, choices=RUNTIMES,
                                         doc="run each manager and its workers in a container of this runtime")
    container_uri: str | None = setting(None, kind=str, nullable=True, doc="the image (a name, a path or a URI)")
    container_cmd_options: str | None = setting(None, kind=str, nullable=True,
                                                doc="more options for the runtime; for custom, the whole template")
    container_python: str = setting("python3", kind=str, doc="the interpreter in the image with compute-endpoint")
    container_idle_timeout: float = setting(600.0, kind=float, minimum=0,
                                            doc="per-function containers, soft routing: stop a worker whose "
                                                "container has been idle this many seconds (0: never)")
    worker_mode: str = setting("auto", kind=str, choices=WORKER_MODES,
                               doc="which runtime per-function containers use: auto (each entry's own), "
                                   "no_container (none), or one runtime")
    scheduler_mode: str = setting("soft", kind=str, choices=("soft", "hard", "random"),
                                  doc="soft: warm workers of a task's type first, else any free slot; hard: a "
                                      "manager per type; random: any manager with room (a baseline)")

    @property
    def batch(self) -> bool:
        """Managers come from a Parsl provider (a batch scheduler, a cloud), not as children of the endpoint."""
        return not isinstance(self.provider, LocalProvider)

    @property
    def mpi(self) -> bool:
        """GlobusMPIEngine: one manager per block shares the block's nodes among MPI tasks."""
        return self.type == "GlobusMPIEngine"

    @property
    def remote_managers(self) -> bool:
        """Managers connect over TCP (CurveZMQ): from batch jobs, or from other hosts."""
        return self.batch or not is_loopback(self.address)

    def _pin_accelerators(self) -> None:
        wanted = self.available_accelerators
        if wanted is None:
            return
        if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > 0:
            self.accelerators = [str(n) for n in range(wanted)]
        elif isinstance(wanted, list) and wanted and all(isinstance(a, (str, int)) and str(a) for a in wanted):
            self.accelerators = [str(a) for a in wanted]
        else:
            raise ConfigError("available_accelerators",
                              f"expected a count above 0 or a list of device ids, got {wanted!r}")
        if any("," in a or not a.isprintable() for a in self.accelerators):
            raise ConfigError("available_accelerators", f"device ids may not contain commas, got {wanted!r}")
        self.max_workers_per_node = min(self.max_workers_per_node, len(self.accelerators))

    def _check_provider(self) -> None:
        if isinstance(self.provider, LocalProvider):
            return
        if not is_parsl_provider(self.provider):
            raise ConfigError("provider", "expected a LocalProvider or a Parsl provider (from parsl.providers), "
                                          f"got {type(self.provider).__name__}")
        if type(self.provider).__name__ == "LocalProvider":
            self.provider = LocalProvider.from_parsl(self.provider)
            return
        launcher = type(getattr(self.provider, "launcher", None)).__name__
        if self.mpi and launcher not in ("SimpleLauncher", "NoneType"):
            raise ConfigError("provider.launcher", f"GlobusMPIEngine runs one manager per block, which starts each "
                                                   f"task's ranks itself: use SimpleLauncher, not {launcher}")
        blocks = (self.provider.min_blocks, self.provider.init_blocks, self.provider.max_blocks)
        if any(not isinstance(n, int) or n < 0 for n in blocks) or self.provider.max_blocks < 1:
            raise ConfigError("provider", f"min_blocks, init_blocks and max_blocks must be whole numbers (max_blocks "
                                          f"at least 1); got {blocks}")
        if self.provider.min_blocks > self.provider.max_blocks:
            raise ConfigError("provider.min_blocks", f"is {self.provider.min_blocks}, above max_blocks "
                                                     f"({self.provider.max_blocks})")
        if not 0 <= self.provider.parallelism <= 1:
            raise ConfigError("provider.parallelism",
                              f"expected a number between 0 and 1, got {self.provider.parallelism!r}")

    @property
    def container(self) -> Container | None:
        """The container around each manager (container_type), or None."""
        if not self.container_type:
            return None
        try:
            return Container(self.container_type, self.container_uri or "", self.container_cmd_options or "")
        except ContainerError as exc:
            raise ConfigError("container_type", str(exc)) from None

    def worker_environment(self) -> dict[str, str]:
        """``worker_env`` as environment variables (values become strings)."""
        return {key: str(value) for key, value in self.worker_env.items()}

    accelerators: list[str] = field(default_factory=list, init=False, compare=False, repr=False)
    notes: list[str] = field(default_factory=list, init=False, compare=False, repr=False)  # said at load, not errors
    # What ``address`` named when it is not a literal, and why it cannot be had here (see check_address).
    address_spec: AddressSpec | None = field(default=None, init=False, compare=False, repr=False)
    address_problem: str | None = field(default=None, init=False, compare=False, repr=False)

    def check_address(self) -> None:
        """Where the endpoint starts, the address must exist (check-config only warns: see address_problem)."""
        if self.address_problem:
            raise ConfigError("engine.address", self.address_problem)

    def _resolve_address(self) -> None:
        if isinstance(self.address, AddressSpec):
            self.address_spec, self.address = self.address, ""
            try:
                self.address = self.address_spec.resolve()
            except AddressError as exc:
                self.address_problem = f"{self.address_spec}: {exc}"
        elif not isinstance(self.address, str) or not self.address:
            raise ConfigError("address", f"expected an address or an AddressSpec, got {self.address!r}")

    def __post_init__(self):
        check_fields(self)
        self._resolve_address()
        self._pin_accelerators()
        _ = self.container  # refused here, with the key, rather than when the first manager starts
        self.strategy = self.strategy or "none"  # upstream writes null for no scaling
        if not self.encrypted:
            self.notes.append("encrypted: false is ignored: managers always connect over CurveZMQ")
        self._check_provider()
        if self.prefetch_capacity is None:
            # A task queued behind each worker spares it a round trip to the interchange
            # between tasks; with long, uneven tasks and many managers, 0 balances better.
            self.prefetch_capacity = self.max_workers_per_node
        if self.worker_port is not None and self.worker_port > 65535:
            raise ConfigError("worker_port", f"expected a TCP port (1-65535), got {self.worker_port}")
        if self.heartbeat_threshold <= self.heartbeat_period:
            raise ConfigError(
                "heartbeat_threshold",
                f"is {self.heartbeat_threshold}s; it must exceed heartbeat_period ({self.heartbeat_period}s)",
            )
        for key, value in self.worker_env.items():
            if not isinstance(key, str) or not isinstance(value, (str, int, float)):
                raise ConfigError("worker_env", f"expected NAME: value pairs of strings, got {key!r}: {value!r}")


@dataclass
class Broker:
    """Where the broker is. Credentials never live here (see ``compute-endpoint login``)."""

    url: str | list = setting(DEFAULT_BROKER_URL, kind=object,
                              doc="amqp:// or amqps:// URL, no user or password; a list for the nodes of a cluster")
    tls_ca: str | None = setting(None, kind=str, nullable=True, doc="CA bundle to verify an amqps:// broker")
    heartbeat: int = setting(60, kind=int, minimum=0, doc="AMQP heartbeat in seconds (0 disables)")
    connect_timeout: float = setting(10.0, kind=float, positive=True, doc="seconds to wait for a connection")
    allow_plaintext: bool = setting(False, kind=bool,
                                    doc="accept an amqp:// URL to another host (password and tasks in clear)")
    queue_type: str = setting("auto", kind=str, choices=("auto", "quorum", "classic"),
                              doc="the endpoint's queues: quorum (replicated), classic, or auto (quorum when the "
                                  "broker has it, keeping queues that exist as they are)")
    delivery_limit: int = setting(10, kind=int, minimum=1,
                                  doc="deliveries of a task (quorum queues) before the broker dead-letters it")
    urls: list[str] = field(default_factory=list, init=False, compare=False, repr=False)

    def __post_init__(self):
        check_fields(self)
        if not isinstance(self.url, (str, list)):
            raise ConfigError("url", f"expected a URL or a list of URLs, got {type(self.url).__name__} {self.url!r}")
        self.urls = broker_urls(self.url)
        if not self.urls:
            raise ConfigError("url", "names no broker: give an amqp:// or amqps:// URL, or a list of them")
        bad = [item for item in (self.url if isinstance(self.url, list) else []) if not isinstance(item, str)]
        if bad:
            raise ConfigError("url", f"expected URLs (strings) in the list, got {bad[0]!r}")
        for url in self.urls:
            self._check_url(url)
        if self.tls_ca and any(urlsplit(url).scheme != "amqps" for url in self.urls):
            raise ConfigError("tls_ca", "is set but a broker URL is not amqps://")

    def set_port(self, port: int) -> None:
        """Every node's URL with this port in place of its own (the upstream ``amqp_port``)."""
        self.urls = [_with_port(url, port) for url in self.urls]
        self.url = self.urls if len(self.urls) > 1 else self.urls[0]

    def _check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise ConfigError("url", f"expected an amqp:// or amqps:// URL, got {url!r}")
        if not parts.hostname:
            raise ConfigError("url", f"has no host name: {url!r}")
        if parts.password is not None or parts.username is not None:
            raise ConfigError(
                "url",
                "must not contain a user name or password; store credentials with "
                "`compute-endpoint login` or set COMPUTE_CLIENT_ID/COMPUTE_CLIENT_SECRET",
            )
        if parts.scheme == "amqp" and not is_loopback(parts.hostname) and not self.allow_plaintext:
            raise ConfigError(
                "url",
                f"amqp:// to {parts.hostname} would send the broker password and every task in clear: use "
                "amqps:// (with tls_ca), or set broker.allow_plaintext: true on a network you trust")


_HASH = re.compile(r"^[0-9a-f]{16,64}$")


@dataclass
class Config:
    """One endpoint's configuration."""

    engine: Engine = setting(kind=Engine, factory=Engine)
    broker: Broker = setting(kind=Broker, factory=Broker)
    display_name: str | None = setting(None, kind=str, nullable=True, doc="name shown to users")
    heartbeat_period: float = setting(30.0, kind=float, positive=True, doc="seconds between status reports")
    heartbeat_threshold: float = setting(120.0, kind=float, positive=True,
                                         doc="seconds without a report before clients see Disconnected")
    idle_heartbeats_soft: int = setting(0, kind=int, minimum=0,
                                        doc="stop after this many idle heartbeats (0: never)")
    allowed_functions: list | None = setting(None, kind=list, nullable=True,
                                             doc="function hashes allowed to run (null: any)")
    amqp_port: int | None = setting(None, kind=int, minimum=1, nullable=True,
                                    doc="the broker's port, in place of the one in broker.url")
    endpoint_setup: str | None = setting(None, kind=str, nullable=True,
                                         doc="shell commands run before the endpoint starts; failing stops the start")
    endpoint_teardown: str | None = setting(None, kind=str, nullable=True,
                                            doc="shell commands run after the endpoint stops")
    allowed_submitters: list = setting(kind=list, factory=list,
                                       doc="broker identities besides the owner that may submit tasks")
    isolate_submitters: bool = setting(False, kind=bool,
                                       doc="a worker process only ever runs the tasks of one submitter")
    containers: dict = setting(kind=dict, factory=dict,
                               doc="containers tasks may ask for: alias -> {runtime, image, options} or RUNTIME:IMAGE")
    max_payload_bytes: int = setting(DEFAULT_MAX_PAYLOAD_BYTES, kind=int, minimum=1024,
                                     doc="largest task or result accepted")
    stop_timeout: float = setting(10.0, kind=float, minimum=0,
                                  doc="seconds `stop` waits for tasks in flight before returning them to the queue")
    log_level: str = setting("INFO", kind=str, choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    debug: bool = setting(False, kind=bool, doc="same as log_level: DEBUG")
    metrics: MetricsConfig = setting(kind=MetricsConfig, factory=MetricsConfig,
                                     doc="Prometheus metrics: {address: HOST:PORT} (unset: none served)")
    container_registry: Registry = field(default_factory=Registry, init=False, compare=False, repr=False)

    def __post_init__(self):
        check_fields(self)
        if self.heartbeat_threshold <= self.heartbeat_period:
            raise ConfigError(
                "heartbeat_threshold",
                f"is {self.heartbeat_threshold}s; it must exceed heartbeat_period ({self.heartbeat_period}s)",
            )
        for item in self.allowed_functions or ():
            if not isinstance(item, str) or not _HASH.match(item):
                raise ConfigError("allowed_functions", f"expected function hashes (hex strings), got {item!r}")
        for item in self.allowed_submitters:
            if not isinstance(item, str) or not IDENTITY_PATTERN.match(item):
                raise ConfigError("allowed_submitters",
                                  f"expected broker identities (1-64 letters, digits, '_' or '-'), got {item!r}")
        try:
            self.container_registry = parse_registry(self.containers)
        except ContainerError as exc:
            raise ConfigError("containers", str(exc)) from None
        self._check_worker_mode()
        if self.containers and self.engine.container_type:
            raise ConfigError("containers", "per-function containers need managers outside a container: drop "
                                            "engine.container_type, or this list")
        if self.debug:
            self.log_level = "DEBUG"
        if self.amqp_port is not None:
            self._set_broker_port(self.amqp_port)

    def _check_worker_mode(self) -> None:
        """worker_mode and scheduler_mode against the containers listed (seed-era names included)."""
        engine, entries = self.engine, self.container_registry.entries
        engine.worker_mode = {"singularity_reuse": "singularity"}.get(engine.worker_mode, engine.worker_mode)
        if type(engine.provider).__name__ == "KubernetesProvider":
            self._check_kubernetes_containers()
        docker = sorted(alias for alias, c in entries.items() if c.runtime == "docker")
        if docker and type(engine.provider).__name__ != "KubernetesProvider":  # (a pod is the container there)
            raise ConfigError("containers", f"{', '.join(docker)}: {NO_DOCKER_WORKERS}")
        if engine.worker_mode == "no_container" and entries:
            raise ConfigError("engine.worker_mode", "no_container runs no per-function containers: drop the "
                                                    "containers: list, or name their runtime here")
        wrong = [a for a, c in entries.items() if engine.worker_mode not in ("auto", c.runtime)]
        if wrong and engine.worker_mode != "no_container":
            raise ConfigError("containers", f"{', '.join(sorted(wrong))}: not {engine.worker_mode} containers, which "
                                            "engine.worker_mode allows")

    def _check_kubernetes_containers(self) -> None:
        """On Kubernetes a pod is the container: hard routing only (the requirements' rule), OCI images only."""
        entries = self.container_registry.entries
        if entries and self.engine.scheduler_mode != "hard":
            raise ConfigError("engine.scheduler_mode", "with KubernetesProvider, per-function containers run as "
                                                       "manager pods of each image: set scheduler_mode: hard")
        other = sorted(alias for alias, c in entries.items() if c.runtime not in ("docker", "podman"))
        if other:
            raise ConfigError("containers", f"{', '.join(other)}: a Kubernetes pod runs OCI images only; list "
                                            "them as docker:IMAGE or podman:IMAGE")

    def _set_broker_port(self, port: int) -> None:
        if port > 65535:
            raise ConfigError("amqp_port", f"expected a TCP port (1-65535), got {port}")
        self.broker.set_port(port)


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    return parts._replace(netloc=f"{host}:{port}").geturl()
