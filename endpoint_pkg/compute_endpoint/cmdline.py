"""A component's settings and its command line: one dataclass, one way to write and read it.

Each component (the endpoint daemon, the interchange, a manager, a worker) is
started as ``python -m compute_endpoint.<component> --flag value ...``. Its
settings type subclasses ``CommandLine`` and declares each field with
``option(help=...)``; ``to_argv()`` writes the flags and ``from_argv()``
reads them with a parser built from the same fields, so the command a
provider runs (by hand, under systemd, in a batch job or in a container)
can never drift from what the component understands.
"""

import argparse
import dataclasses
import sys
import types
import typing
from typing import Any, ClassVar, Self


def option(default: Any = dataclasses.MISSING, *, help: str, positional: bool = False,  # noqa: A002
           choices: tuple | None = None) -> Any:
    """A settings field that appears on the command line as ``--field-name``."""
    return dataclasses.field(default=default, metadata={"help": help, "positional": positional,
                                                        "choices": choices})


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _value_type(annotation: Any) -> type:
    """The type to parse a flag's value as: X for X, and for X | None."""
    if isinstance(annotation, types.UnionType):
        annotation = next(t for t in annotation.__args__ if t is not type(None))
    return annotation


class CommandLine:
    """Base of a component's settings (a dataclass) that knows its command line."""

    MODULE: ClassVar[str]  # what `python -m` runs
    DESCRIPTION: ClassVar[str]

    @classmethod
    def _options(cls) -> list[tuple[dataclasses.Field, type]]:
        hints = typing.get_type_hints(cls)
        return [(f, _value_type(hints[f.name])) for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                if "help" in f.metadata]

    def to_argv(self) -> list[str]:
        """The flags that recreate these settings; None, false and empty-by-default values are left out."""
        argv: list[str] = []
        for f, kind in self._options():
            value = getattr(self, f.name)
            if value is None or (kind is bool and not value) or (value == "" and f.default == ""):
                continue
            if f.metadata["positional"]:
                argv.append(str(value))
            elif kind is bool:
                argv.append(_flag(f.name))
            else:  # one word, so that a value starting with "-" is never read as a flag
                argv.append(f"{_flag(f.name)}={value}")
        return argv

    def command(self, python: str = sys.executable) -> list[str]:
        return [python, "-m", self.MODULE, *self.to_argv()]

    @classmethod
    def parser(cls) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog=f"python -m {cls.MODULE}", description=cls.DESCRIPTION)
        for f, kind in cls._options():
            meta = f.metadata
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            default = None if required else f.default
            if meta["positional"]:
                parser.add_argument(f.name, type=kind, help=meta["help"])
            elif kind is bool:
                parser.add_argument(_flag(f.name), action="store_true", help=meta["help"])
            else:
                parser.add_argument(_flag(f.name), type=kind, required=required, default=default,
                                    choices=meta["choices"], help=meta["help"], metavar=f.name.upper())
        return parser

    @classmethod
    def from_argv(cls, argv: list[str] | None = None) -> Self:
        args = cls.parser().parse_args(argv)
        return cls(**vars(args))

