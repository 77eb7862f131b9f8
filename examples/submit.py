"""Submit a few functions to an endpoint and print what comes back.

    python examples/submit.py ENDPOINT_ID

Identity comes from COMPUTE_CLIENT_ID / COMPUTE_CLIENT_SECRET, the broker from
COMPUTE_BROKER_URL (default amqp://127.0.0.1:5672/%2F).
"""

import platform
import sys
import time

from compute_endpoint.sdk import Executor, WorkerDiedError


def where_am_i():
    import os
    import socket

    return f"{socket.gethostname()} pid {os.getpid()}"


def fails():
    return 1 / 0


def crash():
    import os

    os._exit(1)


def main(endpoint_id: str) -> None:
    with Executor(endpoint_id=endpoint_id) as ex:
        print(f"2 ** 100           = {ex.submit(pow, 2, 100).result()}")
        print(f"runs on            : {ex.submit(where_am_i).result()}")
        print(f"python there       : {ex.submit(platform.python_version).result()}")
        squares = list(ex.map(lambda x: x * x, range(10)))
        print(f"map squares        = {squares}")
        started = time.perf_counter()
        futures = [ex.submit(abs, -i) for i in range(1000)]
        total = sum(f.result() for f in futures)
        print(f"1000 tasks         : sum {total} in {time.perf_counter() - started:.2f} s")
        try:
            ex.submit(fails).result()
        except ZeroDivisionError as exc:
            print(f"remote exception   : ZeroDivisionError({exc}) raised here, remote traceback attached")
        try:
            ex.submit(crash).result()
        except WorkerDiedError as exc:
            print(f"worker crash       : {exc}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
