"""Resolve an interface name to its IPv4 address (upstream's ``address_by_interface``)."""

import fcntl
import socket
import struct

_SIOCGIFADDR = 0x8915


def address_by_interface(ifname: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("256s", ifname.encode()[:15])
        reply = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
    return socket.inet_ntoa(reply[20:24])
