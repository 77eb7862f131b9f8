#!/usr/bin/env python3
"""A one-host stand-in for PBS Pro, LSF and HTCondor's commands, for Parsl's providers to drive.

Called as qsub/qstat/qdel, bsub/bjobs/bkill or condor_submit/condor_q/condor_rm (links to this file). A job
is its submit script run at once in a session of its own; what each command printed and every script
submitted are kept in $FAKE_SCHEDULER_DIR, where the tests read them. Output is shaped as each scheduler's
(only the parts Parsl reads).
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

STATE = Path(os.environ["FAKE_SCHEDULER_DIR"])


def record(job: str) -> Path:
    return STATE / f"{job}.json"


def new_job_id() -> str:
    counter = STATE / "next-id"
    number = int(counter.read_text()) if counter.exists() else 100
    counter.write_text(str(number + 1))
    return str(number)


def launch(job: str, command: list[str], stdout: str, stderr: str, cwd: str) -> None:
    """Run the job in a session of its own; its exit status lands in a file the status commands read."""
    exit_file = STATE / f"{job}.exit"
    wrapper = f'{" ".join(map(shlex.quote, command))}; echo $? > {shlex.quote(str(exit_file))}'
    with open(stdout, "ab") as out, open(stderr, "ab") as err:
        process = subprocess.Popen(["/bin/sh", "-c", wrapper], stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                   cwd=cwd, start_new_session=True)
    record(job).write_text(json.dumps({"pid": process.pid, "command": command}))


def state(job: str) -> tuple[str, int | None]:
    """('running' | 'done' | 'unknown', exit code)."""
    if not record(job).exists():
        return "unknown", None
    exit_file = STATE / f"{job}.exit"
    if exit_file.exists():
        return "done", int(exit_file.read_text().strip() or 0)
    return "running", None


def cancel(job: str) -> None:
    if not record(job).exists():
        return
    pid = json.loads(record(job).read_text())["pid"]
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    exit_file = STATE / f"{job}.exit"
    if not exit_file.exists():
        exit_file.write_text("271\n")


def directive(script: str, prefix: str, flag: str) -> str | None:
    match = re.search(rf"^{re.escape(prefix)}\s+{re.escape(flag)}\s+(\S+)", script, re.MULTILINE)
    return match[1] if match else None


def log_call(name: str, args: list[str]) -> None:
    with open(STATE / "calls.log", "a") as calls:
        calls.write(json.dumps([name, *args]) + "\n")


def run_script(script_path: str, prefix: str) -> str:
    """Submit a batch script whose output paths are its ``prefix -o`` and ``prefix -e`` directives."""
    script = Path(script_path).read_text()
    job = new_job_id()
    (STATE / f"{job}.script").write_text(script)
    launch(job, ["/bin/bash", script_path], directive(script, prefix, "-o") or os.devnull,
           directive(script, prefix, "-e") or os.devnull, str(Path(script_path).parent))
    return job


# --- PBS Pro ---------------------------------------------------------------------------------------------

def qsub(args: list[str]) -> None:
    print(f"{run_script(args[-1], '#PBS')}.fakepbs")


def qstat(args: list[str]) -> None:
    jobs = {}
    for long_id in [a for a in args if not a.startswith("-") and a not in ("json",)]:
        job = long_id.split(".")[0]
        what, code = state(job)
        if what == "unknown":
            continue
        jobs[long_id] = {"job_state": "R" if what == "running" else "F",
                         **({"Exit_status": code} if code is not None else {})}
    print(json.dumps({"timestamp": 0, "pbs_version": "fake", "Jobs": jobs}))


def qdel(args: list[str]) -> None:
    for long_id in args:
        cancel(long_id.split(".")[0])


# --- LSF -------------------------------------------------------------------------------------------------

def bsub(args: list[str]) -> None:
    print(f"Job <{run_script(args[-1], '#BSUB')}> is submitted to queue <normal>.")


def bjobs(args: list[str]) -> None:
    for job in [a for a in args if a.isdigit()]:
        what, code = state(job)
        if what != "unknown":
            print(f"{job} {'RUN' if what == 'running' else 'DONE' if code == 0 else 'EXIT'}")


def bkill(args: list[str]) -> None:
    for job in args:
        cancel(job)
        print(f"Job <{job}> is being terminated")


# --- HTCondor --------------------------------------------------------------------------------------------

def condor_submit(args: list[str]) -> None:
    submit = Path(args[-1]).read_text()
    settings = dict(re.findall(r"^\s*([A-Za-z_+]+)\s*=\s*(.*?)\s*$", submit, re.MULTILINE))
    cluster = new_job_id()
    (STATE / f"{cluster}.script").write_text(submit)
    directory = str(Path(settings["output"]).parent)
    launch(cluster, [settings["executable"], settings["arguments"]], settings["output"], settings["error"],
           directory)
    print("Submitting job(s).")
    print(f"1 job(s) submitted to cluster {cluster}.")


def condor_q(args: list[str]) -> None:
    for job_id in [a for a in args if re.match(r"^\d+\.\d+$", a)]:
        what, code = state(job_id.split(".")[0])
        if what != "unknown":
            print(f"{job_id} {2 if what == 'running' else 4 if code == 0 else 5}")


def condor_rm(args: list[str]) -> None:
    for job_id in [a for a in args if re.match(r"^\d+\.\d+$", a)]:
        cancel(job_id.split(".")[0])


COMMANDS = {f.__name__: f for f in (qsub, qstat, qdel, bsub, bjobs, bkill, condor_submit, condor_q, condor_rm)}

if __name__ == "__main__":
    name = Path(sys.argv[0]).name
    log_call(name, sys.argv[1:])
    COMMANDS[name](sys.argv[1:])
