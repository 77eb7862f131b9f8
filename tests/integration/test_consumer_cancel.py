"""A queue deleted under its consumer: RabbitMQ cancels the consumer (as it does when a replicated
queue moves to another node). The endpoint and the SDK declare the queue again and go on consuming."""

from compute_endpoint.protocol.broker_names import EndpointNames

from ..support.broker import queue_count, rabbitmqctl, wait_for


def consumers_of(queue: str) -> int | None:
    return queue_count(queue, "consumers")


def test_the_endpoint_consumes_again_after_its_task_queue_is_deleted(endpoint):
    names = EndpointNames(endpoint.identity.client_id, endpoint.endpoint_id)
    with endpoint.executor() as ex:
        assert ex.submit(pow, 2, 3).result(timeout=60) == 8
        rabbitmqctl("delete_queue", names.tasks_queue)
        wait_for(lambda: consumers_of(names.tasks_queue) == 1, what="the task queue declared and consumed again")
        assert ex.submit(pow, 2, 4).result(timeout=60) == 16
    assert "declaring it again" in (endpoint.dir / "logs" / "endpoint.log").read_text()


def test_the_endpoint_answers_commands_again_after_its_command_queue_is_deleted(endpoint):
    names = EndpointNames(endpoint.identity.client_id, endpoint.endpoint_id)
    rabbitmqctl("delete_queue", names.commands_queue)
    wait_for(lambda: consumers_of(names.commands_queue) == 1, what="the command queue declared and consumed again")
    assert endpoint.status()["state"] == "Running"


def test_an_executor_that_shuts_down_removes_its_result_queue_for_good(endpoint):
    with endpoint.executor() as ex:
        assert ex.submit(pow, 2, 2).result(timeout=60) == 4
        queue = ex._session.reply.queue
    assert consumers_of(queue) is None, "deleting it on shutdown is not taken for a queue to declare again"


def test_the_sdk_receives_results_again_after_its_result_queue_is_deleted(endpoint):
    with endpoint.executor() as ex:
        assert ex.submit(pow, 3, 2).result(timeout=60) == 9
        queue = ex._session.reply.queue
        rabbitmqctl("delete_queue", queue)
        wait_for(lambda: consumers_of(queue) == 1, what="the result queue declared and consumed again")
        assert ex.submit(pow, 3, 3).result(timeout=60) == 27
