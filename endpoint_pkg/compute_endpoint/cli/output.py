"""How the CLI prints: the seed's ASCII tables, JSON, progress and errors."""

import json
import sys

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

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


def key_value_table(data: dict) -> Table:
    table = Table(box=box.ASCII_DOUBLE_HEAD, show_header=False, show_lines=False)
    table.add_column("Key")
    table.add_column("Value")
    for key, value in data.items():
        table.add_row(key, value if isinstance(value, str) else json.dumps(value))
    return table


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def progress(message: str) -> None:
    err.print(f"  … {message}")


def error(message: str) -> None:
    err.print(Text.assemble(("Error:", "bold red"), " ", message))
