"""Parsl providers and launchers named in config.yaml, built as Parsl's own objects.

Only Parsl's public provider and launcher classes are used (their constructors,
``submit``, ``status``, ``cancel`` and attributes), never its executors, which
change between releases. Parsl is imported only when a config names one of its
classes: an endpoint on one host starts without it.
"""

import importlib
import inspect
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn

Fail = Callable[[tuple, str], NoReturn]


class Family:
    """Providers or launchers: the Parsl module that ships them and their base class."""

    def __init__(self, noun: str, module: str, base: str):
        self.noun = noun
        self.module = module
        self.base = base

    def classes(self) -> dict[str, type]:
        module = importlib.import_module(self.module)
        base_module, _, base_name = self.base.rpartition(".")
        base = getattr(importlib.import_module(base_module), base_name)
        found = {}
        for name in dir(module):
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base and not name.startswith("_"):
                found[name] = obj
        return found


PROVIDERS = Family("provider", "parsl.providers", "parsl.providers.base.ExecutionProvider")
LAUNCHERS = Family("launcher", "parsl.launchers", "parsl.launchers.base.Launcher")

# What a Parsl class needs that this machine may not have, and how to get it.
_EXTRAS = {"kubernetes": "pip install kubernetes", "boto3": "pip install boto3",
           "googleapiclient": "pip install google-api-python-client",
           "azure": "pip install azure-mgmt-compute azure-mgmt-network azure-identity"}

# KubernetesProvider loads the cluster's config as it is built, so a host with none fails here, not at submit.
NO_KUBERNETES_CLUSTER = ("no Kubernetes cluster configured: set KUBECONFIG to a kubeconfig file (or write "
                         "~/.kube/config), or run the endpoint in a pod, whose service account is then used")


def build(family: Family, spec: Any, path: tuple, fail: Fail) -> object:
    """The Parsl object that ``spec`` ({type: Name, arg: value, ...}) describes."""
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict):
        fail(path, f"expected a mapping with a 'type' key naming a Parsl {family.noun}, got {spec!r}")
    spec = dict(spec)
    kind = spec.pop("type", None)
    classes = family.classes()
    if kind not in classes:
        fail(path + ("type",), f"unknown {family.noun} type {kind!r}; expected one of: {', '.join(sorted(classes))}")
    cls = classes[kind]
    accepted = arguments(cls)
    for key in spec:
        if key not in accepted:
            fail(path + (key,), f"{kind} takes no argument {key!r}; it takes: {', '.join(accepted)}")
    if family is PROVIDERS and "launcher" in spec:
        spec["launcher"] = build(LAUNCHERS, spec["launcher"], path + ("launcher",), fail)
    try:
        return cls(**spec)
    except ImportError as exc:
        hint = _EXTRAS.get((exc.name or "").split(".")[0], "install the Python package it names")
        fail(path + ("type",), f"{kind} needs a Python package this machine does not have ({exc}): {hint}")
    except Exception as exc:  # Parsl checks arguments with typeguard; its message names the argument
        missing = getattr(exc, "module_names", None)  # Parsl's OptionalModuleMissing, which is no ImportError
        if missing:
            hint = _EXTRAS.get(missing[0], "install the Python package it names")
            fail(path + ("type",), f"{kind} needs a Python package this machine does not have ({missing[0]}): {hint}")
        if type(exc).__module__.startswith("kubernetes.config"):
            fail(path + ("type",), f"{kind}: {NO_KUBERNETES_CLUSTER} ({exc})")
        named = re.search(r'argument "(\w+)"', str(exc))
        where = path + (named[1],) if named and named[1] in spec else path
        fail(where, f"{kind} refused its arguments: {exc}")


def arguments(cls: type) -> list[str]:
    """The keyword arguments a Parsl class's constructor takes."""
    params = inspect.signature(cls).parameters
    return [name for name, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def is_parsl_provider(obj: object) -> bool:
    if "parsl.providers.base" not in sys.modules:  # then nothing can be one, and Parsl need not be loaded
        return False
    from parsl.providers.base import ExecutionProvider
    return isinstance(obj, ExecutionProvider)
