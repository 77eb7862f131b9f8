"""A steady stream of tasks through a broker cluster, and what it saw while nodes failed.

    stream.py run --broker-url URL[,URL...] --endpoint-id ID --owner NAME --control DIR
                  [--tls-ca FILE] [--rate N] [--runs-file FILE] [--drain-seconds S]
    stream.py report --stream FILE --events FILE [--runs FILE]

`run` (on a host with the SDK; identity from COMPUTE_CLIENT_ID / COMPUTE_CLIENT_SECRET)
submits --rate tasks a second until DIR/stop appears, then waits for every
result. Meanwhile it keeps DIR/progress.json current (results so far, and the
submission time of the newest task whose result is back), and at the end writes
DIR/stream.json: per task its submission and result times, every error, what is
missing. Each task appends its index to --runs-file where it runs, so the
endpoint's side can be counted too.

`report` (anywhere) reads that, the events (lines "NAME EPOCH-SECONDS" written
by whoever made them happen), and optionally the runs file, and prints JSON:
whether every task resolved exactly once and correctly, how often tasks ran,
and around each event how long results stopped arriving.
"""

import argparse
import collections
import json
import os
import sys
import threading
import time


def square(index: int, runs_file: str) -> int:
    if runs_file:
        with open(runs_file, "a") as handle:
            handle.write(f"{index}\n")
    return index * index


def write_atomically(path: str, data: dict) -> None:
    with open(path + ".tmp", "w") as handle:
        json.dump(data, handle)
    os.replace(path + ".tmp", path)


def run(args: argparse.Namespace) -> int:
    from compute_endpoint.sdk import Executor

    submitted: list[float] = []
    arrived: dict[int, float] = {}
    outcome: dict[int, object] = {}
    callbacks = collections.Counter()
    lock = threading.Lock()
    newest_done = {"submitted_at": 0.0}

    def done(index: int, future) -> None:
        now = time.time()
        error = future.exception()
        with lock:
            callbacks[index] += 1
            arrived.setdefault(index, now)
            outcome[index] = repr(error) if error else future.result()
            newest_done["submitted_at"] = max(newest_done["submitted_at"], submitted[index])

    stop = os.path.join(args.control, "stop")
    progress = os.path.join(args.control, "progress.json")
    with Executor(endpoint_id=args.endpoint_id, broker_url=args.broker_url, endpoint_owner=args.owner,
                  tls_ca=args.tls_ca) as ex:
        futures = []
        start = time.time()
        last_report = 0.0
        while not os.path.exists(stop):
            due = start + len(futures) / args.rate
            now = time.time()
            if now < due:
                time.sleep(min(due - now, 0.05))
            else:
                with lock:
                    submitted.append(time.time())
                future = ex.submit(square, len(futures), args.runs_file)
                index = len(futures)
                futures.append(future)
                future.add_done_callback(lambda f, i=index: done(i, f))
            if time.time() - last_report > 0.5:
                last_report = time.time()
                with lock:
                    write_atomically(progress, {"submitted": len(futures), "results": len(arrived),
                                                "newest_done_submitted_at": newest_done["submitted_at"],
                                                "broker_node": ex.broker_node, "reconnects": ex.broker_reconnects,
                                                "time": last_report})
        deadline = time.time() + args.drain_seconds
        for future in futures:
            try:
                future.exception(timeout=max(0.0, deadline - time.time()))
            except Exception:  # a timeout: counted as missing below
                pass
        report = {
            "tasks": len(futures),
            "results": len(arrived),
            "missing": [i for i in range(len(futures)) if i not in arrived][:50],
            "errors": {str(i): v for i, v in outcome.items() if not isinstance(v, int)},
            "wrong": [i for i, v in outcome.items() if isinstance(v, int) and v != i * i][:50],
            "callbacks_more_than_once": [i for i, n in callbacks.items() if n > 1],
            "duplicates_dropped": ex.duplicates_dropped,
            "reconnects": ex.broker_reconnects,
            "broker_node": ex.broker_node,
            "submitted_at": submitted,
            "arrived_at": [arrived.get(i) for i in range(len(futures))],
        }
    write_atomically(os.path.join(args.control, "stream.json"), report)
    ok = report["results"] == report["tasks"] and not report["errors"] and not report["wrong"]
    print(json.dumps({k: v for k, v in report.items() if k not in ("submitted_at", "arrived_at")}))
    return 0 if ok else 1


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest time in [start, end] during which no result arrived."""
    inside = sorted(t for t in times if start <= t <= end)
    edges = [start, *inside, end]
    return max(b - a for a, b in zip(edges, edges[1:], strict=False))


def report(args: argparse.Namespace) -> int:
    with open(args.stream) as handle:
        stream = json.load(handle)
    events = []
    with open(args.events) as handle:
        for line in handle:
            if line.strip():
                name, when = line.split()
                events.append((name, float(when)))
    submitted, arrived = stream["submitted_at"], stream["arrived_at"]
    times = sorted(t for t in arrived if t is not None)
    end = times[-1] if times else time.time()
    phases = []
    marks = [("start", submitted[0] if submitted else end), *events, ("end", end)]
    for (name, begin), (_, until) in zip(marks, marks[1:], strict=False):
        latencies = sorted(a - s for s, a in zip(submitted, arrived, strict=True)
                           if a is not None and begin <= s < until)
        after = [t for t in times if t >= begin]
        new = [a for s, a in zip(submitted, arrived, strict=True) if a is not None and s >= begin]
        phases.append({
            "from": name,
            "seconds": round(until - begin, 1),
            "tasks_submitted": len(latencies),
            "first_result_after_s": round(after[0] - begin, 2) if after else None,
            "first_result_of_a_task_submitted_after_s": round(min(new) - begin, 2) if new else None,
            "longest_gap_between_results_s": round(longest_gap(times, begin, until), 2),
            "latency_median_s": round(latencies[len(latencies) // 2], 2) if latencies else None,
            "latency_max_s": round(latencies[-1], 2) if latencies else None,
        })
    summary = {
        "tasks": stream["tasks"],
        "results": stream["results"],
        "exactly_once": (stream["results"] == stream["tasks"] and not stream["missing"]
                         and not stream["callbacks_more_than_once"]),
        "correct": not stream["errors"] and not stream["wrong"],
        "missing": stream["missing"],
        "errors": dict(list(stream["errors"].items())[:5]),
        "duplicates_dropped_by_sdk": stream["duplicates_dropped"],
        "sdk_reconnects": stream["reconnects"],
        "phases": phases,
    }
    if args.runs:
        with open(args.runs) as handle:
            runs = collections.Counter(int(line) for line in handle if line.strip())
        summary["runs"] = {
            "executions": sum(runs.values()),
            "tasks_never_run": sum(1 for i in range(stream["tasks"]) if runs[i] == 0),
            "tasks_run_more_than_once": sum(1 for i in range(stream["tasks"]) if runs[i] > 1),
        }
    print(json.dumps(summary, indent=1))
    return 0 if summary["exactly_once"] and summary["correct"] else 1


def main() -> int:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    go = commands.add_parser("run")
    go.add_argument("--broker-url", required=True)
    go.add_argument("--endpoint-id", required=True)
    go.add_argument("--owner", required=True)
    go.add_argument("--control", required=True)
    go.add_argument("--tls-ca", default=None)
    go.add_argument("--rate", type=float, default=10.0, help="tasks a second")
    go.add_argument("--runs-file", default="")
    go.add_argument("--drain-seconds", type=float, default=300.0)
    look = commands.add_parser("report")
    look.add_argument("--stream", required=True)
    look.add_argument("--events", required=True)
    look.add_argument("--runs", default=None)
    args = parser.parse_args()
    return run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    sys.exit(main())
