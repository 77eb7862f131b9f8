"""Where managers connect: the interchange's address, named the ways Parsl names it.

``address_by_interface`` (an interface's IPv4 address), ``address_by_hostname``
(what this host's name resolves to) and ``address_by_route`` (the address of
the interface the default route leaves by; read from the routing table, no
packet is sent), or a literal address. A config is often written on one host
(a workstation) for another (a login node): ``AddressSpec`` keeps what the
config asked for, so that ``check-config`` can warn where ``start`` must fail.
"""

import fcntl
import socket
import struct
from dataclasses import dataclass

_SIOCGIFADDR = 0x8915
KINDS = ("address_by_interface", "address_by_hostname", "address_by_route")


class AddressError(OSError):
    """An address the config names cannot be had on this host."""


def interfaces() -> list[str]:
    return sorted(name for _, name in socket.if_nameindex())


def address_by_interface(ifname: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("256s", ifname.encode()[:15])
        try:
            reply = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
        except OSError as exc:
            known = ", ".join(interfaces()) or "none"
            raise AddressError(f"this host has no IPv4 address on interface {ifname!r} ({exc.strerror}); "
                               f"its interfaces are: {known}") from None
    return socket.inet_ntoa(reply[20:24])


def address_by_hostname() -> str:
    name = socket.getfqdn()
    try:
        return socket.gethostbyname(name)
    except OSError as exc:
        raise AddressError(f"this host's name {name!r} does not resolve: {exc}") from None


def address_by_route(route_table: str = "/proc/net/route") -> str:
    """The address of the interface the default route leaves by."""
    try:
        with open(route_table) as table:
            rows = [line.split() for line in table.read().splitlines()[1:]]
    except OSError as exc:
        raise AddressError(f"cannot read the routing table {route_table}: {exc}") from None
    for row in rows:
        if len(row) > 2 and row[1] == "00000000":  # destination 0.0.0.0: the default route
            return address_by_interface(row[0])
    raise AddressError("this host has no default route; name the interface instead: "
                       "{type: address_by_interface, ifname: NAME}")


@dataclass(frozen=True)
class AddressSpec:
    """An address as the config names it, resolved when the endpoint starts."""

    kind: str
    ifname: str = ""

    def resolve(self) -> str:
        if self.kind == "address_by_interface":
            return address_by_interface(self.ifname)
        if self.kind == "address_by_hostname":
            return address_by_hostname()
        return address_by_route()

    def __str__(self) -> str:
        return f"{self.kind}({self.ifname})" if self.ifname else self.kind
