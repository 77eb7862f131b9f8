"""Declarative field checks shared by the config classes.

Each config class declares its fields with ``setting(...)``; ``check_fields``
runs from ``__post_init__`` so the same rules apply whether the object came
from config.yaml or was built in a config.py.
"""

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import EndpointError, ExitCode


class ConfigError(EndpointError):
    """A config value that is wrong; knows the key, and later the file and line."""

    exit_code = ExitCode.BAD_CONFIG

    def __init__(self, key: str, message: str, file: str | None = None, line: int | None = None):
        self.key = key
        self.detail = message
        self.file = file
        self.line = line
        super().__init__(self._render())

    def located(self, key: str | None = None, file: str | None = None, line: int | None = None) -> "ConfigError":
        return ConfigError(key or self.key, self.detail, file or self.file, line or self.line)

    def _render(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        return f"{where}{self.key}: {self.detail}" if self.key else f"{where}{self.detail}"

    def __str__(self) -> str:
        return self._render()


_KIND_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    dict: "a mapping",
    list: "a list",
}


def setting(default: Any = dataclasses.MISSING, *, kind: type, minimum: float | None = None,
            positive: bool = False, choices: tuple | None = None, nullable: bool = False,
            factory: Callable[[], Any] | None = None, doc: str = "") -> Any:
    """A config field with its checks attached as metadata."""
    meta = {"kind": kind, "minimum": minimum, "positive": positive, "choices": choices,
            "nullable": nullable, "doc": doc}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check_fields(obj: Any) -> None:
    for f in dataclasses.fields(obj):
        meta = f.metadata
        if "kind" in meta:
            _check_value(f.name, getattr(obj, f.name), meta)


def _check_value(key: str, value: Any, meta: Mapping[str, Any]) -> None:
    kind = meta["kind"]
    if value is None:
        if meta["nullable"]:
            return
        raise ConfigError(key, f"expected {_KIND_NAMES.get(kind, kind.__name__)}, got nothing (null)")
    if not _is_kind(value, kind):
        raise ConfigError(key, f"expected {_describe(meta)}, got {type(value).__name__} {value!r}")
    if kind is float and not math.isfinite(value):  # YAML's .nan and .inf: no limit compares with them
        raise ConfigError(key, f"expected a finite number, got {value!r}")
    too_small = meta["minimum"] is not None and value < meta["minimum"]
    if too_small or (meta["positive"] and value <= 0):
        raise ConfigError(key, f"expected {_describe(meta)}, got {value!r}")
    if meta["choices"] is not None and value not in meta["choices"]:
        options = ", ".join(str(c) for c in meta["choices"])
        raise ConfigError(key, f"expected one of: {options}; got {value!r}")


def _is_kind(value: Any, kind: type) -> bool:
    if kind in (int, float) and isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _describe(meta: Mapping[str, Any]) -> str:
    text = _KIND_NAMES.get(meta["kind"], meta["kind"].__name__)
    if meta["positive"]:
        text += " greater than 0"
    elif meta["minimum"] is not None:
        text += f" of at least {meta['minimum']}"
    return text
