"""All benchmarks in one run: ours beside Parsl's HighThroughputExecutor, floors, scaling, the interchange alone.

    python bench/run.py [--repeats 3] [--output bench/results]      (or: make bench)

Every measurement runs in a fresh process. Ours and Parsl alternate, --repeats
times each; the table gives medians with min-max and our/Parsl ratios, and the
floors our round trip is compared with. Writes RESULTS/latest.json and
RESULTS/scaling.png, and prints the table in Markdown for the README.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import machine

HERE = Path(__file__).resolve().parent
SYSTEMS = {
    "ours": ["ours.py"],
    "parsl-htex": ["parsl_htex.py", "--via", "executor"],
    "parsl-htex-apps": ["parsl_htex.py", "--via", "apps"],
    # The cost of an encrypted, authenticated manager link, for us and for Parsl.
    "ours-curve": ["ours.py", "--link", "curve"],
    "parsl-htex-encrypted": ["parsl_htex.py", "--via", "executor", "--encrypted"],
}


def measure(script: list[str], *args: str) -> dict:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    done = subprocess.run([sys.executable, *script, *args], cwd=HERE, env=env, capture_output=True, text=True,
                          timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(script + list(args))} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=HERE / "results")
    args = parser.parse_args()
    report = {"date": datetime.date.today().isoformat(), "machine": machine(), "repeats": args.repeats}

    progress("floors")
    report["floors"] = measure(["floors.py"])
    runs: dict[str, list[dict]] = {name: [] for name in SYSTEMS}
    for repeat in range(args.repeats):
        for name, script in SYSTEMS.items():
            progress(f"{name}, run {repeat + 1} of {args.repeats}")
            runs[name].append(measure(script))
    report["runs"] = runs
    report["summary"] = {name: summarize(results) for name, results in runs.items()}

    report["scaling"] = {name: {} for name in ("ours", "parsl-htex")}
    for workers in (1, 2, 4, 8):
        for name in ("ours", "parsl-htex"):
            progress(f"scaling: {name} with {workers} workers")
            extra = ["--skip-cold"] if name == "ours" else []
            result = measure(SYSTEMS[name], "--workers", str(workers), "--latency", "0", *extra)
            report["scaling"][name][workers] = result["throughput"]
    progress("the interchange alone, with simulated managers")
    report["interchange"] = measure(["interchange_sim.py"])
    report["slurm"] = {name: [] for name in ("ours", "parsl-htex")}
    for repeat in range(args.repeats):
        for name in report["slurm"]:
            progress(f"blocks through Slurm: {name}, run {repeat + 1} of {args.repeats}")
            report["slurm"][name].append(measure(["slurm_blocks.py", "--system", name]))
    progress("per-function containers in podman: soft routing and random routing")
    report["container_routing"] = measure(["container_routing.py"])

    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "latest.json").write_text(json.dumps(report, indent=2))
    plot(report, args.output / "scaling.png")
    print(markdown(report))


def summarize(results: list[dict]) -> dict:
    summary = {
        "throughput": spread([r["throughput"] for r in results]),
        "latency_p50_ms": spread([r["latency_ms"]["p50"] for r in results]),
        "latency_p99_ms": spread([r["latency_ms"]["p99"] for r in results]),
    }
    if all("cold_start_s" in r for r in results):
        summary["cold_start_s"] = spread([r["cold_start_s"] for r in results])
    summary["peak_rss_mib"] = {proc: max(r["peak_rss_mib"].get(proc, 0) for r in results)
                               for proc in results[0]["peak_rss_mib"]}
    return summary


def progress(text: str) -> None:
    print(f"==> {text}", file=sys.stderr, flush=True)


def fmt(entry: dict, digits: int = 0) -> str:
    return f"{entry['median']:.{digits}f} ({entry['min']:.{digits}f}-{entry['max']:.{digits}f})"


def markdown(report: dict) -> str:
    s = report["summary"]
    ours, parsl = s["ours"], s["parsl-htex"]
    rows = [
        ("throughput, 5,000 no-op tasks (tasks/s)", "throughput", 0, "higher"),
        ("round trip p50 (ms)", "latency_p50_ms", 2, "lower"),
        ("round trip p99 (ms)", "latency_p99_ms", 2, "lower"),
        ("cold start, start to first result (s)", "cold_start_s", 2, "lower"),
    ]
    lines = [f"Measured {report['date']} on {report['machine']}; 2 workers; median (min-max) of "
             f"{report['repeats']} alternating runs each.", "",
             "| | ours | Parsl HTEX (executor) | Parsl HTEX (apps) | ours / Parsl HTEX (executor) |",
             "|---|---:|---:|---:|---:|"]
    for label, key, digits, _better in rows:
        ratio = ours[key]["median"] / parsl[key]["median"]
        lines.append(f"| {label} | {fmt(ours[key], digits)} | {fmt(parsl[key], digits)} | "
                     f"{fmt(s['parsl-htex-apps'][key], digits)} | {ratio:.2f} |")
    floors = report["floors"]
    floor = floors["pika_rtt_ms"] + floors["zmq_rtt_ms"] + floors["worker_exec_ms"]
    lines += ["", f"Floors: pika publish-consume round trip {floors['pika_rtt_ms']:.3f} ms, pyzmq ROUTER/DEALER "
              f"round trip {floors['zmq_rtt_ms']:.3f} ms, worker exec {floors['worker_exec_ms']:.3f} ms; sum "
              f"{floor:.3f} ms. Our p50 is {ours['latency_p50_ms']['median'] / floor:.1f}x that sum.", "",
              "Peak RSS (MiB): " + ", ".join(f"{proc} {mib:.0f}" for proc, mib in ours["peak_rss_mib"].items()) +
              " (ours); " + ", ".join(f"{proc} {mib:.0f}" for proc, mib in parsl["peak_rss_mib"].items()) +
              " (Parsl HTEX).", "",
              "| workers | ours (tasks/s) | Parsl HTEX (tasks/s) |", "|---:|---:|---:|"]
    for workers, value in report["scaling"]["ours"].items():
        lines.append(f"| {workers} | {value:.0f} | {report['scaling']['parsl-htex'][workers]:.0f} |")
    lines += ["", *encryption_table(s)]
    lines += ["", "| simulated managers (x100 slots) | scheduler policy (us/task) | interchange CPU (us/task) | "
              "interchange throughput (tasks/s) |", "|---:|---:|---:|---:|"]
    for run in report["interchange"]["runs"]:
        lines.append(f"| {run['managers']} | {run['policy_us_per_task']:.1f} | "
                     f"{run['interchange_cpu_us_per_task']:.0f} | {run['throughput']:.0f} |")
    lines += ["", *slurm_table(report), "", *routing_table(report["container_routing"])]
    return "\n".join(lines)


def routing_table(routing: dict) -> list[str]:
    lines = [f"{routing['tasks']} tasks of {routing['task_seconds']:g} s over {routing['images']} podman images, "
             f"{routing['rate']:g} a second, {routing['managers']} managers of {routing['workers_per_manager']} "
             "workers:", "",
             "| scheduler_mode | completion (s) | container cold starts | warm hits |", "|---|---:|---:|---:|"]
    for run in routing["runs"]:
        lines.append(f"| {run['scheduler_mode']} | {run['completion_s']:.1f} | {run['cold_starts']} | "
                     f"{run['warm_hits']} |")
    return lines


def slurm_table(report: dict) -> list[str]:
    """Blocks through a real one-node Slurm, the same SlurmProvider and a 1 s strategy period for both."""
    runs = report.get("slurm")
    if not runs:
        return []
    lines = ["| blocks through Slurm (init_blocks 0, max_blocks 3, 8-task burst) | ours (s) | Parsl HTEX (s) |",
             "|---|---:|---:|"]
    for label, key in (("first task to its result, no block running", "first_result_s"),
                       ("burst to max_blocks jobs submitted", "scale_out_jobs_submitted_s"),
                       ("burst to as many managers connected as the node runs (2)", "scale_out_managers_connected_s")):
        ours, parsl = (spread([run[key] for run in runs[name]]) for name in ("ours", "parsl-htex"))
        lines.append(f"| {label} | {fmt(ours, 2)} | {fmt(parsl, 2)} |")
    return lines


def encryption_table(s: dict) -> list[str]:
    """What CurveZMQ on the manager link costs: each system plain and encrypted, from the same run."""
    lines = ["| manager link | throughput (tasks/s) | p50 (ms) | throughput vs plain |", "|---|---:|---:|---:|"]
    for plain, encrypted, what in (("ours", "ours-curve", "ours: ipc:// (plain, this host) / TCP + CurveZMQ"),
                                   ("parsl-htex", "parsl-htex-encrypted", "Parsl HTEX: TCP / TCP + CurveZMQ")):
        for name, label in ((plain, what.split(": ")[1].split(" / ")[0]), (encrypted, "TCP + CurveZMQ")):
            ratio = s[name]["throughput"]["median"] / s[plain]["throughput"]["median"]
            lines.append(f"| {what.split(':')[0]}, {label} | {fmt(s[name]['throughput'])} | "
                         f"{fmt(s[name]['latency_p50_ms'], 2)} | {ratio:.2f} |")
    return lines


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, label in (("ours", "ours (SDK, RabbitMQ, endpoint, interchange)"), ("parsl-htex", "Parsl HTEX")):
        points = sorted((int(w), v) for w, v in report["scaling"][name].items())
        left.plot([w for w, _ in points], [v for _, v in points], marker="o", label=label)
    left.set(xlabel="workers", ylabel="no-op tasks/s", title="Throughput by worker count")
    left.set_xscale("log", base=2)
    left.set_xticks([1, 2, 4, 8], labels=["1", "2", "4", "8"])
    left.set_ylim(bottom=0)
    left.legend()
    runs = report["interchange"]["runs"]
    managers = [r["managers"] for r in runs]
    right.plot(managers, [r["interchange_cpu_us_per_task"] for r in runs], marker="o",
               label="interchange process, CPU per task")
    right.plot(managers, [r["policy_us_per_task"] for r in runs], marker="o", label="scheduling policy per task")
    right.set(xlabel="simulated managers (100 slots each)", ylabel="microseconds per task",
              title="Interchange cost by number of managers")
    right.set_xscale("log", base=10)
    right.set_ylim(bottom=0)
    right.legend()
    fig.suptitle(f"{report['date']}, {report['machine']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
