"""A RabbitMQ node of the tests' own, on its own ports, for tests that stop and restart the broker.

It is a real RabbitMQ node (the same server binary), started next to the
system one with its own node name, ports and data directory, so restarting it
cannot disturb the broker the rest of the suite uses.
"""

import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from compute_endpoint.credentials import Identity
from compute_endpoint.procs import pid_alive
from compute_endpoint.protocol.broker_names import broker_permissions

from .broker import broker_reachable

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


class PrivateBroker:
    def __init__(self, directory: Path, port: int = 5679, dist_port: int = 25679, name: str = "cetest"):
        self.dir = directory
        self.port = port
        self.node = f"{name}@localhost"
        self.env = dict(os.environ)
        self.env.update(
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_PORT=str(port),
            RABBITMQ_DIST_PORT=str(dist_port),
            RABBITMQ_CONFIG_FILE=str(directory / "rabbitmq"),
            RABBITMQ_MNESIA_BASE=str(directory / "mnesia"),
            RABBITMQ_LOG_BASE=str(directory / "log"),
            RABBITMQ_PID_FILE=str(directory / "node.pid"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(directory / "enabled_plugins"),
        )

    @property
    def url(self) -> str:
        return f"amqp://127.0.0.1:{self.port}/%2F"

    def _run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(RABBIT_BIN / args[0]), *args[1:]], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=check)

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._run("rabbitmqctl", "-q", "-n", self.node, *args, check=check)

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
                                                "loopback_users.guest = true\n")
        (self.dir / "enabled_plugins").write_text("[].\n")
        self.boot()

    def boot(self) -> None:
        self._run("rabbitmq-server", "-detached")
        self.ctl("wait", str(self.dir / "node.pid"), "--timeout", "90")
        deadline = time.monotonic() + 30
        while not broker_reachable(port=self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"private RabbitMQ node did not open port {self.port}")
            time.sleep(0.1)

    def pid(self) -> int | None:
        """The Erlang VM's pid while it runs."""
        try:
            pid = int((self.dir / "node.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def shutdown(self) -> None:
        """Stop the whole node (the Erlang VM), as a server restart does."""
        self.ctl("stop", str(self.dir / "node.pid"), check=False)

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")

    def destroy(self) -> None:
        self.shutdown()
        shutil.rmtree(self.dir, ignore_errors=True)

    def add_identity(self, name: str, password: str) -> None:
        self.ctl("add_user", name, password)
        grants = broker_permissions(name)
        self.ctl("set_permissions", "-p", "/", name, grants["configure"], grants["write"], grants["read"])
        for exchange, topic in grants["topic"].items():
            self.ctl("set_topic_permissions", "-p", "/", name, exchange, topic["write"], topic["read"])

    def add_identity_random(self, prefix: str = "dora") -> Identity:
        """A new identity with the README's grants; returns it."""
        identity = Identity(f"{prefix}-{secrets.token_hex(3)}", secrets.token_hex(18))
        self.add_identity(identity.client_id, identity.secret)
        return identity

    def declare_exchanges(self) -> None:
        import pika

        params = pika.URLParameters(self.url)
        params.credentials = pika.PlainCredentials("guest", "guest")
        with pika.BlockingConnection(params) as conn:
            channel = conn.channel()
            for exchange in ("ce.tasks", "ce.results"):
                channel.exchange_declare(exchange, "topic", durable=True)
