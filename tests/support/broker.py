"""Test-side administration of the real RabbitMQ broker (through rabbitmqctl)."""

import os
import secrets
import socket
import subprocess
import time

import pika

from compute_endpoint.protocol.broker_names import RESULT_EXCHANGE, TASK_EXCHANGE, broker_permissions
from compute_endpoint.sdk.client import Client

BROKER_URL = os.environ.get("COMPUTE_TEST_BROKER_URL", "amqp://127.0.0.1:5672/%2F")
ADMIN = ("guest", "guest")  # loopback-only administrator of a stock RabbitMQ


def rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, check=check, timeout=60)


def broker_reachable(host: str = "127.0.0.1", port: int = 5672) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def admin_channel():
    params = pika.URLParameters(BROKER_URL)
    params.credentials = pika.PlainCredentials(*ADMIN)
    return pika.BlockingConnection(params)


def ensure_shared_exchanges() -> None:
    """Create ce.tasks and ce.results as an administrator would (restricted users cannot)."""
    with admin_channel() as conn:
        channel = conn.channel()
        channel.exchange_declare(TASK_EXCHANGE, "topic", durable=True)
        channel.exchange_declare(RESULT_EXCHANGE, "topic", durable=True)


def create_identity(name: str, submit_to: tuple | list = (), submitters: tuple | list = ()) -> str:
    """A broker user with exactly the grants the README prescribes; returns its password."""
    password = secrets.token_hex(18)
    rabbitmqctl("delete_user", name, check=False)
    rabbitmqctl("add_user", name, password)
    grants = broker_permissions(name, submit_to, submitters)
    rabbitmqctl("set_permissions", "-p", "/", name, grants["configure"], grants["write"], grants["read"])
    for exchange, topic in grants["topic"].items():
        rabbitmqctl("set_topic_permissions", "-p", "/", name, exchange, topic["write"], topic["read"])
    return password


def delete_identity(name: str) -> None:
    rabbitmqctl("delete_user", name, check=False)


def delete_queues_of(owner: str) -> None:
    listing = rabbitmqctl("list_queues", "name", check=False).stdout.split()
    for queue in listing:
        if queue.startswith(f"ce.{owner}."):
            rabbitmqctl("delete_queue", queue, check=False)


def queue_count(queue: str, column: str) -> int | None:
    """A count rabbitmqctl lists for a queue (``messages``, ``consumers``, ...); None if there is no such queue."""
    for line in rabbitmqctl("list_queues", "name", column, check=False).stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == queue:
            return int(parts[1])
    return None


def queue_depth(queue: str) -> int | None:
    """Messages ready in a queue, as its leader counts them now; None if there is no such queue.

    (Asked over AMQP: `rabbitmqctl list_queues messages` shows a quorum queue's
    counters as last sampled, seconds old.)
    """
    return Client(BROKER_URL, *ADMIN).queue_depths([queue])[queue]


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
