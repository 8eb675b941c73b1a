"""`cairn bench cluster`: object put/get throughput and latency through the native API, and
the time to restore full replication after losing a node (the workload is
`cairn.bench.cluster`)."""

from pathlib import Path
from typing import Any

import click

from cairn.bench.cluster import ClusterBenchConfig, format_size, run_cluster_bench
from cairn.cli.bench_options import level_list, size_list
from cairn.cli.output import emit_json, print_table, stderr_console


@click.command("cluster")
@click.option(
    "--nodes",
    default=3,
    show_default=True,
    type=click.IntRange(1, 16),
    help="Nodes of the throughput cluster (all metadata voters and gateways).",
)
@click.option(
    "--sizes",
    default="4KiB,1MiB,16MiB",
    show_default=True,
    help="Comma-separated object sizes (B, KiB, MiB, GiB).",
)
@click.option(
    "--concurrency",
    default="1,16",
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
@click.option(
    "--api",
    type=click.Choice(["http", "rpc"]),
    default="http",
    show_default=True,
    help="http: the SDK over the native HTTP API; rpc: the native RPC messages.",
)
@click.option(
    "--repair/--no-repair",
    default=True,
    show_default=True,
    help="Measure the time to restore full replication after losing a node.",
)
@click.option(
    "--repair-mib",
    default=256,
    show_default=True,
    type=click.IntRange(1, 1 << 20),
    help="MiB of objects written before the node is killed.",
)
@click.option(
    "--repair-object-size",
    default="1MiB",
    show_default=True,
    help="Size of each object the repair measurement writes.",
)
@click.option(
    "--repair-bandwidth-mib",
    default=64,
    show_default=True,
    type=click.IntRange(1, 1 << 20),
    help="Repair bandwidth cap of each node, MiB/s (config repair_bytes_per_s).",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Config field for every node (repeatable), e.g. --set fsync=always.",
)
@click.option(
    "--keep",
    "keep_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Run the clusters under DIR and keep their data and logs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def bench_cluster(
    nodes: int,
    sizes: str,
    concurrency: str,
    seconds: float,
    api: str,
    repair: bool,
    repair_mib: int,
    repair_object_size: str,
    repair_bandwidth_mib: int,
    assignments: tuple[str, ...],
    keep_dir: str | None,
    as_json: bool,
) -> None:
    """Object put/get throughput and p50/p99 latency, and repair time after a node loss."""
    settings: dict[str, str] = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or not name:
            raise click.BadParameter(
                f"expected FIELD=VALUE, got {assignment!r}", param_hint="--set"
            )
        settings[name.strip()] = value.strip()
    object_sizes = size_list(repair_object_size)
    if len(object_sizes) != 1:
        raise click.BadParameter("one size", param_hint="--repair-object-size")
    config = ClusterBenchConfig(
        nodes=nodes,
        sizes_bytes=size_list(sizes),
        concurrency=level_list(concurrency),
        seconds=seconds,
        api="rpc" if api == "rpc" else "http",
        repair=repair,
        repair_mib=repair_mib,
        repair_object_bytes=object_sizes[0],
        repair_bytes_per_s=repair_bandwidth_mib << 20,
        keep_dir=Path(keep_dir) if keep_dir else None,
        settings=settings,
    )
    result = run_cluster_bench(
        config, progress=lambda line: stderr_console.print(f"[dim]{line}[/dim]")
    )
    _print(result)
    if as_json:
        emit_json(result)


def _print(result: dict[str, Any]) -> None:
    c = result["config"]
    shape = (
        f"{c['nodes']} nodes, R={c['replica_count']}, {c['partition_count']} partitions"
        if "replica_count" in c
        else "no throughput cells"
    )
    click.echo(
        f"config: {shape}, fsync {c['fsync']}, compression "
        f"{c['compression']}, encryption {c['encryption']}, writes at {c['write_consistency']}, "
        f"api {c['api']}, {c['seconds_per_cell']:g} s per phase; {c['cpu_count']} CPUs, "
        f"load {c['load_average_at_start'][0]:.2f} -> {c['load_average_at_end'][0]:.2f}"
    )
    if result.get("cells"):
        rows = []
        for cell in result["cells"]:
            put, get = cell["put"], cell["get"]
            rows.append([cell["size"], cell["concurrency"],
                         put["ops_per_s"], put["mb_per_s"], put["p50_ms"], put["p99_ms"],
                         get["ops_per_s"], get["mb_per_s"], get["p50_ms"], get["p99_ms"],
                         put["errors"] + get["errors"],
                         f"{get['verified']}/{get['verified'] + get['mismatches']}",
                         put["dedup_hits"]])  # fmt: skip
        print_table(
            "cairn bench cluster: native API (MB = 10^6 bytes)",
            ["size", "c", "put ops/s", "put MB/s", "put p50 ms", "put p99 ms", "get ops/s",
             "get MB/s", "get p50 ms", "get p99 ms", "errors", "verified", "dedup hits"],
            rows,
        )  # fmt: skip
    repair = result.get("repair")
    if repair:
        print_table(
            f"repair after kill -9 {repair['victim']}",
            ["measure", "value"],
            [
                ["cluster", f"{repair['nodes']} nodes, R={repair['replica_count']}, "
                            f"{repair['partition_count']} partitions"],
                ["repair cap", f"{repair['repair_bytes_per_s_per_node'] / 2**20:g} MiB/s per node"],
                ["failure detection (s)", ", ".join(
                    f"{name.removesuffix('_s')} {value:g}"
                    for name, value in repair["failure_detection"].items())],
                ["written", f"{repair['objects']} x {format_size(repair['object_bytes'])}, "
                            f"{repair['chunks']} chunks"],
                ["victim held", f"{repair['victim_bytes'] / 2**20:.1f} MiB in "
                                f"{repair['victim_chunks']} chunks"],
                ["marked down after (s)", repair["down_s"]],
                ["marked lost after (s)", repair["lost_s"]],
                ["all chunks on R owners after (s)", repair["chunks_complete_s"]],
                ["moves done after (s)", repair["moves_done_s"]],
                ["full replication after (s)", repair["full_replication_s"]],
                ["bytes re-replicated", f"{repair['bytes_copied'] / 2**20:.1f} MiB"],
                ["copy rate after lost (MB/s)", repair["copy_mb_per_s"]],
                ["read back verified", f"{repair['readback_verified']} of "
                                       f"{repair['objects']}"],
            ],
        )  # fmt: skip
