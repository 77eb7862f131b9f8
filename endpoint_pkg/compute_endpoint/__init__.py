"""Compute endpoint: run Python functions received over RabbitMQ on local workers."""

__version__ = "0.1.0"
