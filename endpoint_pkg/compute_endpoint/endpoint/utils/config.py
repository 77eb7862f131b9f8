"""The seed documentation's import path for ``Config``."""

from ...config import Config, Engine, GlobusComputeEngine, HighThroughputEngine, LocalProvider

__all__ = ["Config", "Engine", "GlobusComputeEngine", "HighThroughputEngine", "LocalProvider"]
