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


def where_am_i():
    """What only the inside of the worker image has: its marker file, podman's /run/.containerenv, its Python."""
    import os
    import sys
    with open("/etc/compute-endpoint-image") as marker:
        image = marker.read().strip()
    return {"image": image, "containerenv": os.path.exists("/run/.containerenv"), "python": sys.executable,
            "pid1": open("/proc/1/cmdline", "rb").read().split(b"\0")[0].decode()}
