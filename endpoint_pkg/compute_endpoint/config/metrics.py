"""The ``metrics:`` section: where the endpoint serves its Prometheus metrics, if anywhere."""

import ipaddress
import re
from dataclasses import dataclass, field

from .fields import ConfigError, check_fields, setting

# What `configure` writes for a system-wide endpoint (the packaged service): loopback only,
# for a Prometheus on the same host; 9465 is not taken by any widely used exporter.
SYSTEM_METRICS_ADDRESS = "127.0.0.1:9465"

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
                       r"[A-Za-z0-9])?)*$")
_EXPECTED = "expected HOST:PORT, such as 127.0.0.1:9465 or [::1]:9465"


def parse_address(text: str) -> tuple[str, int]:
    """(host, port) from ``HOST:PORT`` or ``[IPv6]:PORT``; ValueError says what is wrong."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"{_EXPECTED}; got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address; {_EXPECTED}") from None
    elif ":" in host:
        raise ValueError(f"an IPv6 address goes in brackets ([{host}]:{port_text}); {_EXPECTED}")
    elif not _HOSTNAME.match(host):
        raise ValueError(f"{host!r} is not a host name or an IP address; {_EXPECTED}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"the port must be a number from 1 to 65535, got {port_text!r}")
    return host, int(port_text)


@dataclass
class MetricsConfig:
    """Prometheus metrics over HTTP; off unless an address is given."""

    address: str | None = setting(None, kind=str, nullable=True,
                                  doc="HOST:PORT to serve /metrics on, e.g. 127.0.0.1:9465 (unset: no metrics)")
    host: str = field(default="", init=False, compare=False, repr=False)
    port: int = field(default=0, init=False, compare=False, repr=False)

    def __post_init__(self):
        check_fields(self)
        if self.address is None or not self.address.strip():
            self.address = None
            return
        try:
            self.host, self.port = parse_address(self.address)
        except ValueError as exc:
            raise ConfigError("address", str(exc)) from None

    @property
    def enabled(self) -> bool:
        return self.address is not None
