"""`cairn bench codec`: GB/s of chunking, hashing, compression, encryption and the whole
chunk write pipeline, on one thread and on all cores (the workload is `cairn.bench.codec`)."""

import os

import click

from cairn.base.errors import ConfigError
from cairn.bench import codec as codec_bench
from cairn.cli.output import emit_json, print_table, stderr_console
from cairn.codec import ChunkingParams

KiB = 1024


@click.command("codec")
@click.option("--size-mib", default=256, show_default=True, help="Dataset size in MiB.")
@click.option(
    "--data",
    type=click.Choice(["mixed", "random", "text"]),
    default="mixed",
    show_default=True,
    help="Random bytes, stdlib source text, or 4 MiB blocks of each in turn.",
)
@click.option(
    "--workers",
    default=os.cpu_count() or 1,
    show_default=True,
    help="Threads for the all-cores column.",
)
@click.option("--zstd-level", default=3, show_default=True)
@click.option("--repeats", default=3, show_default=True, help="Best of this many runs.")
@click.option("--min-kib", default=256, show_default=True, help="Minimum chunk size.")
@click.option("--avg-kib", default=1024, show_default=True, help="Average chunk size.")
@click.option("--max-kib", default=4096, show_default=True, help="Maximum chunk size.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def bench_codec(
    size_mib: int,
    data: codec_bench.DataKind,
    workers: int,
    zstd_level: int,
    repeats: int,
    min_kib: int,
    avg_kib: int,
    max_kib: int,
    as_json: bool,
) -> None:
    """Throughput of each step of the chunk write path, 1 thread vs all cores."""
    if size_mib < 1 or workers < 1 or repeats < 1:
        raise click.UsageError("--size-mib, --workers and --repeats must be at least 1")
    try:
        chunking = ChunkingParams(min_kib * KiB, avg_kib * KiB, max_kib * KiB)
    except ConfigError as error:
        raise click.UsageError(str(error)) from error
    config = codec_bench.CodecBenchConfig(
        size_bytes=size_mib * codec_bench.MiB,
        data=data,
        workers=workers,
        zstd_level=zstd_level,
        repeats=repeats,
        chunking=chunking,
    )
    result = codec_bench.run_codec_bench(
        config, progress=lambda line: stderr_console.print(f"[dim]{line}[/dim]")
    )
    print_table(
        f"codec: {size_mib} MiB of {data} data, {result['chunks']} chunks "
        f"(mean {result['chunk_mean_bytes'] / KiB:.0f} KiB), GB/s of plaintext, "
        f"load average {result['load_average_1m']}",
        ("stage", "1 thread", f"{workers} threads", "speedup"),
        [
            (name, r["gbps_1_thread"], r["gbps_all_threads"], r["speedup"])
            for name, r in result["stages"].items()
        ],
    )
    if as_json:
        emit_json(result)
