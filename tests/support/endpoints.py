"""Driving real endpoints from tests the way a user does: through the compute-endpoint command."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from compute_endpoint.protocol.broker_names import EndpointNames
from compute_endpoint.sdk import Client, Executor

from .broker import BROKER_URL

CLI = [sys.executable, "-m", "compute_endpoint.cli.main"]

# Short periods so failure detection happens within a test's patience.
FAST_CONFIG = {
    "heartbeat_period": 2,
    "heartbeat_threshold": 6,
    "stop_timeout": 5,
    "engine": {
        "type": "GlobusComputeEngine",
        "max_workers_per_node": 2,
        "heartbeat_period": 0.5,
        "heartbeat_threshold": 3,
        "provider": {"type": "LocalProvider", "init_blocks": 1, "min_blocks": 0, "max_blocks": 1},
    },
}


def merge(base: dict, override: dict) -> dict:
    result = dict(base)
    for key, value in override.items():
        result[key] = merge(result[key], value) if isinstance(value, dict) and isinstance(result.get(key), dict) \
            else value
    return result


@dataclass
class Identity:
    client_id: str
    secret: str = field(repr=False)


@dataclass
class EndpointUnderTest:
    home: Path
    name: str
    identity: Identity
    broker_url: str = BROKER_URL

    def env(self, identity: Identity | None = None) -> dict:
        who = identity or self.identity
        env = dict(os.environ)
        env.update(COMPUTE_ENDPOINT_HOME=str(self.home), COMPUTE_CLIENT_ID=who.client_id,
                   COMPUTE_CLIENT_SECRET=who.secret)
        return env

    def cli(self, *args: str, identity: Identity | None = None, env: dict | None = None, input: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(CLI + list(args), env=env or self.env(identity), capture_output=True, text=True,
                              input=input, timeout=timeout)

    @property
    def dir(self) -> Path:
        return self.home / self.name

    def configure(self, overrides: dict | None = None) -> None:
        done = self.cli("configure", self.name, "--broker-url", self.broker_url)
        assert done.returncode == 0, done.stderr
        config = merge({**FAST_CONFIG, "broker": {"url": self.broker_url}}, overrides or {})
        (self.dir / "config.yaml").write_text(yaml.safe_dump(config))

    def start(self) -> subprocess.CompletedProcess:
        done = self.cli("start", self.name)
        assert done.returncode == 0, f"start failed: {done.stdout}\n{done.stderr}\n{self.logs()}"
        return done

    def stop(self) -> subprocess.CompletedProcess:
        return self.cli("stop", self.name)

    def info(self) -> dict:
        return json.loads((self.dir / "endpoint.json").read_text())

    @property
    def endpoint_id(self) -> str:
        return self.info()["endpoint_id"]

    @property
    def names(self) -> EndpointNames:
        """Its queues and routing keys on the broker."""
        return EndpointNames(self.identity.client_id, self.endpoint_id)

    def components(self) -> dict:
        return json.loads((self.dir / "components.json").read_text())

    def state(self) -> str:
        done = self.cli("list", "--json")
        assert done.returncode == 0, done.stderr
        return {row["name"]: row["status"] for row in json.loads(done.stdout)}[self.name]

    def status(self) -> dict:
        done = self.cli("status", self.name, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def executor(self, **kwargs) -> Executor:
        return Executor(endpoint_id=self.endpoint_id, broker_url=self.broker_url,
                        client_id=self.identity.client_id, client_secret=self.identity.secret, **kwargs)

    def client(self) -> Client:
        return Client(self.broker_url, self.identity.client_id, self.identity.secret)

    def logs(self) -> str:
        texts = []
        for path in sorted((self.dir / "logs").glob("*.log")):
            texts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(texts)
