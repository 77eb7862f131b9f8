"""RabbitMQ restarted under load, and down at start: endpoint and SDK reconnect; nothing is lost.
And a result the broker refuses does not send the endpoint round a reconnect loop.

These run against a private RabbitMQ node (tests/private_broker.py) so that
stopping it, or changing its settings, cannot disturb the broker the rest of the suite uses.
"""

import time

import pytest

from compute_endpoint.sdk import ResultUndeliverableError

from ..support.broker import wait_for
from ..support.tasks import nap


def _run_with_outage(ep, outage, count: int = 1000):
    with ep.executor() as ex:
        futures = [ex.submit(nap, 0.002, i) for i in range(count)]
        wait_for(lambda: sum(f.done() for f in futures) >= count // 4, timeout=120, what="a quarter of the results")
        outage()
        results = [f.result(timeout=240) for f in futures]
    assert results == list(range(count))
    return ex


def test_rabbitmq_stop_app_start_app_during_a_run(private_endpoint_factory, private_broker):
    ep = private_endpoint_factory()

    def outage():
        private_broker.stop_app()
        time.sleep(3)
        private_broker.start_app()

    _run_with_outage(ep, outage)
    assert ep.status()["broker"]["connected"] is True


def test_rabbitmq_full_restart_during_a_run(private_endpoint_factory, private_broker):
    ep = private_endpoint_factory()

    def outage():
        private_broker.shutdown()
        time.sleep(2)
        private_broker.boot()

    _run_with_outage(ep, outage)
    # The results may all have been published before the outage: the endpoint reconnects at its next attempt.
    wait_for(lambda: "reconnected to the broker" in (ep.dir / "logs" / "endpoint.log").read_text(), timeout=60,
             what="the endpoint to reconnect")


def test_broker_down_at_start_gives_a_clear_error_and_keeps_retrying(private_endpoint_factory, private_broker):
    ep = private_endpoint_factory(start=False)
    private_broker.shutdown()
    try:
        done = ep.cli("start", "default", "--timeout", "6")
        assert done.returncode == 69  # EX_UNAVAILABLE; the daemon keeps trying
        assert "cannot reach the broker at 127.0.0.1:5679" in done.stderr
        assert "keeps trying in the background" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        private_broker.boot()
    # once the broker is back, the endpoint registers by itself and serves
    wait_for(lambda: ep.info().get("endpoint_id"), timeout=120, what="the endpoint to register")
    with ep.executor() as ex:
        assert ex.submit(nap, 0, "served").result(timeout=60) == "served"


def test_a_result_larger_than_the_broker_takes_fails_once_and_the_endpoint_serves_on(private_endpoint_factory,
                                                                                       private_broker):
    """RabbitMQ refuses a message over max_message_size by closing the channel (406): republished after every
    reconnect, one such result would stop the endpoint serving anyone."""
    private_broker.ctl("eval", "application:set_env(rabbit, max_message_size, 1048576).")
    try:
        ep = private_endpoint_factory(config={"max_payload_bytes": 8 * 2**20})
        with ep.executor() as ex:
            big = ex.submit(bytes, 2 * 2**20)
            small = [ex.submit(pow, 2, n) for n in range(20)]
            with pytest.raises(ResultUndeliverableError, match="refused its result 3 times .* larger than"):
                big.result(timeout=120)
            assert [f.result(timeout=60) for f in small] == [2**n for n in range(20)]
            assert ex.submit(len, "after").result(timeout=60) == 5
        assert ep.status()["state"] == "Running"
        time.sleep(3)  # would it go round again?
        reconnects = (ep.dir / "logs" / "endpoint.log").read_text().count("reconnected to the broker")
        assert reconnects <= 4, f"a bounded number of tries, not a loop ({reconnects} reconnects)"
    finally:
        private_broker.ctl("eval", "application:set_env(rabbit, max_message_size, 134217728).")
