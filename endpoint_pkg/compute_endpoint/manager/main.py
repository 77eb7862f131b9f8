"""Entry point of a manager process: ``python -m compute_endpoint.manager``."""

import argparse
import os
import signal
import sys
from pathlib import Path

from ..logs import setup_logging
from ..procs import die_with_parent
from ..readiness import Readiness
from .manager import Manager, ManagerSettings, install_signal_handlers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compute-endpoint-manager",
                                     description="Run a pool of workers for an interchange.")
    parser.add_argument("--interchange", required=True, help="interchange address, e.g. tcp://10.0.0.1:54000")
    parser.add_argument("--workers", type=int, required=True, help="worker processes to run")
    parser.add_argument("--manager-id", default="", help="stable identity (default: host-pid-random)")
    parser.add_argument("--prefetch", type=int, default=0, help="tasks to queue beyond the workers")
    parser.add_argument("--heartbeat-period", type=float, default=5.0)
    parser.add_argument("--heartbeat-threshold", type=float, default=20.0)
    parser.add_argument("--walltime", type=float, default=None, help="default per-task walltime in seconds")
    parser.add_argument("--max-result-bytes", type=int, default=10 * 2**20)
    parser.add_argument("--parent-pid", type=int, default=0, help="exit when this process dies")
    parser.add_argument("--log-file", type=Path, default=None, help="default: stderr")
    parser.add_argument("--log-level", default="INFO")
    return parser


def run(settings: ManagerSettings, log_file: Path | None, log_level: str, worker_env: dict | None = None) -> int:
    log = setup_logging("manager", log_file, log_level)
    if settings.parent_pid:
        die_with_parent(settings.parent_pid, signal.SIGTERM)
    worker_output = open(log_file, "ab", buffering=0) if log_file else None  # noqa: SIM115 - lives as long as we do
    manager = Manager(settings, worker_env or dict(os.environ), worker_output, Readiness())
    install_signal_handlers(manager)
    try:
        manager.run()
    except Exception:
        log.exception("manager %s failed", settings.manager_id)
        manager.shutdown()
        return 1
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    settings = ManagerSettings(
        interchange=args.interchange, workers=args.workers, manager_id=args.manager_id, prefetch=args.prefetch,
        heartbeat_period=args.heartbeat_period, heartbeat_threshold=args.heartbeat_threshold,
        walltime=args.walltime, max_result_bytes=args.max_result_bytes, parent_pid=args.parent_pid,
    )
    return run(settings, args.log_file, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
