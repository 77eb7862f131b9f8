"""Managers: a pool of worker processes fed by the interchange."""
