"""How `compute-endpoint status` names the broker link for people."""

from compute_endpoint.cli.output import _broker_line, migration_table
from compute_endpoint.endpoint.queue_migration import Moved


def test_the_broker_line_names_the_node_in_use_among_the_cluster_and_the_queue_types():
    three = {"url": ["a", "b", "c"], "connected": True, "node": "127.0.0.1:5691", "nodes": ["a", "b", "c"],
             "cluster": "rabbit@q1", "queue_types": {"tasks": "quorum", "dead": "quorum"}}
    assert _broker_line(three) == "127.0.0.1:5691 (connected to 1 of 3 nodes of cluster rabbit@q1; quorum queues)"
    one = {"url": "amqp://x", "connected": True, "node": "127.0.0.1:5672", "nodes": ["x"], "cluster": "rabbit@vm",
           "queue_types": {"tasks": "classic", "dead": "quorum"}}
    assert _broker_line(one) == "127.0.0.1:5672 (connected to rabbit@vm; classic and quorum queues)"
    assert _broker_line({"url": "amqp://x", "connected": False}) == "amqp://x (reconnecting)"


def test_the_migration_table_says_what_moved_and_what_was_already_as_configured():
    table = migration_table([Moved("tasks", "ce.a.1.tasks", "quorum", 7), Moved("dead", "ce.a.1.dead", "quorum", None)])
    cells = [list(column.cells) for column in table.columns]
    assert cells == [["tasks", "dead"], ["ce.a.1.tasks", "ce.a.1.dead"], ["quorum", "quorum"],
                     ["7", "already as configured"]]
