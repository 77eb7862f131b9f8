"""A three-node RabbitMQ cluster of the tests' own, on this machine: nodes on their own ports.

Each node is a PrivateBroker (its own node name, AMQP and distribution ports,
data directory); the second and third join the first. The nodes share the
Erlang cookie of the user running the tests, as nodes of one cluster must.
"""

import concurrent.futures
import os
import signal
from pathlib import Path

from compute_endpoint.procs import pid_alive

from .broker import wait_for
from .private_broker import PrivateBroker

BASE_PORT = 5691


class RabbitCluster:
    def __init__(self, directory: Path, size: int = 3):
        self.nodes = [PrivateBroker(directory / f"n{i}", port=BASE_PORT + i, dist_port=25691 + i,
                                    name=f"cecluster{i}") for i in range(size)]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """Every node's URL, separated by commas (as COMPUTE_BROKER_URL and broker.url take them)."""
        return ",".join(self.urls)

    def start(self) -> None:
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.start(), self.nodes))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.stop_app()
            node.ctl("join_cluster", first.node)
            node.start_app()
        wait_for(lambda: self.running_nodes() == len(self.nodes), timeout=60, what="every node in the cluster")

    def running_nodes(self, via: PrivateBroker | None = None) -> int:
        done = (via or self.nodes[0]).ctl("eval", "length(rabbit_nodes:all_running()).", check=False)
        return int(done.stdout.strip() or 0) if done.returncode == 0 else 0

    def node_named(self, erlang_name: str) -> PrivateBroker:
        return next(node for node in self.nodes if node.node == erlang_name)

    def leader_of(self, queue: str, via: PrivateBroker | None = None) -> PrivateBroker:
        """The node that leads a quorum queue."""
        listing = (via or self.nodes[0]).ctl("list_queues", "name", "leader", "--no-table-headers").stdout
        for line in listing.splitlines():
            name, _, leader = line.partition("\t")
            if name == queue:
                return self.node_named(leader.strip())
        raise LookupError(f"no queue {queue} in {listing!r}")

    def queue_arguments(self, queue: str) -> str:
        listing = self.alive()[0].ctl("list_queues", "name", "type", "arguments", "--no-table-headers").stdout
        return next(line for line in listing.splitlines() if line.startswith(queue + "\t"))

    def alive(self) -> list[PrivateBroker]:
        return [node for node in self.nodes if node.pid() is not None]

    def kill(self, node: PrivateBroker) -> None:
        """Power the node off: SIGKILL its Erlang VM, no clean stop."""
        pid = node.pid()
        assert pid, f"{node.node} is not running"
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), timeout=10, what=f"{node.node} to die")

    def diagnose(self, queues: list[str]) -> str:
        """What the surviving nodes say about some quorum queues and their consumers, for a failed test."""
        via = self.alive()[0]
        parts = [via.ctl("list_queues", "name", "leader", "members", "messages_ready", "messages_unacknowledged",
                         "consumers", check=False).stdout,
                 via.ctl("list_consumers", "queue_name", "channel_pid", "ack_required", "prefetch_count", "active",
                         check=False).stdout]
        for queue in queues:
            done = via._run("rabbitmq-queues", "-n", via.node, "quorum_status", queue, check=False)
            parts.append(f"quorum_status {queue}:\n{done.stdout}{done.stderr}")
        return "\n".join(parts)

    def destroy(self) -> None:
        """Stop every node and delete its data; CE_KEEP_CLUSTER=1 keeps the logs and data to read."""
        for node in self.nodes:
            node.shutdown() if os.environ.get("CE_KEEP_CLUSTER") else node.destroy()

