"""Functions the tests submit. They travel by value (see conftest.py), so they import what they use."""


def nap(seconds: float, value):
    """Sleep, then return ``value``: a task that holds a worker for a known time."""
    import time

    time.sleep(seconds)
    return value


def netns_and_nap(seconds: float, value):
    """Sleep, then say which network namespace ran it (tests whose managers live in one of their own)."""
    import os
    import time

    time.sleep(seconds)
    return os.stat("/proc/self/ns/net").st_ino, value
