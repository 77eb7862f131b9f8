"""A three-node RabbitMQ cluster on this machine: the endpoint and the SDK move to another node when the one
they use dies, with every task done once; the endpoint's queues are quorum queues, and a task delivered more
often than the delivery limit is dead-lettered with its reason instead of coming back for ever."""

import threading
import time

import pika
import pytest

from ..support.broker import wait_for
from ..support.rabbit_cluster import RabbitCluster
from ..support.tasks import nap


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, broker):
    nodes = RabbitCluster(tmp_path_factory.mktemp("cluster"))
    try:
        nodes.start()
        # A node just joined may take a moment to serve AMQP: the first connection is retried.
        wait_for(lambda: _declared(nodes.nodes[0]), timeout=60, what="the shared exchanges on the cluster")
        nodes.identity = nodes.nodes[0].add_identity_random()  # users and grants are the cluster's
        yield nodes
    finally:
        nodes.destroy()


def _declared(node) -> bool:
    try:
        node.declare_exchanges()
    except pika.exceptions.AMQPConnectionError:
        return False
    return True


@pytest.fixture
def cluster_endpoint_factory(tmp_path, cluster):
    from ..conftest import _endpoints

    yield from _endpoints(tmp_path / "home", cluster.identity, cluster.url)


def _stream(ex, count: int, per_second: float) -> tuple[list, list[float]]:
    """Submit ``count`` short tasks at a steady rate from a thread; futures, and each result's arrival time."""
    futures: list = []
    arrivals: list[float] = []

    def submit():
        for i in range(count):
            future = ex.submit(nap, 0.01, i)
            future.add_done_callback(lambda _f: arrivals.append(time.monotonic()))
            futures.append(future)
            time.sleep(1 / per_second)

    threading.Thread(target=submit, daemon=True).start()
    return futures, arrivals


def test_endpoint_and_sdk_move_to_another_node_when_the_leader_dies_and_every_task_is_done_once(
        cluster_endpoint_factory, cluster):
    ep = cluster_endpoint_factory(config={"broker": {"heartbeat": 5}})
    status = ep.status()["broker"]
    assert status["queue_types"] == dict.fromkeys(["tasks", "commands", "status", "dead"], "quorum")
    assert "x-delivery-limit" in cluster.queue_arguments(ep.names.tasks_queue)
    leader = cluster.leader_of(ep.names.tasks_queue)
    assert status["node"] == f"127.0.0.1:{leader.port}", "the queue is led where the endpoint declared it"
    count = 400
    with ep.executor() as ex:
        assert ex.broker_node == status["node"]
        futures, arrivals = _stream(ex, count, per_second=40)
        wait_for(lambda: len(arrivals) >= 80, timeout=60, what="results before the kill")
        killed_at = time.monotonic()
        cluster.kill(leader)
        wait_for(lambda: len(futures) == count, timeout=60, what="every task submitted")
        try:
            results = [f.result(timeout=180) for f in futures]
        except TimeoutError:
            print(cluster.diagnose([ep.names.tasks_queue, ep.names.commands_queue]))
            raise
        assert results == list(range(count)), "every task's result, once, in its own future"
        after = [t - killed_at for t in sorted(arrivals) if t > killed_at]
        print(f"\nfailover: first result {after[0]:.2f}s after the leader node was killed; "
              f"{ex.duplicates_dropped} duplicate results dropped by the SDK; {ex.broker_reconnects} reconnects")
        assert ex.broker_reconnects >= 1 and ex.broker_node != status["node"]
    moved = ep.status()["broker"]
    assert moved["connected"] and moved["node"] != status["node"] and moved["connections"] >= 2
    leader.boot()  # the node comes back and rejoins: the next test has the whole cluster
    wait_for(lambda: cluster.running_nodes(cluster.alive()[0]) == 3, timeout=90, what="the node to rejoin")


def test_a_task_delivered_more_often_than_the_delivery_limit_is_dead_lettered_with_its_reason(
        cluster_endpoint_factory, cluster):
    """A poison task (one whose delivery keeps killing its consumer) stops coming back after the limit."""
    ep = cluster_endpoint_factory(config={"broker": {"delivery_limit": 2}})
    ep.stop()
    node = cluster.alive()[0]
    params = pika.URLParameters(node.url)
    params.credentials = pika.PlainCredentials(cluster.identity.client_id, cluster.identity.secret)
    with pika.BlockingConnection(params) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish("ce.tasks", ep.names.tasks_key, b"poison", pika.BasicProperties(
            message_id="poison-1", delivery_mode=2, user_id=cluster.identity.client_id), mandatory=True)
        deliveries = 0
        for _ in range(6):  # each consumer dies holding the task: it goes back, counted
            consumer = conn.channel()
            method, _props, _body = consumer.basic_get(ep.names.tasks_queue)
            if method is None:
                break
            deliveries += 1
            consumer.close()
        assert deliveries == 3, "delivered once, then again up to the limit of 2 redeliveries"
        method, props, body = channel.basic_get(ep.names.dead_queue, auto_ack=True)
    assert body == b"poison" and props.message_id == "poison-1"
    assert props.headers["x-first-death-reason"] == "delivery_limit"
    assert props.headers["x-first-death-queue"] == ep.names.tasks_queue
    assert props.user_id == cluster.identity.client_id, "the sender stays known"
