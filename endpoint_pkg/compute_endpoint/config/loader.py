"""Read config.yaml (or config.py) into a ``Config``, naming file, line and key on error."""

import dataclasses
import pkgutil  # noqa: F401  runpy imports it lazily: loaded as a config's owner, that may be too late to read it
import runpy
import traceback
from pathlib import Path
from typing import Any, NoReturn

import yaml

from .fields import ConfigError
from .metrics import MetricsConfig
from .model import ENGINE_TYPES, Broker, Config, Engine, LocalProvider, Strategy
from .network import KINDS as ADDRESS_KINDS
from .network import AddressSpec
from .parsl_objects import PROVIDERS, build

# Keys from upstream Globus Compute configs whose meaning does not carry over,
# with what to do instead. Any other unknown key gets the list of known ones.
_UNSUPPORTED_HINTS = {
    # the endpoint
    "multi_user": "multi-user endpoints are not supported; run one endpoint per identity",
    "high_assurance": "not supported",
    "subscription_id": "not supported",
    "authentication_policy": "not supported; access is governed by broker permissions and allowed_submitters",
    "admins": "not supported; the endpoint's owner is its broker identity",
    "public": "not supported; access is governed by broker permissions",
    "environment": "not supported; name the broker with broker.url",
    "local_compute_services": "not supported; name the broker with broker.url",
    "idle_heartbeats_hard": "use idle_heartbeats_soft (there is no separate hard limit)",
    "log_dir": "logs are always written to the endpoint directory",
    "stdout": "logs are always written to the endpoint directory",
    "stderr": "logs are always written to the endpoint directory",
    "executors": "use a single 'engine:' section (the upstream 1.x/2.x layout)",
    # the engine
    "executor": "give the engine's settings directly under 'engine:'",
    "worker_ports": "use engine.worker_port (one port for managers)",
    "worker_port_range": "use engine.worker_port",
    "interchange_port_range": "the interchange's endpoint-side port is chosen automatically",
    "loopback_address": "the endpoint reaches its interchange over a private socket",
    "launch_cmd": "the manager command is fixed; prepare its environment with provider.worker_init",
    "interchange_launch_cmd": "the interchange is started by the endpoint itself",
    "cores_per_worker": "use max_workers_per_node (workers per node)",
    "mem_per_worker": "use worker_limits.memory (a limit per worker)",
    "cpu_affinity": "not supported; bind with the launcher's options (e.g. SrunLauncher overrides: --cpu-bind=cores)",
    "poll_period": "not needed: managers are polled by their sockets",
    "address_probe_timeout": "not needed: managers are given one address (engine.address)",
    "manager_selector": "not supported; the interchange sends tasks to idle workers first",
    "block_error_handler": "not needed: failed blocks are reported and retried with back-off (README)",
    "remote_monitoring_radio": "not supported; see `compute-endpoint status`",
    "storage_access": "not supported",
    "run_in_sandbox": "use engine.working_dir",
    "allowed_serializers": "use allowed_functions (only plain-data arguments are then accepted)",
}

_ENGINES_ELSEWHERE = ("ThreadPoolEngine", "ProcessPoolEngine")
_STRATEGY_CLASSES = {"SimpleStrategy": "simple", "HtexAutoScaleStrategy": "htex_auto_scale",
                     "NoneStrategy": "none"}


def load_config(path: Path | str) -> Config:
    """Load and validate the config at ``path`` (a .yaml/.yml or .py file)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("", f"config file {path} does not exist; run `compute-endpoint configure` first")
    if path.suffix == ".py":
        return _load_python(path)
    return load_yaml_text(path.read_text(), str(path))


def load_yaml_text(text: str, filename: str) -> Config:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError("", f"invalid YAML: {problem}", filename, line) from None
    lines = _key_lines(root) if root is not None else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("", f"expected a mapping of settings at the top level, got {type(data).__name__}",
                          filename, 1)
    return _Builder(filename, lines).build(Config, data, ())


class _Builder:
    """Turns nested mappings into config objects, keeping key paths for messages."""

    def __init__(self, filename: str, lines: dict[tuple, int]):
        self.filename = filename
        self.lines = lines

    def fail(self, path: tuple, message: str) -> NoReturn:
        line = self._line_for(path)
        raise ConfigError(".".join(str(p) for p in path), message, self.filename, line)

    def _line_for(self, path: tuple) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def build(self, cls: Any, data: Any, path: tuple) -> Any:
        if not isinstance(data, dict):
            self.fail(path, f"expected a mapping of settings, got {type(data).__name__} {data!r}")
        data = dict(data)
        cls = self._choose_class(cls, data, path)
        known = {f.name: f for f in dataclasses.fields(cls) if f.init}
        kwargs = {}
        for key, value in data.items():
            if key not in known:
                self._unknown_key(path + (key,), known)
            nested = known[key].metadata.get("kind")
            if value is None and nested is MetricsConfig:  # `metrics:` with nothing under it: off
                value = {}
            if dataclasses.is_dataclass(nested):
                value = self.build(nested, value, path + (key,))
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            key_path = path + tuple(exc.key.split(".")) if exc.key else path
            raise exc.located(".".join(map(str, key_path)), self.filename, self._line_for(key_path)) from None

    def _choose_class(self, cls: type, data: dict, path: tuple) -> type:
        if cls is Engine:
            return self._engine_class(data, path)
        if cls is LocalProvider:
            data.pop("type", None)
        return cls

    def _provider(self, spec: Any, path: tuple) -> object:
        """Ours for LocalProvider (managers as the endpoint's children); Parsl's for every other type."""
        if isinstance(spec, dict) and spec.get("type", "LocalProvider") == "LocalProvider":
            return self.build(LocalProvider, spec, path)
        return build(PROVIDERS, spec, path, self.fail)

    def _engine_class(self, data: dict, path: tuple) -> type[Engine]:
        kind = data.get("type", "GlobusComputeEngine")
        if kind in _ENGINES_ELSEWHERE:
            self.fail(path + ("type",), f"{kind} is not supported: tasks run in worker processes managed by this "
                                        "endpoint; use type: GlobusComputeEngine")
        if kind not in ENGINE_TYPES:
            self.fail(path + ("type",), f"unknown engine type {kind!r}; expected one of: {', '.join(ENGINE_TYPES)}")
        if kind == "GlobusMPIEngine" and "max_workers_per_block" in data:  # MPI tasks at once, per block
            data["max_workers_per_node"] = data.pop("max_workers_per_block")
        if "max_workers" in data:
            if "max_workers_per_node" in data:
                self.fail(path + ("max_workers",), "set either max_workers or max_workers_per_node, not both")
            data["max_workers_per_node"] = data.pop("max_workers")
        if "provider" in data:
            data["provider"] = self._provider(data["provider"], path + ("provider",))
        if isinstance(data.get("strategy"), dict):
            self._strategy_object(data, path + ("strategy",))
        if isinstance(data.get("address"), dict):
            data["address"] = self._address(data["address"], path + ("address",))
        return Engine

    def _strategy_object(self, data: dict, path: tuple) -> None:
        """Upstream's older form, {type: SimpleStrategy, max_idletime: N}: a name, and job_status_kwargs."""
        spec = dict(data["strategy"])
        kind = _STRATEGY_CLASSES.get(spec.pop("type", None))
        if kind is None:
            self.fail(path + ("type",), f"expected one of: {', '.join(_STRATEGY_CLASSES)}")
        kwargs = data.setdefault("job_status_kwargs", {})
        for key in ("max_idletime", "strategy_period"):
            if key in spec:
                kwargs[key] = spec.pop(key)
        if spec:
            self.fail(path + (next(iter(spec)),), "unknown key; expected one of: type, max_idletime, strategy_period")
        data["strategy"] = kind

    def _address(self, spec: dict, path: tuple) -> AddressSpec:
        """Resolved when the endpoint starts: a config is often checked on another host than it runs on."""
        kind = spec.get("type")
        wanted = {"type", "ifname"} if kind == "address_by_interface" else {"type"}
        if kind not in ADDRESS_KINDS or set(spec) != wanted or not isinstance(spec.get("ifname", ""), str):
            self.fail(path, "expected an address, or {type: address_by_interface, ifname: NAME}, "
                            "{type: address_by_hostname} or {type: address_by_route}")
        return AddressSpec(kind, spec.get("ifname", ""))

    def _unknown_key(self, path: tuple, known: dict) -> NoReturn:
        key = path[-1]
        hint = _UNSUPPORTED_HINTS.get(key)
        if hint:
            self.fail(path, f"is not supported by this endpoint: {hint}")
        names = ", ".join(sorted(known))
        self.fail(path, f"unknown key; expected one of: {names}")


def _key_lines(node: yaml.Node, path: tuple = ()) -> dict[tuple, int]:
    lines: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = path + (key_node.value,)
            lines[key_path] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, key_path))
    return lines


def _load_python(path: Path) -> Config:
    try:
        namespace = runpy.run_path(str(path), run_name="__config__")
    except ConfigError as exc:
        raise exc.located(file=str(path), line=_line_in(path, exc)) from None
    except Exception as exc:  # a user file: any error it raises is theirs to see
        raise ConfigError("", f"{type(exc).__name__}: {exc}", str(path), _line_in(path, exc)) from None
    config = namespace.get("config")
    if not isinstance(config, Config):
        found = "nothing" if config is None else type(config).__name__
        raise ConfigError("config", f"the file must define `config = Config(...)`; found {found}", str(path))
    return config


def _line_in(path: Path, exc: BaseException) -> int | None:
    if isinstance(exc, SyntaxError) and exc.filename == str(path):
        return exc.lineno
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == path:
            line = frame.lineno
    return line


__all__ = ["load_config", "load_yaml_text", "Broker", "Config", "Engine", "LocalProvider", "Strategy"]
