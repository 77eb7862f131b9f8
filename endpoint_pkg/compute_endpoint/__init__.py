"""Compute endpoint: run Python functions received over RabbitMQ on local workers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("compute-endpoint")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
