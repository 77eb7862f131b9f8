"""The package's version: its one source. pyproject.toml reads it (``dynamic``), so the installed
package metadata and ``compute_endpoint.__version__`` cannot disagree."""

__version__ = "0.1.0"
