"""A second 'host' for tests: a network namespace joined to this one by a veth pair.

Its link can be cut and restored, which is how tests partition a manager from
its interchange. Addresses come from 10.213.0.0/16, on links the test creates.
"""

import os
import subprocess
from dataclasses import dataclass


def ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", "netns", "exec", netns, "ip", *args] if netns else ["ip", *args]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30)


@dataclass
class NetnsHost:
    index: int

    def __post_init__(self):
        tag = f"{os.getpid() % 10000}{self.index}"
        self.name = f"ce-test-{tag}"
        self.host_if = f"ceh{tag}"[:15]
        self.ns_if = f"cen{tag}"[:15]
        subnet = (os.getpid() + self.index) % 250 + 1
        self.host_ip = f"10.213.{subnet}.1"
        self.ns_ip = f"10.213.{subnet}.2"

    def create(self) -> "NetnsHost":
        ip("netns", "add", self.name)
        ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        ip("link", "set", self.ns_if, "netns", self.name)
        ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        ip("link", "set", self.host_if, "up")
        ip("addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if, netns=self.name)
        ip("link", "set", self.ns_if, "up", netns=self.name)
        ip("link", "set", "lo", "up", netns=self.name)
        return self

    def cut(self) -> None:
        ip("link", "set", self.ns_if, "down", netns=self.name)

    def heal(self) -> None:
        ip("link", "set", self.ns_if, "up", netns=self.name)

    def popen(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], **kwargs)

    def destroy(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=30)
