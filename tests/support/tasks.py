"""Functions the tests submit. They travel by value (see conftest.py), so they import what they use."""


def nap(seconds: float, value):
    """Sleep, then return ``value``: a task that holds a worker for a known time."""
    import time

    time.sleep(seconds)
    return value
