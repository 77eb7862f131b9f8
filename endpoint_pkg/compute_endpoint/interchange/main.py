"""Entry point of the interchange process: ``python -m compute_endpoint.interchange``."""

import argparse
import dataclasses
import json
import signal
import sys
from pathlib import Path

from ..logs import setup_logging
from ..procs import die_with_parent
from ..readiness import Readiness
from .interchange import Interchange, InterchangeSettings


def run(settings: InterchangeSettings, log_file: Path | None, log_level: str, on_ready=None) -> int:
    """Run in the foreground until SIGTERM; ``on_ready(interchange)`` once its sockets are bound."""
    log = setup_logging("interchange", log_file, log_level)
    if settings.parent_pid:
        die_with_parent(settings.parent_pid, signal.SIGTERM)
    readiness = Readiness()
    try:
        interchange = Interchange(settings, readiness)
    except Exception as exc:  # typically the manager port is taken
        log.error("cannot start the interchange: %s", exc)
        print(f"interchange: cannot start: {exc}", file=sys.stderr)
        readiness.failed(f"cannot start: {exc}")
        return 1

    def stop(signum, frame):
        interchange.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if on_ready:
        on_ready(interchange)
    readiness.ready(f"serving managers on {settings.worker_address}:{interchange.worker_port}")
    interchange.run()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="compute-endpoint-interchange",
                                     description="Route tasks from an endpoint to its managers.")
    parser.add_argument("--settings", required=True, help="InterchangeSettings as JSON")
    parser.add_argument("--log-file", type=Path, default=None, help="default: stderr")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    known = {f.name for f in dataclasses.fields(InterchangeSettings)}
    raw = json.loads(args.settings)
    settings = InterchangeSettings(**{k: v for k, v in raw.items() if k in known})
    return run(settings, args.log_file, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
