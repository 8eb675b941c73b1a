"""How commands print results.

Human-readable text goes to stdout; progress bars and logs go to stderr. With `--json`,
the last line of stdout is exactly one JSON object, so scripts can read
`cairn bench ... --json | tail -n 1`.
"""

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

stderr_console = Console(stderr=True)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A readable table on stdout."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    Console(file=sys.stdout, width=160).print(table)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def emit_json(result: Mapping[str, Any]) -> None:
    """Print `result` as one JSON line; call it last so it is the final line of stdout."""
    sys.stdout.write(json.dumps(result, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
