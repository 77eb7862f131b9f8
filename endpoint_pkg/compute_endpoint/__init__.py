"""Compute endpoint: run Python functions received over RabbitMQ on local workers."""

from ._version import __version__

__all__ = ["__version__"]
