"""`cairn bench s3`: PUT/GET throughput and latency of an S3 endpoint, every GET verified,
against Swift (s3api) in the same run (the workload is `cairn.bench.s3`)."""

from typing import Any

import click

from cairn.bench.s3 import DEFAULT_REGION, S3BenchConfig, S3Target, run_s3_bench
from cairn.cli.bench_options import level_list, size_list
from cairn.cli.output import emit_json, print_table, stderr_console


@click.command("s3")
@click.option(
    "--endpoint",
    default=None,
    help="S3 endpoint URL (path-style), or several comma-separated gateways of one system "
    "(client w uses the w-th mod n); default: start a 3-node Cairn cluster and use every "
    "node's gateway.",
)
@click.option("--access-key", default=None, help="Access key id for --endpoint.")
@click.option("--secret-key", default=None, help="Secret key for --endpoint.")
@click.option("--region", default=DEFAULT_REGION, show_default=True, help="SigV4 region.")
@click.option("--name", default="cairn", show_default=True, help="Name of the measured system.")
@click.option(
    "--peer",
    type=click.Choice(["swift", "none"]),
    default="swift",
    show_default=True,
    help="Also run the workload against an all-in-one Swift with s3api (runs alone, with a "
    "note, when Swift cannot be started).",
)
@click.option(
    "--sizes",
    default="4KiB,1MiB,16MiB",
    show_default=True,
    help="Comma-separated object sizes (B, KiB, MiB, GiB).",
)
@click.option(
    "--concurrency",
    default="1,16,64",
    show_default=True,
    help="Comma-separated numbers of concurrent clients.",
)
@click.option(
    "--seconds",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.05, 600),
    help="Time of the PUT phase and of the GET phase of each cell.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def bench_s3(
    endpoint: str | None,
    access_key: str | None,
    secret_key: str | None,
    region: str,
    name: str,
    peer: str,
    sizes: str,
    concurrency: str,
    seconds: float,
    as_json: bool,
) -> None:
    """PUT/GET ops/s, MB/s, p50/p99 by size and concurrency; Cairn against Swift."""
    target = None
    if endpoint is not None:
        if not access_key or not secret_key:
            raise click.UsageError("--endpoint needs --access-key and --secret-key")
        endpoints = [e.strip() for e in endpoint.split(",") if e.strip()]
        if not endpoints:
            raise click.UsageError("--endpoint needs at least one URL")
        target = S3Target(
            name, endpoints[0], access_key, secret_key, region, more_endpoints=tuple(endpoints[1:])
        )
    elif access_key or secret_key:
        raise click.UsageError("--access-key/--secret-key go with --endpoint")
    config = S3BenchConfig(
        target=target,
        name=name,
        peer="swift" if peer == "swift" else "none",
        sizes_bytes=size_list(sizes),
        concurrency=level_list(concurrency),
        seconds=seconds,
    )
    result = run_s3_bench(config, progress=_progress)
    _print(result)
    if as_json:
        emit_json(result)


def _progress(line: str) -> None:
    stderr_console.print(line, markup=False, style="dim", soft_wrap=True)


def _print(result: dict[str, Any]) -> None:
    c = result["config"]
    click.echo(
        f"config: {c['seconds_per_phase']:g} s per phase; {c['cpu_count']} CPUs, load "
        f"{c['load_average_at_start'][0]:.2f} -> {c['load_average_at_end'][0]:.2f}; "
        f"{c['load_generator']}"
    )
    rows = []
    for system, data in result["systems"].items():
        if not data.get("available"):
            click.echo(f"{system}: not run ({data.get('reason')})")
            continue
        for cell in data["cells"]:
            put, get = cell["put"], cell["get"]
            rows.append(
                [
                    system,
                    cell["size"],
                    cell["concurrency"],
                    put["ops_per_s"],
                    put["mb_per_s"],
                    put["p50_ms"],
                    put["p99_ms"],
                    get["ops_per_s"],
                    get["mb_per_s"],
                    get["p50_ms"],
                    get["p99_ms"],
                    put["errors"] + get["errors"],
                    f"{get['verified']}/{get['verified'] + get['mismatches']}",
                    f"{put['client_cores']:.2f}/{get['client_cores']:.2f}",
                ]
            )
    print_table(
        "cairn bench s3 (MB = 10^6 bytes; client = load generator's cores, put/get)",
        [
            "system",
            "size",
            "c",
            "put ops/s",
            "put MB/s",
            "put p50 ms",
            "put p99 ms",
            "get ops/s",
            "get MB/s",
            "get p50 ms",
            "get p99 ms",
            "errors",
            "verified",
            "client",
        ],
        rows,
    )
    for pair, cells in result.get("ratios", {}).items():
        print_table(
            f"{pair} (ops and MB: >1 is faster; p99: <1 is a shorter tail)",
            ["size", "c", "put ops", "put MB", "put p99", "get ops", "get MB", "get p99"],
            [
                [
                    r["size"],
                    r["concurrency"],
                    r["put_ops"],
                    r["put_mb"],
                    r["put_p99"],
                    r["get_ops"],
                    r["get_mb"],
                    r["get_p99"],
                ]
                for r in cells
            ],
        )
