"""Memory under a deep backlog: N tasks wait on the broker while the endpoint drains them.

    python bench/backpressure.py [--tasks 100000]

Queues the tasks while the endpoint is stopped, starts it, and samples the RSS
of the endpoint daemon, the interchange and the manager every few seconds until
the last result is back. Flow control (prefetch = 2 x worker capacity) should
keep those flat however deep the queue is.
"""

import argparse
import subprocess
import time

from common import BenchEndpoint, machine, rss_mib


def noop(i):
    return i


def queue_depth(queue: str) -> int:
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name", "messages"], capture_output=True, text=True,
                         timeout=60).stdout
    for line in out.splitlines():
        name, _, count = line.partition("\t")
        if name == queue:
            return int(count)
    return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    args = parser.parse_args()

    ep = BenchEndpoint("backpressure")
    ep.start()
    queue = f"ce.{ep.env['COMPUTE_CLIENT_ID']}.{ep.endpoint_id}.tasks"
    ep.stop()
    print(machine())
    try:
        with ep.executor() as ex:
            began = time.perf_counter()
            futures = [ex.submit(noop, i) for i in range(args.tasks)]
            while ex.unconfirmed:
                time.sleep(0.5)
            print(f"queued {args.tasks} tasks on the broker in {time.perf_counter() - began:.1f} s")
            ep.start()
            pids = ep.pids()
            print(f"{'t (s)':>6} {'messages':>8} {'done':>8} {'endpoint MiB':>13} {'interchange MiB':>16} "
                  f"{'manager MiB':>12}")
            began = time.perf_counter()
            samples = []
            while True:
                done = sum(f.done() for f in futures)
                sample = (time.perf_counter() - began, queue_depth(queue), done, rss_mib(pids.get("endpoint")),
                          rss_mib(pids.get("interchange")), rss_mib((pids.get("managers") or [None])[0]))
                samples.append(sample)
                print(f"{sample[0]:6.0f} {sample[1]:8d} {sample[2]:8d} {sample[3]:13.1f} {sample[4]:16.1f} "
                      f"{sample[5]:12.1f}", flush=True)
                if done == args.tasks:
                    break
                time.sleep(args.every)
            assert [f.result() for f in futures] == list(range(args.tasks))
        elapsed = time.perf_counter() - began
        for column, label in ((3, "endpoint"), (4, "interchange"), (5, "manager")):
            values = [s[column] for s in samples if s[column]]
            print(f"{label:>12}: RSS {min(values):.1f}-{max(values):.1f} MiB over the run")
        print(f"drained {args.tasks} tasks in {elapsed:.0f} s ({args.tasks / elapsed:.0f} tasks/s)")
    finally:
        ep.delete()


if __name__ == "__main__":
    main()
