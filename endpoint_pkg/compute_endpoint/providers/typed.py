"""Hard routing of per-function containers: a pool of blocks per container type.

With ``engine.scheduler_mode: hard`` and containers listed, each type (RAW and
every listed container) gets blocks of its own, from its own copy of the
provider and with its own strategy, as funcX ran one provider per type; on
Kubernetes, from pods of the type's own image instead (kube_pods.py). Their
managers start workers of that one type and the interchange sends them only
tasks of that type. Each pool scales on the tasks waiting for its type, so a
type with waiting tasks gets managers of its own (funcX only ever launched RAW
managers) and a type whose blocks cannot start fails its own tasks, not
everyone's.
"""

import copy
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..config import Config
from ..containers.registry import RAW
from ..paths import EndpointDir
from ..protocol import Control
from .batch import BatchBlocks
from .local import LocalBlocks

Pool = LocalBlocks | BatchBlocks


def pool_types(config: Config) -> list[str]:
    """RAW first, then each listed container once (two aliases may name one image)."""
    keys = [container.key for _, container in sorted(config.container_registry.entries.items())]
    return [RAW, *dict.fromkeys(keys)]


class TypedBlocks:
    def __init__(self, config: Config, make_pool: Callable[[str, str], Pool]):
        """``make_pool(worker_type, pool_prefix)`` builds one type's blocks."""
        self.pools: dict[str, Pool] = {}
        for index, ctype in enumerate(pool_types(config)):
            self.pools[ctype] = make_pool(ctype, "raw-" if ctype == RAW else f"c{index}-")

    @classmethod
    def local(cls, ep: EndpointDir, config: Config, interchange_address: str, env: dict[str, str]) -> "TypedBlocks":
        return cls(config, lambda ctype, pool: LocalBlocks(ep, config, interchange_address, env, worker_type=ctype,
                                                           pool=pool))

    @classmethod
    def batch(cls, ep: EndpointDir, config: Config, interchange_address: str) -> "TypedBlocks":
        provider_for = _provider_per_type(ep, config, interchange_address)
        return cls(config, lambda ctype, pool: BatchBlocks(ep, config, interchange_address, worker_type=ctype,
                                                           pool=pool, provider=provider_for(ctype)))

    @property
    def replaced(self) -> int:
        return sum(pool.replaced for pool in self.pools.values())

    def start(self) -> None:
        for pool in self.pools.values():
            pool.start()

    def pids(self) -> list[int]:
        return [pid for pool in self.pools.values() for pid in pool.pids()]

    def poll(self) -> None:
        for pool in self.pools.values():
            pool.poll()

    def scale(self, outstanding: int, by_type: Mapping[str, int] | None = None) -> None:
        """Each pool on its own type's tasks (a task of a type nobody lists was refused at admission)."""
        by_type = by_type or {}
        for ctype, pool in self.pools.items():
            pool.scale(by_type.get(ctype, 0))

    def observe(self, managers: list[dict]) -> None:
        for ctype, pool in self.pools.items():
            pool.observe([m for m in managers if m.get("container_types") == [ctype]])

    def take_requests(self) -> list[Control]:
        return [request for pool in self.pools.values() for request in pool.take_requests()]

    def describe(self) -> dict:
        """One description for status: every pool's blocks, each marked with its type."""
        parts = {ctype: pool.describe() for ctype, pool in self.pools.items()}
        blocks = [{**block, "container_type": ctype} for ctype, part in parts.items() for block in part["blocks"]]
        degraded = [f"{ctype}: {part['degraded']}" for ctype, part in parts.items() if part["degraded"]]
        first = next(iter(parts.values()))
        return {"provider": first["provider"], "strategy": first["strategy"], "routing": "hard", "blocks": blocks,
                "active": sum(part["active"] for part in parts.values()),
                "failed_in_a_row": max(part["failed_in_a_row"] for part in parts.values()),
                "degraded": "; ".join(degraded) or None}

    def stop(self, timeout: float) -> None:
        """All pools at once: each may wait up to ``timeout`` for its managers."""
        with ThreadPoolExecutor(len(self.pools)) as stopping:
            list(stopping.map(lambda pool: pool.stop(timeout), self.pools.values()))


def _provider_per_type(ep: EndpointDir, config: Config, interchange: str) -> Callable[[str], Any]:
    """Each type's own provider: a copy of the configured one, or on Kubernetes pods of the type's image."""
    provider = config.engine.provider
    if type(provider).__name__ == "KubernetesProvider":
        # Parsl's pods run its one image and cannot mount the keys. Imported here: it loads the kubernetes client.
        from .kube_pods import pods_per_type
        return pods_per_type(ep, config, interchange)
    # A provider object remembers the jobs it submitted: each pool needs its own.
    return lambda ctype: copy.deepcopy(provider)


def hard_routed(config: Config) -> bool:
    """Managers per container type: hard routing with per-function containers listed."""
    return config.engine.scheduler_mode == "hard" and bool(config.container_registry.entries)
