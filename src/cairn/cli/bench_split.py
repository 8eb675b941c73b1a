"""`cairn bench split`."""

import click

from cairn.bench.split import WINDOWS, run_split_bench
from cairn.cli.output import emit_json, print_table


@click.command("split")
@click.option("--keys", default=50_000, show_default=True, type=click.IntRange(10, 2_000_000),
              help="Keys in the shard before it is split.")  # fmt: skip
@click.option("--probes", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Readers, and as many writers, running all through.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def bench_split(keys: int, probes: int, as_json: bool) -> None:
    """Split a full index shard under read and write probes: the split's duration and
    the probes' latency before, during and after it (3-node local cluster)."""
    result = run_split_bench(keys, probes, progress=lambda m: click.echo(m, err=True))
    data = result["cairn"]
    click.echo(f"config: {result['config']}")
    click.echo(
        f"filled at {data['fill_keys_per_s']} keys/s; split of {data['keys_total']} keys "
        f"took {data['split_s']} s (new group {data['new_group']})"
    )
    rows = []
    for kind in ("reads", "writes"):
        for window in WINDOWS:
            r = data[kind][window]
            rows.append([kind, window, r["ops_per_s"], r["p50_ms"], r["p99_ms"], r["max_ms"],
                         r["errors"]])  # fmt: skip
    print_table(
        "cairn bench split", ["probe", "window", "ops/s", "p50 ms", "p99 ms", "max ms", "errors"],
        rows,
    )  # fmt: skip
    if as_json:
        emit_json(result)
