"""Flow control: however deep the task queue, the endpoint holds only a window sized by its workers."""

import itertools
import time

from compute_endpoint.sdk.session import BUNDLE_MAX_ITEMS

from ..support.broker import queue_depth, wait_for


def short(i):
    import time

    time.sleep(0.002)  # long enough for the status to be sampled while 3000 of them drain
    return i


def test_a_deep_queue_is_drawn_down_a_prefetch_window_at_a_time(endpoint):
    tasks_queue = endpoint.status()["queues"]["tasks"]
    endpoint.stop()
    with endpoint.executor() as ex:
        futures = [ex.submit(short, i) for i in range(3000)]
        wait_for(lambda: ex.unconfirmed == 0, what="3000 tasks confirmed by the broker")
        assert queue_depth(tasks_queue) > 0
        endpoint.start()
        held = []
        client = endpoint.client()  # asked in-process: a CLI per sample is too slow to see the window under load
        while not all(f.done() for f in futures[-100:]):
            status = client.send_command(endpoint.endpoint_id, "status", timeout=10).data
            held.append((status["tasks_outstanding"], status["tasks_queued_in_interchange"], status["capacity"]))
        assert [f.result(timeout=120) for f in futures] == list(range(3000))
    # The broker hands the endpoint at most 2 x capacity deliveries at a time,
    # each one task or a bundle of at most BUNDLE_MAX_ITEMS.
    capacity = max(c for _, _, c in held)
    assert capacity == 4, "2 workers + 2 queued at the manager"
    window = 2 * capacity * BUNDLE_MAX_ITEMS
    assert max(outstanding for outstanding, _, _ in held) <= window, held
    assert max(queued for _, queued, _ in held) <= window, held
    assert len(held) >= 3, "sampled while the queue drained"


def test_unconfirmed_falls_to_zero_only_once_the_broker_holds_every_task(endpoint):
    # Regression: the count once read 0 while a batch moved from the outbox to the
    # in-flight publishes, so a caller waiting for 0 went on with tasks still unsent.
    endpoint.stop()
    with endpoint.executor() as ex:
        futures = [ex.submit(short, i) for i in range(3000)]
        seen = [ex.unconfirmed]
        deadline = time.monotonic() + 60
        while seen[-1] and time.monotonic() < deadline:  # no sleep: the gap was microseconds wide
            seen.append(ex.unconfirmed)
        seen.extend(ex.unconfirmed for _ in range(20000))
        endpoint.start()
        assert [f.result(timeout=120) for f in futures] == list(range(3000))
    assert seen[0] > 0
    assert all(a >= b for a, b in itertools.pairwise(seen)), "the count went back up after falling"
