"""Run functions on an endpoint from the controller through the SDK; print which hosts ran them.

    run_functions.py --broker-url URL --endpoint-id ID --owner NAME [--tls-ca FILE]
                     [--tasks N] [--seconds S] [--pace P] [--output FILE]

The identity comes from COMPUTE_CLIENT_ID / COMPUTE_CLIENT_SECRET. Prints (and
writes to --output) JSON: tasks, results, correct, hosts {hostname: count}, users (who the workers ran as).
"""

import argparse
import collections
import json
import sys
import time

from compute_endpoint.sdk import Executor


def where(index: int, seconds: float):
    import getpass
    import socket
    import time

    time.sleep(seconds)
    return index, socket.gethostname(), getpass.getuser()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker-url", required=True)
    parser.add_argument("--endpoint-id", required=True)
    parser.add_argument("--owner", required=True)
    parser.add_argument("--tls-ca", default=None)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=0.05, help="how long each task runs")
    parser.add_argument("--pace", type=float, default=0.0, help="seconds between submissions")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    with Executor(endpoint_id=args.endpoint_id, broker_url=args.broker_url, endpoint_owner=args.owner,
                  tls_ca=args.tls_ca) as ex:
        futures = []
        for index in range(args.tasks):
            futures.append(ex.submit(where, index, args.seconds))
            if args.pace:
                time.sleep(args.pace)
        results = [f.result(timeout=900) for f in futures]
        duplicates = ex.duplicates_dropped
    report = {
        "tasks": args.tasks,
        "results": len(results),
        "correct": [index for index, _, _ in results] == list(range(args.tasks)),
        "hosts": dict(collections.Counter(host for _, host, _ in results)),
        "users": sorted({user for _, _, user in results}),
        "duplicates_dropped": duplicates,
    }
    text = json.dumps(report, sort_keys=True)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text)
    print(text)
    return 0 if report["correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
