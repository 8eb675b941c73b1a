"""`cairn bench chunkstore`: put/get MB/s and ops/s of the chunk store for several chunk
sizes, next to the raw sequential write bandwidth of the same disk (the workload is
`cairn.bench.chunkstore`)."""

import click

from cairn.bench import chunkstore as chunkstore_bench
from cairn.chunkstore import FSYNC_POLICIES, FsyncPolicy
from cairn.cli.output import emit_json, print_table, stderr_console


@click.command("chunkstore")
@click.option(
    "--dir",
    "directory",
    default=None,
    type=click.Path(file_okay=False),
    help="Where to make the temporary store (the disk to measure). Default: system temp.",
)
@click.option(
    "--sizes",
    default="4096,65536,1048576",
    show_default=True,
    help="Comma-separated chunk sizes in bytes.",
)
@click.option(
    "--ops",
    default=None,
    type=int,
    help="Puts per size (default: 40000 / 6000 / 768 for 4 KiB / 64 KiB / 1 MiB).",
)
@click.option("--concurrency", default=16, show_default=True, help="Concurrent writers.")
@click.option("--fsync", type=click.Choice(FSYNC_POLICIES), default="batch", show_default=True)
@click.option("--seconds-max", default=12.0, show_default=True, help="Time limit of each phase.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def bench_chunkstore(
    directory: str | None,
    sizes: str,
    ops: int | None,
    concurrency: int,
    fsync: FsyncPolicy,
    seconds_max: float,
    as_json: bool,
) -> None:
    """Chunk store put/get throughput vs the raw write bandwidth of the disk."""
    try:
        chunk_sizes = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise click.UsageError(f"--sizes must be integers, got {sizes!r}") from None
    if not chunk_sizes or min(chunk_sizes) < 1 or concurrency < 1 or seconds_max <= 0:
        raise click.UsageError("sizes, --concurrency and --seconds-max must be positive")
    defaults = chunkstore_bench.ChunkstoreBenchConfig()
    ops_by_size = (
        {size: ops for size in chunk_sizes} if ops is not None else dict(defaults.ops_by_size)
    )
    config = chunkstore_bench.ChunkstoreBenchConfig(
        directory=directory,
        chunk_sizes_bytes=tuple(chunk_sizes),
        ops_by_size=ops_by_size,
        concurrency=concurrency,
        fsync=fsync,
        seconds_max=seconds_max,
    )
    result = chunkstore_bench.run_chunkstore_bench(
        config, progress=lambda line: stderr_console.print(f"[dim]{line}[/dim]")
    )
    print_table(
        f"chunkstore: fsync {fsync}, concurrency {concurrency}; raw sequential write + fsync "
        f"{result['raw_write_mb_per_s']:.0f} MB/s; 4 KiB append + fdatasync "
        f"{result['append_fdatasync_p50_ms']:.2f} ms; "
        f"load average {result['load_average_1m']:.2f}",
        (
            "chunk",
            "put ops/s",
            "put MB/s",
            "put p50 ms",
            "put p99 ms",
            "get ops/s",
            "get MB/s",
            "put/raw",
        ),
        [
            (
                r["chunk_bytes"],
                r["put_ops_per_s"],
                r["put_mb_per_s"],
                r["put_latency"]["p50_ms"],
                r["put_latency"]["p99_ms"],
                r["get_ops_per_s"],
                r["get_mb_per_s"],
                r["put_vs_raw_ratio"],
            )
            for r in result["results"]
        ],
    )
    if as_json:
        emit_json(result)
