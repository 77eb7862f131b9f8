"""The config.yaml that `compute-endpoint configure` writes.

System-wide, an administrator's ``/etc/compute-endpoint/config-template.yaml``
(shipped by the package as a conffile) replaces the built-in text. Either may
use the placeholders {name}, {broker_url}, {workers} and {metrics}.
"""

from pathlib import Path

from .metrics import SYSTEM_METRICS_ADDRESS
from .model import DEFAULT_BROKER_URL

SYSTEM_TEMPLATE = Path("/etc/compute-endpoint/config-template.yaml")

TEMPLATE = """\
# Compute endpoint configuration. Every key is optional; defaults are shown.
# Reference: the "Configuration" section of the project README.
display_name: {name}

broker:
  # No user name or password here: run `compute-endpoint login {name}` or set
  # COMPUTE_CLIENT_ID / COMPUTE_CLIENT_SECRET.
  url: {broker_url}

# Seconds between status reports; clients call the endpoint Disconnected after
# heartbeat_threshold seconds without one.
heartbeat_period: 30
heartbeat_threshold: 120

# Broker identities besides yours whose tasks this endpoint runs (each also
# needs a submit_to grant on the broker). Tasks from anyone else are set aside
# in the endpoint's dead-letter queue with the reason.
allowed_submitters: []

# Prometheus metrics (compute_endpoint_*) served over HTTP at this HOST:PORT;
# no address, no metrics.
{metrics}

engine:
  type: GlobusComputeEngine
  max_workers_per_node: {workers}
  max_retries_on_system_failure: 1
  provider:
    type: LocalProvider
    init_blocks: 1
    min_blocks: 0
    max_blocks: 1
"""


def render_default_config(name: str, broker_url: str | None, workers: int, system: bool = False) -> str:
    template = SYSTEM_TEMPLATE.read_text() if system and SYSTEM_TEMPLATE.exists() else TEMPLATE
    # The packaged service serves metrics on loopback by default; a user's endpoint only when asked to.
    metrics = f"metrics:\n  address: {SYSTEM_METRICS_ADDRESS}" if system else "metrics:\n  address:"
    return template.format(name=name, broker_url=broker_url or DEFAULT_BROKER_URL, workers=workers, metrics=metrics)
