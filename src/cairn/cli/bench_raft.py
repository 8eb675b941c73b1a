"""`cairn bench raft`."""

import click

from cairn.bench.raft import run_raft_bench
from cairn.cli.output import emit_json, print_table


@click.command("raft")
@click.option("--seconds", default=5.0, show_default=True, type=click.FloatRange(0.1, 600))
@click.option("--concurrency", default="1,16,64", show_default=True)
@click.option(
    "--peer",
    type=click.Choice(["etcd", "none"]),
    default="etcd",
    show_default=True,
    help="Peer system to run in the same run (skipped with a note if absent).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def raft(seconds: float, concurrency: str, peer: str, as_json: bool) -> None:
    """Write and linearizable-read ops/s and latency of a 3-node Raft group (and etcd)."""
    try:
        levels = [int(c) for c in concurrency.split(",")]
    except ValueError:
        raise click.BadParameter("concurrency is a comma-separated list of integers") from None
    result = run_raft_bench(levels, seconds, peer, progress=lambda m: click.echo(m, err=True))
    click.echo(f"config: {result['config']}")
    rows = []
    for system in ("cairn", "etcd"):
        data = result.get(system)
        if not data or data.get("available") is False:
            continue
        for kind in ("writes", "reads"):
            for r in data[kind]:
                rows.append([system, kind, r["concurrency"], r["ops_per_s"], r["p50_ms"],
                             r["p99_ms"], r["errors"]])  # fmt: skip
    print_table("cairn bench raft", ["system", "op", "c", "ops/s", "p50 ms", "p99 ms", "errors"],
                rows)  # fmt: skip
    if "ratio_cairn_to_etcd" in result:
        ratios = result["ratio_cairn_to_etcd"]
        print_table("cairn / etcd", ["measure", "ratio"], sorted(ratios.items()))
    if as_json:
        emit_json(result)
