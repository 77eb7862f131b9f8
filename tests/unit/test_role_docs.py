"""The roles' READMEs are generated from their contract (scripts/role_docs.py) and must not drift from it."""

import shutil
import subprocess
import sys

from ..support import REPO

SCRIPT = REPO / "scripts" / "role_docs.py"


def role_docs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_every_role_readme_matches_its_argument_specs_and_meta():
    done = role_docs("--check")
    assert done.returncode == 0, done.stderr


def test_a_variable_added_to_the_contract_makes_the_check_name_the_stale_readme(tmp_path):
    roles = tmp_path / "roles"
    shutil.copytree(REPO / "roles" / "compute_manager", roles / "compute_manager")
    specs = roles / "compute_manager" / "meta" / "argument_specs.yml"
    specs.write_text(specs.read_text() + "      compute_manager_new_knob:\n        type: bool\n"
                     "        default: false\n        description: A setting the README does not know yet.\n")

    done = role_docs("--check", "--roles-dir", str(roles))
    assert done.returncode == 1
    assert "compute_manager/README.md is stale" in done.stderr

    assert role_docs("--roles-dir", str(roles)).returncode == 0
    assert "`compute_manager_new_knob`" in (roles / "compute_manager" / "README.md").read_text()
    assert role_docs("--check", "--roles-dir", str(roles)).returncode == 0


def test_a_role_without_host_changes_is_refused(tmp_path):
    roles = tmp_path / "roles"
    shutil.copytree(REPO / "roles" / "compute_manager", roles / "compute_manager")
    (roles / "compute_manager" / "meta" / "host_changes.md").unlink()

    done = role_docs("--check", "--roles-dir", str(roles))
    assert done.returncode == 1
    assert "host_changes.md is missing" in done.stderr
