"""The config's ``endpoint_setup`` and ``endpoint_teardown``: shell commands around the endpoint's life."""

import logging
import subprocess
from pathlib import Path

from ..credentials import environment_without_secrets
from ..errors import EndpointError

log = logging.getLogger(__name__)

TIMEOUT = 600.0  # seconds; a site's setup (module loads, a scratch directory) takes seconds
TAIL = 1500


def run_hook(key: str, command: str | None, cwd: Path, must_succeed: bool) -> None:
    """Run ``command`` with /bin/sh in the endpoint's directory; a failed setup stops the start."""
    if not command:
        return
    log.info("running %s", key)
    try:
        done = subprocess.run(["/bin/sh", "-c", command], cwd=cwd, env=environment_without_secrets(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
        problem = None if done.returncode == 0 else f"exited with {done.returncode}"
        output = (done.stdout + done.stderr).strip()
    except subprocess.TimeoutExpired as exc:
        problem, output = f"did not finish within {TIMEOUT:.0f}s", str(exc.stderr or "")
    if output:
        log.info("%s said: %s", key, output[-TAIL:])
    if problem is None:
        return
    message = f"{key} {problem}" + (f": {output[-TAIL:]}" if output else "")
    if must_succeed:
        raise EndpointError(f"{message} (fix it in the config's {key})")
    log.error("%s", message)
