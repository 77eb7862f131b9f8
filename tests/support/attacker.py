"""Another local user, as an attacker on the endpoint's host: code run as ``nobody``.

It uses Debian's python3.11 with the project's venv on its path, since the
venv's interpreter lives under /root, which other users cannot enter.
"""

import contextlib
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

from . import REPO

SYSTEM_PYTHON = "/usr/bin/python3.11"


def run_as_nobody(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    site = sysconfig.get_paths()["purelib"]
    path = f"{REPO / 'endpoint_pkg'}:{site}"
    return subprocess.run(["runuser", "-u", "nobody", "--", "env", f"PYTHONPATH={path}", SYSTEM_PYTHON, "-c", code],
                          capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def world_traversable_home():
    """A home any user may enter (0755, in /var/tmp), so that only the endpoint's own file modes stand in the way."""
    home = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="ce-home-"))
    home.chmod(0o755)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)
