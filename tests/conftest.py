"""Fixtures: the real RabbitMQ broker, restricted broker identities, and endpoints run by the real CLI."""

import secrets
import signal
import sys

import cloudpickle
import pytest

from compute_endpoint.procs import pid_alive, terminate

from .support.attacker import world_traversable_home
from .support.broker import (
    BROKER_URL,
    broker_reachable,
    create_identity,
    delete_identity,
    delete_queues_of,
    ensure_shared_exchanges,
)
from .support.endpoints import EndpointUnderTest, Identity
from .support.private_broker import PrivateBroker

# Workers cannot import this test package, so functions defined in it travel by value,
# as functions defined in a user's __main__ script do.
cloudpickle.register_pickle_by_value(sys.modules[__package__])


@pytest.fixture(scope="session")
def broker():
    if not broker_reachable():
        pytest.exit("RabbitMQ is not reachable on 127.0.0.1:5672: run `make broker` (or `make test`)", returncode=3)
    ensure_shared_exchanges()


def _identity(prefix: str):
    name = f"{prefix}-{secrets.token_hex(3)}"
    identity = Identity(name, create_identity(name))
    yield identity
    delete_queues_of(name)
    delete_identity(name)


@pytest.fixture(scope="session")
def alice(broker):
    yield from _identity("alice")


@pytest.fixture(scope="session")
def bob(broker):
    yield from _identity("bob")


@pytest.fixture
def endpoint_factory(tmp_path, alice):
    """Make endpoints in a private home; whatever they started is stopped afterwards."""
    yield from _endpoints(tmp_path / "home", alice)


@pytest.fixture
def exposed_endpoint_factory(alice):
    """Endpoints in a home any local user may enter: only the endpoint's own file modes keep others out."""
    with world_traversable_home() as home:
        yield from _endpoints(home, alice)


def _endpoints(home, default_identity: Identity, broker_url: str = BROKER_URL):
    """Yield a maker of configured (and by default started) endpoints; stop them all when resumed."""
    made: list[EndpointUnderTest] = []

    def make(name: str = "default", config: dict | None = None, identity: Identity | None = None,
             start: bool = True) -> EndpointUnderTest:
        ep = EndpointUnderTest(home, name, identity or default_identity, broker_url=broker_url)
        ep.configure(config)
        made.append(ep)
        if start:
            ep.start()
        return ep

    yield make
    _stop_all(made)


def _stop_all(endpoints: list[EndpointUnderTest]) -> None:
    for ep in endpoints:
        leftovers = _recorded_pids(ep)
        ep.stop()
        terminate([p for p in leftovers if pid_alive(p)], 2.0, signal.SIGKILL)
        _delete_queues(ep)


def _delete_queues(ep: EndpointUnderTest) -> None:
    """Leave the broker as we found it: each quorum queue holds files and a Raft member, and a suite's worth of
    endpoints left behind would make the broker that the rest of the run shares ever slower."""
    try:
        endpoint_id = ep.info().get("endpoint_id")
        if endpoint_id:
            ep.client().delete_endpoint_queues(endpoint_id)
    except Exception:  # the broker may be down (tests stop it) or the identity gone: nothing to tidy then
        pass


def _recorded_pids(ep: EndpointUnderTest) -> list[int]:
    try:
        comp = ep.components()
    except (OSError, ValueError):
        return []
    return [p for p in [comp.get("endpoint"), comp.get("interchange"), *comp.get("managers", [])] if p]


@pytest.fixture
def endpoint(endpoint_factory) -> EndpointUnderTest:
    return endpoint_factory()


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory, broker):
    """A RabbitMQ node of our own (port 5679) that tests may stop and restart; with one identity."""
    node = PrivateBroker(tmp_path_factory.mktemp("rabbit"))
    node.start()
    node.declare_exchanges()
    node.identity = node.add_identity_random("carol")
    yield node
    node.destroy()


@pytest.fixture
def private_endpoint_factory(tmp_path, private_broker):
    """Endpoints on the private broker, stopped afterwards."""
    yield from _endpoints(tmp_path / "home", private_broker.identity, private_broker.url)
