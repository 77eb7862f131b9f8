"""A per-user endpoint's files are its user's alone, whatever the umask: directories 0700, files 0600."""

import os
import stat

import pytest


def exposed(root) -> list[str]:
    """Everything under ``root`` that another user could read or enter."""
    found = []
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if stat.S_ISSOCK(info.st_mode):
                continue  # in the 0700 socket directory (test_local_sockets)
            if info.st_mode & 0o077:
                found.append(f"{stat.filemode(info.st_mode)} {path}")
    return found


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)  # what most users have: new files 0644, directories 0755
    yield
    os.umask(old)


def test_configure_login_and_start_leave_nothing_readable_by_others(endpoint_factory, loose_umask):
    ep = endpoint_factory(start=False)
    done = ep.cli("login", ep.name, "--client-id", ep.identity.client_id, input=ep.identity.secret + "\n")
    assert done.returncode == 0, done.stderr
    ep.start()
    with ep.executor() as ex:
        assert ex.submit(print, "worker output").result(timeout=30) is None
    assert (ep.dir / "logs" / "endpoint.log").exists() and (ep.dir / "endpoint.json").exists()
    assert stat.S_IMODE(ep.home.stat().st_mode) == 0o700
    assert exposed(ep.home) == []


def test_an_endpoint_made_by_an_older_version_is_tightened_at_start(endpoint_factory, loose_umask):
    ep = endpoint_factory(start=False)
    ep.dir.chmod(0o755)
    ep.start()
    assert stat.S_IMODE(ep.dir.stat().st_mode) == 0o700
