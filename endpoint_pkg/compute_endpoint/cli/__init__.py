"""The compute-endpoint command line."""
