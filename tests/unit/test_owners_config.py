"""Root acting for a user (`sudo -E compute-endpoint enable-on-boot`, `start`, `status`) runs the user's config.py
with the user's rights, never root's."""

import os
import pwd

import pytest

from compute_endpoint.control import owners_config
from compute_endpoint.errors import EndpointError
from compute_endpoint.paths import EndpointHome

from ..support.attacker import world_traversable_home

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="acting for another user needs root")

CONFIG_PY = """\
import os
from compute_endpoint.config import Config
with open(os.path.join(os.path.dirname(__file__), "loaded-by"), "w") as record:
    record.write(str(os.getuid()))
config = Config(stop_timeout=42)
"""


def test_a_users_config_py_runs_as_the_user_when_root_reads_it():
    nobody = pwd.getpwnam("nobody")
    with world_traversable_home() as root:
        ep = EndpointHome(root, root).endpoint("mine")
        ep.config_dir.mkdir()
        (ep.config_dir / "config.py").write_text(CONFIG_PY)
        for path in (ep.config_dir, ep.config_dir / "config.py"):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        assert owners_config(ep, lambda config: config.stop_timeout) == 42
        assert (ep.config_dir / "loaded-by").read_text() == str(nobody.pw_uid)
        (ep.config_dir / "config.py").write_text("open('/etc/shadow').read()\n")
        with pytest.raises(EndpointError, match="Permission denied: '/etc/shadow'"):
            owners_config(ep, lambda config: None)
