"""Fixtures that several integration test modules share."""

import os
import subprocess
from pathlib import Path

import pytest
import zmq

SLURM_SCRIPT = Path(__file__).parents[2] / "scripts" / "single-node-slurm.sh"
IMAGE_SCRIPT = Path(__file__).parents[2] / "scripts" / "worker-image.sh"
IMAGE_PYTHON = "/opt/compute-endpoint/bin/python3"  # where worker-image.sh installs the package


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


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """The worker image, as a podman image name and as the directory Charliecloud runs."""
    env = {**os.environ, "PYTHON": str(Path(__file__).parents[2] / ".venv" / "bin" / "python")}
    built = subprocess.run([IMAGE_SCRIPT, "--podman"], capture_output=True, text=True, timeout=1800, env=env)
    if built.returncode != 0:
        pytest.fail(f"could not build the worker image: {built.stderr[-3000:]}")
    directory = subprocess.run([IMAGE_SCRIPT], capture_output=True, text=True, timeout=600, env=env, check=True)
    return {"podman": built.stdout.strip(), "charliecloud": directory.stdout.strip()}


@pytest.fixture
def interchange(tmp_path):
    """A stand-in interchange (a ZeroMQ ROUTER of the test's own) facing a real manager: (socket, address)."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    address = f"ipc://{tmp_path}/interchange.sock"
    sock.bind(address)
    yield sock, address
    ctx.destroy(linger=0)
