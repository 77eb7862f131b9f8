"""Fixtures that several integration test modules share."""

import subprocess
from pathlib import Path

import pytest

SLURM_SCRIPT = Path(__file__).parents[2] / "scripts" / "single-node-slurm.sh"


@pytest.fixture(scope="module")
def slurm():
    """A one-node Slurm on this host (munged, slurmctld, slurmd), stopped afterwards if this started it."""
    was_up = subprocess.run([SLURM_SCRIPT, "status"], capture_output=True).returncode == 0
    done = subprocess.run([SLURM_SCRIPT, "up"], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"could not start Slurm: {done.stdout}\n{done.stderr}")
    yield
    if not was_up:
        subprocess.run([SLURM_SCRIPT, "down"], capture_output=True, timeout=120)
