"""How the CLI prints: the seed's ASCII tables, JSON, progress and errors."""

import json
import sys

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..curve import fingerprint

# markup=False: endpoint names, paths and broker messages are printed literally.
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def endpoints_table(rows: list[dict]) -> Table:
    table = Table(box=box.ASCII_DOUBLE_HEAD, show_lines=True, header_style="", pad_edge=True)
    table.add_column("Endpoint Name")
    table.add_column("Status")
    table.add_column("Endpoint ID")
    for row in rows:
        table.add_row(row["name"], row["status"], str(row["endpoint_id"]))
    return table


def status_table(data: dict) -> Table:
    """`compute-endpoint status` for people; `--json` has every field."""
    table = Table(box=box.ASCII, show_header=False)
    table.add_column("Field", no_wrap=True)
    table.add_column("Value", overflow="fold")
    for label, value in _status_rows(data):
        table.add_row(label, value)
    return table


def _broker_line(broker: dict) -> str:
    """The node in use, among how many, and what its queues are: 127.0.0.1:5672 (connected; quorum queues)."""
    node = broker.get("node") or broker["url"]
    state = "connected" if broker["connected"] else "reconnecting"
    nodes = broker.get("nodes") or []
    if len(nodes) > 1:
        state += f" to 1 of {len(nodes)} nodes"
    if broker.get("cluster"):
        state += f" of cluster {broker['cluster']}" if len(nodes) > 1 else f" to {broker['cluster']}"
    types = sorted(set((broker.get("queue_types") or {}).values()))
    if types:
        state += f"; {' and '.join(types)} queues"
    return f"{node} ({state})"


def migration_table(moved: list) -> Table:
    """What `migrate-queues` did to each queue."""
    table = Table(box=box.ASCII_DOUBLE_HEAD, header_style="")
    for column in ("Queue", "Name", "Type", "Messages moved"):
        table.add_column(column, overflow="fold")
    for role, queue, kind, messages in moved:
        table.add_row(role, queue, kind, "already as configured" if messages is None else f"{messages:,}")
    return table


def blocks_table(provider: dict) -> Table:
    """The provider's blocks (batch jobs), newest last, with why the failed ones failed."""
    table = Table(box=box.ASCII_DOUBLE_HEAD, header_style="",
                  title=f"Blocks from {provider['provider']} (strategy {provider['strategy']})")
    typed = any("container_type" in block for block in provider["blocks"])  # hard routing: a pool per type
    for column in ("Block", *["Container type"] * typed, "Job", "State", "Managers", "Idle", "Last failure"):
        table.add_column(column, overflow="fold")
    for block in provider["blocks"]:
        idle = block.get("idle_seconds")
        table.add_row(block["block_id"], *[block.get("container_type", "")] * typed, str(block.get("job_id") or "-"),
                      block["state"], str(block["managers"]), f"{idle:.0f} s" if idle is not None else "-",
                      block.get("failure") or "")
    return table


def containers_table(managers: list[dict]) -> Table | None:
    """Each manager's workers per container type (None when every worker is a plain process)."""
    rows = [(m["manager_id"], ctype, counts) for m in managers for ctype, counts in m.get("containers", {}).items()
            if ctype != "RAW"]
    if not rows:
        return None
    table = Table(box=box.ASCII_DOUBLE_HEAD, header_style="", title="Container workers by manager")
    for column in ("Manager", "Container type", "Warm", "Idle", "Busy"):
        table.add_column(column, overflow="fold")
    for manager_id, ctype, counts in rows:
        table.add_row(manager_id, ctype, *(str(counts.get(key, 0)) for key in ("warm", "idle", "busy")))
    return table


def _status_rows(data: dict) -> list[tuple[str, str]]:
    rows = [("Endpoint", f"{data['name']} ({data.get('endpoint_id')})"), ("State", data["state"])]
    if data.get("degraded"):
        rows.append(("Degraded", data["degraded"]))
    if data.get("owner"):
        rows.append(("Owner", data["owner"]))
    if "broker" in data:
        broker = data["broker"]
        rows.append(("Broker", _broker_line(broker)))
    for kind, queue in data.get("queues", {}).items():
        rows.append((f"Queue ({kind.replace('_', ' ')})", queue))
    if "managers" in data:
        rows.append(("Managers", f"{data['managers']} with {data['workers']} workers ({data['idle_workers']} idle)"))
        rows.append(("Tasks", f"{data['tasks_outstanding']} outstanding, {data['tasks_completed']} completed"))
    starts = data.get("container_starts") or {}
    if any(starts.values()):
        rows.append(("Containers", f"{starts.get('cold', 0)} cold starts, {starts.get('warm', 0)} warm hits"))
    pids = data["pids"]
    if pids.get("endpoint"):
        managers = ", ".join(str(p) for p in pids["managers"]) or "none"
        rows.append(("Processes", f"endpoint {pids['endpoint']}, interchange {pids['interchange']}, "
                                  f"managers {managers}"))
    if "uptime_seconds" in data:
        rows.append(("Up for", f"{data['uptime_seconds']:.0f} s"))
    if data.get("live_status_error"):
        rows.append(("Live status", f"unavailable: {data['live_status_error']}"))
    rows += [("Config", data["config_file"]), ("Logs", data["log_dir"])]
    return rows


def keys_table(authorized: dict[str, str]) -> Table:
    table = Table(box=box.ASCII_DOUBLE_HEAD, header_style="")
    table.add_column("Label")
    table.add_column("Public key")
    table.add_column("Fingerprint")
    for label, key in authorized.items():
        table.add_row(label, key, fingerprint(key))
    return table


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def progress(message: str) -> None:
    err.print(f"  … {message}")


def error(message: str) -> None:
    err.print(Text.assemble(("Error:", "bold red"), " ", message))
