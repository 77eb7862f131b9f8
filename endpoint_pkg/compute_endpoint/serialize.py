"""Serialization of functions, arguments, results and exceptions.

We use cloudpickle rather than dill: it pickles functions and closures defined
in ``__main__``, notebooks and lambdas by value, everything importable by
reference, and hands all other objects to the standard C pickler (protocol 5),
so it is both faster and less surprising than dill, which swaps pickle's
dispatch tables globally. It is what Dask, Ray and PySpark ship functions with.

Only the SDK and workers call the ``load_*`` functions: the endpoint,
interchange and manager route these bytes without unpickling them.
"""

import hashlib
import io
import pickle
import pickletools
import sys
import traceback
import weakref
from collections.abc import Callable
from typing import Any

import cloudpickle

PROTOCOL = 5

_function_cache: "weakref.WeakKeyDictionary[Any, tuple[str, bytes]]" = weakref.WeakKeyDictionary()


class SerializationError(Exception):
    """A value that cannot be pickled; the message names its type."""


def dump_function(fn: Callable[..., Any]) -> tuple[str, bytes]:
    """(hash, bytes) of a function; cached per function object so resubmission is free."""
    try:
        return _function_cache[fn]
    except (KeyError, TypeError):
        pass
    data = _dumps(fn, "function")
    entry = (function_hash(data), data)
    try:
        _function_cache[fn] = entry
    except TypeError:  # not weak-referenceable (e.g. a builtin); simply not cached
        pass
    return entry


def function_hash(data: bytes) -> str:
    """The hash a function is known by (``allowed_functions``): of its serialized bytes."""
    return hashlib.sha256(data).hexdigest()[:32]


def dump_arguments(args: tuple, kwargs: dict) -> bytes:
    return _dumps((args, kwargs), "arguments")


def dump_value(value: Any) -> bytes:
    return _dumps(value, "result")


def dump_exception(exc: BaseException) -> bytes:
    """The pickled exception, or b"" when it cannot be pickled (its text still travels)."""
    try:
        data = cloudpickle.dumps(exc, protocol=PROTOCOL)
        pickle.loads(data)  # exceptions with custom __init__ often pickle but fail to unpickle
        return data
    except Exception:
        return b""


def load(data: bytes) -> Any:
    return pickle.loads(data)


# Plain data needs no class lookups in pickle protocol 5, except these.
_PLAIN_DATA_CLASSES = {("builtins", "complex"), ("builtins", "set"), ("builtins", "frozenset"),
                       ("builtins", "bytearray")}


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PLAIN_DATA_CLASSES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"{module}.{name} is not plain data: this endpoint runs only allowed functions, and their arguments "
            "may hold only numbers, strings, bytes, None, booleans and lists, tuples, dicts and sets of them")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent references are not plain data")


def load_plain_data(data: bytes) -> Any:
    """Unpickle, refusing any object but plain data, so that loading runs no code of the sender's."""
    return _PlainDataUnpickler(io.BytesIO(data)).load()


def python_version() -> str:
    """This interpreter's "major.minor": code serialized by value runs only under the same one."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def carries_code(data: bytes) -> bool:
    """Whether a pickle holds code by value (a lambda, a function or class from ``__main__``).

    cloudpickle rebuilds such code through its own helpers, so the pickle names
    its module; functions pickled by reference name only their own module. The
    bytecode inside does not carry across Python versions: loading it under
    another one can crash the interpreter, so it is looked for before loading.
    """
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name == "GLOBAL" and str(arg).startswith("cloudpickle"):
                return True
            if opcode.name == "STACK_GLOBAL" and len(strings) >= 2 and strings[-2].startswith("cloudpickle"):
                return True
            if isinstance(arg, str):
                strings.append(arg)
    except Exception:  # not a pickle at all: loading it fails with its own error
        return False
    return False


def format_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _dumps(obj: Any, what: str) -> bytes:
    try:
        return cloudpickle.dumps(obj, protocol=PROTOCOL)
    except Exception as exc:
        culprit = _unpicklable_type(obj)
        raise SerializationError(
            f"the {what} cannot be serialized: {culprit} objects cannot be pickled ({type(exc).__name__}: {exc})"
        ) from None


def _unpicklable_type(obj: Any) -> str:
    """Name the innermost unpicklable object's type, e.g. 'generator' inside a list."""
    if isinstance(obj, (list, tuple, set, frozenset)):
        for item in obj:
            if not _picklable(item):
                return _unpicklable_type(item)
    if isinstance(obj, dict):
        for item in obj.values():
            if not _picklable(item):
                return _unpicklable_type(item)
    return type(obj).__qualname__


def _picklable(obj: Any) -> bool:
    try:
        cloudpickle.dumps(obj, protocol=PROTOCOL)
        return True
    except Exception:
        return False
