"""Which containers an endpoint's tasks may ask for: the operator's list, by alias.

In ``config.yaml``::

    containers:
      py311: {runtime: podman, image: localhost/compute-endpoint-worker:1}
      hpc: charliecloud:/var/tmp/images/hpc      # RUNTIME:IMAGE, the short form

A task names an alias or the RUNTIME:IMAGE of an entry; anything else is
refused with the list of what is allowed, and never runs outside a container.
"""

from dataclasses import dataclass, field

from .runtimes import RUNTIMES, Container, ContainerError

RAW = "RAW"


@dataclass(frozen=True)
class Registry:
    entries: dict[str, Container] = field(default_factory=dict)  # alias -> container

    def resolve(self, requested: str) -> Container | None:
        """The container a task asked for (None for RAW, no container); ContainerError when it may not run here."""
        if requested in ("", RAW):
            return None
        found = self.entries.get(requested) or next((c for c in self.entries.values() if c.key == requested), None)
        if found is not None:
            return found
        if not self.entries:
            raise ContainerError(f"container {requested[:200]!r}: this endpoint runs no per-function containers (its "
                                 "config lists none under containers:); submit without a container, or ask its "
                                 "operator to add one")
        allowed = ", ".join(f"{alias} ({c.key})" for alias, c in sorted(self.entries.items()))
        raise ContainerError(f"container {requested[:200]!r} is not one this endpoint allows; it allows: {allowed}")


def parse_registry(data: dict) -> Registry:
    """Build the registry from the config's ``containers`` mapping; ContainerError names the alias at fault."""
    entries = {}
    for alias, spec in data.items():
        if not isinstance(alias, str) or not alias or alias == RAW or ":" in alias:
            raise ContainerError(f"alias {alias!r}: use a name without ':' (and not RAW)")
        try:
            entries[alias] = _entry(spec)
        except ContainerError as exc:
            raise ContainerError(f"{alias}: {exc}") from None
    return Registry(entries)


def _entry(spec: object) -> Container:
    if isinstance(spec, str):
        runtime, sep, image = spec.partition(":")
        if not sep:
            raise ContainerError(f"expected RUNTIME:IMAGE (runtimes: {', '.join(RUNTIMES)}), got {spec!r}")
        return Container(runtime, image)
    if isinstance(spec, dict):
        unknown = set(spec) - {"runtime", "image", "options"}
        if unknown:
            raise ContainerError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; expected runtime, image, "
                                 "options")
        values = {key: spec.get(key, "") for key in ("runtime", "image", "options")}
        if not all(isinstance(v, str) for v in values.values()):
            raise ContainerError("runtime, image and options must be strings")
        if values["runtime"] == "custom":
            raise ContainerError("custom templates wrap whole managers (engine.container_type), not single workers")
        return Container(values["runtime"], values["image"], values["options"])
    raise ContainerError(f"expected RUNTIME:IMAGE or a mapping with runtime and image, got {type(spec).__name__}")
