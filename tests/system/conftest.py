"""Fixtures of the system tests: a second 'host' in a network namespace."""

import pytest

from ..support.netns import NetnsHost


@pytest.fixture
def remote_host():
    host = NetnsHost(index=1).create()
    yield host
    host.destroy()
