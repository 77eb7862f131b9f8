"""What a config means, in a few lines: what `check-config` prints after "valid"."""

import inspect

from .model import Config, LocalProvider

_BLOCK_KEYS = ("init_blocks", "min_blocks", "max_blocks", "nodes_per_block", "parallelism", "worker_init",
               "launcher")


def describe(config: Config) -> list[tuple[str, str]]:
    engine = config.engine
    provider = engine.provider
    mpi = f"MPI tasks through {engine.mpi_launcher}, " if engine.mpi else ""
    rows = [("Engine", f"{engine.type}: {mpi}{engine.max_workers_per_node} workers per node, "
                       f"prefetch {engine.prefetch_capacity}, task walltime "
                       f"{f'{engine.task_walltime:g} s' if engine.task_walltime else 'none'}")]
    rows.append(("Provider", f"{type(provider).__name__}{_arguments(provider, _BLOCK_KEYS)}"))
    launcher = getattr(provider, "launcher", None)
    if launcher is not None and not isinstance(provider, LocalProvider):
        rows.append(("Launcher", f"{type(launcher).__name__}{_arguments(launcher, ())}"))
    kwargs = engine.job_status_kwargs
    rows.append(("Blocks", f"init {provider.init_blocks}, min {provider.min_blocks}, max {provider.max_blocks}, "
                           f"{provider.nodes_per_block} node(s) each, parallelism {provider.parallelism:g}; strategy "
                           f"{engine.strategy} every {kwargs.strategy_period:g} s, idle blocks go after "
                           f"{kwargs.max_idletime:g} s"
                           + (f", managers retire after {engine.drain_period:g} s" if engine.drain_period else "")))
    container = engine.container
    if container:
        image = f" {container.image}" if container.image else ""
        rows.append(("Container", f"each manager and its workers run in {container.runtime}{image}, with "
                                  f"{engine.container_python}" + (f"; options: {container.options}"
                                                                   if container.options else "")))
    rows.append(("Address", _address(config)))
    rows.append(("Broker", ", ".join(config.broker.urls)))
    rows.append(("Metrics", f"Prometheus metrics at http://{config.metrics.address}/metrics" if config.metrics.enabled
                 else "off (set metrics.address to serve Prometheus metrics)"))
    rows += [("Note", note) for note in engine.notes]
    return rows


def _address(config: Config) -> str:
    engine = config.engine
    if engine.address_problem:
        return f"WARNING: {engine.address_problem} (start fails on this host; fine if the config is for another)"
    shown = f"{engine.address} (from {engine.address_spec})" if engine.address_spec else engine.address
    if not engine.remote_managers:
        return f"{shown}: managers on this host only, over a private socket"
    port = engine.worker_port or "a free port chosen at start"
    return f"{shown}, port {port}: managers connect over CurveZMQ"


def _arguments(obj: object, skip: tuple) -> str:
    """The constructor arguments an object was given that differ from their defaults."""
    try:
        params = inspect.signature(type(obj)).parameters
    except (TypeError, ValueError):
        return ""
    shown = []
    for name, param in params.items():
        if name in skip or not hasattr(obj, name):
            continue
        value = getattr(obj, name)
        if param.default is inspect.Parameter.empty or value != param.default:
            text = " ".join(str(value).split())
            shown.append(f"{name}: {text[:60] + '...' if len(text) > 60 else text}")
    return f" ({', '.join(shown)})" if shown else ""
