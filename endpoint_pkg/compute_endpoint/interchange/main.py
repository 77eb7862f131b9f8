"""Entry point of the interchange process: ``python -m compute_endpoint.interchange``."""

import argparse
import dataclasses
import json
import signal
import sys
from pathlib import Path

from ..logs import setup_logging
from ..procs import die_with_parent
from .interchange import Interchange, InterchangeSettings


def run(settings: InterchangeSettings, log_file: Path | None, log_level: str, on_ready=None) -> int:
    log = setup_logging("interchange", log_file, log_level)
    if settings.parent_pid:
        die_with_parent(settings.parent_pid, signal.SIGTERM)
    try:
        interchange = Interchange(settings)
    except Exception as exc:  # typically the manager port is taken
        log.error("cannot start the interchange: %s", exc)
        print(f"interchange: cannot start: {exc}", file=sys.stderr)
        return 1

    def stop(signum, frame):
        interchange.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if on_ready:
        on_ready(interchange)
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
