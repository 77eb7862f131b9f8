"""What the tests stand on: the real broker, endpoints driven through the CLI, test hosts, test functions."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
