"""The SDK's Client: endpoint status as a remote user sees it, and unknown endpoints."""

import os
import signal
import uuid

import pytest

from compute_endpoint.sdk import Executor, UnknownEndpointError

from ..support.broker import wait_for


def test_status_is_online_then_offline_after_stop(endpoint):
    client = endpoint.client()
    status = client.get_endpoint_status(endpoint.endpoint_id)
    assert status["status"] == "online"
    assert status["name"] == "default" and status["workers"] in (0, 2)
    endpoint.stop()
    assert client.get_endpoint_status(endpoint.endpoint_id)["status"] == "offline"


def test_status_turns_disconnected_when_reports_stop(endpoint):
    client = endpoint.client()
    os.kill(endpoint.components()["endpoint"], signal.SIGKILL)
    # heartbeat_threshold is 6s in the test config
    wait_for(lambda: client.get_endpoint_status(endpoint.endpoint_id)["status"] == "disconnected",
             timeout=20, interval=0.5, what="the status to turn disconnected")


def test_an_unknown_endpoint_is_a_clear_error(endpoint):
    missing = str(uuid.uuid4())
    with pytest.raises(UnknownEndpointError, match=f"no endpoint {missing} owned by"):
        endpoint.client().get_endpoint_status(missing)
    with pytest.raises(UnknownEndpointError, match="start the endpoint once"):
        Executor(endpoint_id=missing, broker_url=endpoint.broker_url, client_id=endpoint.identity.client_id,
                 client_secret=endpoint.identity.secret)


def test_status_command_answers_through_the_command_queue(endpoint):
    reply = endpoint.client().send_command(endpoint.endpoint_id, "status", timeout=10)
    assert reply.ok and reply.data["endpoint_id"] == endpoint.endpoint_id
    bad = endpoint.client().send_command(endpoint.endpoint_id, "dance", timeout=10)
    assert not bad.ok and "'action' must be one of 'status', 'shutdown', 'drain', got 'dance'" in bad.message


def test_shutdown_command_stops_the_endpoint_cleanly(endpoint):
    reply = endpoint.client().send_command(endpoint.endpoint_id, "shutdown", timeout=10)
    assert reply.ok
    wait_for(lambda: endpoint.state() == "Stopped", timeout=30, what="the endpoint to stop")


def test_an_internal_error_in_the_sdks_broker_thread_fails_the_futures_instead_of_leaving_them_waiting(endpoint):
    from ..support.tasks import nap

    with endpoint.executor() as ex:
        session = ex._session
        session.publish = lambda *_args: None  # the task never leaves: only the crash can settle its future
        future = ex.submit(nap, 0.01, 1)

        def crash():
            raise RuntimeError("a bug in the session thread")

        session._ioloop.add_callback_threadsafe(crash)
        with pytest.raises(Exception, match="broker session stopped on an internal error: RuntimeError: a bug"):
            future.result(timeout=10)
