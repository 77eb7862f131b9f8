"""`compute-endpoint status NAME --watch`: a live view of an endpoint's queues, tasks, rate, managers and blocks."""

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .. import control
from ..credentials import CredentialStore, resolve_identity
from ..paths import EndpointHome
from ..protocol.broker_names import EndpointNames
from ..sdk.client import Client
from . import output


class QueueDepths:
    """Messages ready in the endpoint's queues, as the broker counts them at each refresh."""

    def __init__(self, home: EndpointHome, name: str):
        ep = home.existing(name)
        urls, tls_ca = control.owners_config(ep, lambda config: (config.broker.urls, config.broker.tls_ca))
        identity = resolve_identity(CredentialStore(ep.credentials_file, home.key_file), name)
        self.client = Client(urls, identity.client_id, identity.secret, tls_ca)
        self.error = ""

    def depths(self, queues: dict) -> tuple[int | None, int | None]:
        """(tasks waiting, tasks dead-lettered); None where the queue is missing or the broker cannot be asked."""
        wanted = [queue for queue in (queues.get("tasks"), queues.get("dead_letter")) if queue]
        try:
            counts = self.client.queue_depths(wanted) if wanted else {}
            self.error = ""
        except Exception as exc:  # noqa: BLE001 (a broker hiccup is shown in the view, which carries on)
            counts, self.error = {}, f"cannot count the queues: {exc}"
        return counts.get(queues.get("tasks") or ""), counts.get(queues.get("dead_letter") or "")


@dataclass
class Sample:
    at: float
    completed: int | None


def _count(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def watch_view(data: dict, waiting: int | None, dead: int | None, rate: float | None, note: str) -> Group:
    """One refresh: the endpoint's numbers, and its blocks when it has a provider that reports them."""
    table = Table(box=box.ASCII, show_header=False, title=f"{data['name']} ({data.get('endpoint_id')})")
    table.add_column("Field", no_wrap=True)
    table.add_column("Value", overflow="fold")
    table.add_row("State", str(data.get("state")))
    table.add_row("Waiting in the broker", _count(waiting))
    table.add_row("Held by the endpoint", _count(data.get("tasks_outstanding")))
    table.add_row("Completed", _count(data.get("tasks_completed")))
    table.add_row("Task rate", "-" if rate is None else f"{rate:.2f} tasks/s")
    if "managers" in data:
        table.add_row("Managers", f"{data['managers']} with {data['workers']} workers ({data['idle_workers']} idle)")
    table.add_row("Dead-lettered", _count(dead))
    provider = data.get("provider") or {}
    blocks = provider.get("blocks") or []
    if provider:
        states = Counter(block["state"] for block in blocks)
        summary = ", ".join(f"{count} {state}" for state, count in sorted(states.items())) or "none"
        table.add_row("Blocks", summary)
    parts: list[Any] = [table]
    if blocks:
        parts.append(output.blocks_table(provider))
    stamp = time.strftime("%H:%M:%S")
    parts.append(Text(f"{note + '; ' if note else ''}updated {stamp}; Ctrl-C to stop", style="dim"))
    return Group(*parts)


def _queue_names(data: dict) -> dict:
    """The queues of an endpoint not running here (its status has none): they outlive it on the broker."""
    if not data.get("endpoint_id") or not data.get("owner"):
        return {}
    return EndpointNames(data["owner"], data["endpoint_id"]).as_dict()


def watch_status(home: EndpointHome, name: str, interval: float) -> None:
    """Refresh every ``interval`` seconds until Ctrl-C (which ends it with exit code 0).

    On a terminal the view is redrawn in place; elsewhere (a pipe, a file) each refresh is printed in turn.
    """
    previous: Sample | None = None
    live = Live(console=output.out, auto_refresh=False) if output.out.is_terminal else None
    try:
        depths = QueueDepths(home, name)
        if live is not None:
            live.start()
        while True:
            data = control.status(home, name)
            queues = data.get("queues") or _queue_names(data)
            now = Sample(time.monotonic(), data.get("tasks_completed"))
            rate = None
            if previous and previous.completed is not None and now.completed is not None and now.at > previous.at:
                rate = max(0, now.completed - previous.completed) / (now.at - previous.at)
            previous = now
            waiting, dead = depths.depths(queues)
            view = watch_view(data, waiting, dead, rate, data.get("live_status_error") or depths.error)
            if live is not None:
                live.update(view, refresh=True)
            else:
                output.out.print(view)
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()
