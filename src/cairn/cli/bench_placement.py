"""`cairn bench placement`: balance and movement of our placement against ring, jump
consistent hash and md5 % N (the workload is `cairn.bench.placement`)."""

from pathlib import Path

import click

from cairn.bench import placement
from cairn.cli.output import emit_json, print_table, stderr_console


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise click.BadParameter(f"not a comma-separated list of integers: {text}") from error
    if not counts or any(not 2 <= n <= placement.NODE_COUNT_MAX for n in counts):
        raise click.BadParameter(f"node counts must be 2..{placement.NODE_COUNT_MAX}")
    return counts


@click.command("placement")
@click.option(
    "--partitions",
    default=placement.DEFAULT_PARTITIONS,
    show_default=True,
    help="Items (partitions) to place; a power of two.",
)
@click.option(
    "--nodes",
    "nodes_text",
    default=",".join(str(n) for n in placement.DEFAULT_NODE_COUNTS),
    show_default=True,
    help="Comma-separated node counts N (each also measured at N+1 and N-1).",
)
@click.option(
    "--algorithms",
    "algorithms_text",
    default=",".join(placement.ALGORITHMS),
    show_default=True,
    help="Comma-separated algorithms to compare.",
)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def bench_placement(
    partitions: int, nodes_text: str, algorithms_text: str, plot: Path | None, as_json: bool
) -> None:
    """Balance and data movement of placement algorithms for N nodes, +1 and -1 node."""
    algorithms = tuple(a.strip() for a in algorithms_text.split(",") if a.strip())
    try:
        result = placement.run(
            partitions=partitions,
            node_counts=_counts(nodes_text),
            algorithms=algorithms,
            progress=lambda line: stderr_console.print(f"[dim]{line}[/dim]"),
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    print_table(
        f"placement: {partitions} items; movement as a ratio to the minimum",
        (
            "algorithm",
            "weights",
            "N",
            "CV",
            "max dev",
            "join ratio",
            "leave ratio",
            "leave collateral",
        ),
        [
            (
                r["algorithm"],
                r["weights"],
                r["nodes"],
                r["cv"],
                r["max_deviation"],
                r["join_ratio"],
                r["leave_ratio"],
                r["leave_collateral"],
            )
            for r in result["rows"]
        ],
    )
    if plot is not None:
        placement.write_plot(result, plot)
        result["plot"] = str(plot)
        stderr_console.print(f"plot written to {plot}")
    if as_json:
        emit_json(result)
