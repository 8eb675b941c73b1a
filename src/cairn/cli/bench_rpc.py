"""`cairn bench rpc`."""

import click

from cairn.bench.rpc import RpcCase, run_rpc_bench
from cairn.cli.output import emit_json, print_table


@click.command("rpc")
@click.option("--seconds", default=3.0, show_default=True, type=click.FloatRange(0.05, 600))
@click.option("--sizes", default="1024,1048576", show_default=True, help="Payload bytes.")
@click.option("--concurrency", default="1,64", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def rpc(seconds: float, sizes: str, concurrency: str, as_json: bool) -> None:
    """Calls/s, MB/s and p50/p99 latency of RPC against a node process."""
    try:
        cases = [
            RpcCase(int(size), int(conc))
            for size in sizes.split(",")
            for conc in concurrency.split(",")
        ]
    except ValueError:
        raise click.BadParameter("sizes and concurrency are comma-separated integers") from None
    result = run_rpc_bench(cases, seconds, progress=lambda m: click.echo(m, err=True))
    click.echo(f"config: {result['config']}")
    print_table(
        "cairn bench rpc",
        ["payload B", "concurrency", "calls/s", "MB/s each way", "p50 ms", "p99 ms"],
        [
            [
                r["payload_bytes"],
                r["concurrency"],
                r["calls_per_s"],
                r["mb_per_s_each_way"],
                r["p50_ms"],
                r["p99_ms"],
            ]
            for r in result["results"]
        ],
    )
    if as_json:
        emit_json(result)
