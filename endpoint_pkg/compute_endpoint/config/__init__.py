"""Endpoint configuration: ``Config`` objects and the config.yaml / config.py loader."""

from .fields import ConfigError
from .loader import load_config, load_yaml_text
from .metrics import MetricsConfig
from .model import Broker, Config, Engine, LocalProvider, Strategy

# Upstream names, so configs written for Globus Compute read naturally.
GlobusComputeEngine = Engine
HighThroughputEngine = Engine
UserEndpointConfig = Config

__all__ = [
    "Broker", "Config", "ConfigError", "Engine", "GlobusComputeEngine", "HighThroughputEngine",
    "LocalProvider", "MetricsConfig", "Strategy", "UserEndpointConfig", "load_config", "load_yaml_text",
]
