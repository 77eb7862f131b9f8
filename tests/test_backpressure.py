"""Flow control: however deep the task queue, the endpoint holds only what its workers can take."""

from .broker import queue_depth, wait_for


def noop(i):
    return i


def test_a_deep_queue_is_drawn_down_a_prefetch_window_at_a_time(endpoint):
    tasks_queue = endpoint.status()["queues"]["tasks"]
    endpoint.stop()
    with endpoint.executor() as ex:
        futures = [ex.submit(noop, i) for i in range(3000)]
        wait_for(lambda: queue_depth(tasks_queue) == 3000, what="3000 tasks queued on the broker")
        endpoint.start()
        held = []
        while not all(f.done() for f in futures[-100:]):
            status = endpoint.status()
            held.append((status["tasks_outstanding"], status["tasks_queued_in_interchange"], status["workers"]))
        assert [f.result(timeout=120) for f in futures] == list(range(3000))
    capacity = 2  # max_workers_per_node in the test config, one manager
    assert max(outstanding for outstanding, _, _ in held) <= 2 * capacity, held
    assert max(queued for _, queued, _ in held) <= 2 * capacity, held
    assert len(held) >= 3, "sampled while the queue drained"
