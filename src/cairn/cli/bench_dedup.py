"""`cairn bench dedup`: dedup ratio and throughput of our codec on a versioned copy of the
standard library, against restic on the same files when it is installed (the workload is
`cairn.bench.dedup`)."""

import os
from typing import Any

import click

from cairn.base.errors import ConfigError
from cairn.bench import dedup as dedup_bench
from cairn.cli.output import emit_json, print_table, stderr_console
from cairn.codec import ChunkingParams

KiB = 1024
MiB = 1024 * KiB


def _mib(value: Any) -> str:
    return "-" if value is None else f"{value / MiB:,.1f}"


@click.command("dedup")
@click.option(
    "--base-mib", type=float, default=64.0, show_default=True, help="Size of version 0 in MiB."
)
@click.option("--versions", default=5, show_default=True, help="Versions of the tree.")
@click.option("--seed", default=0, show_default=True, help="Seed of the sample and edits.")
@click.option("--workers", default=os.cpu_count() or 1, show_default=True, help="Codec threads.")
@click.option(
    "--restic-bin", default="restic", show_default=True, help="restic executable to compare."
)
@click.option("--min-kib", default=256, show_default=True, help="Minimum chunk size.")
@click.option("--avg-kib", default=1024, show_default=True, help="Average chunk size.")
@click.option("--max-kib", default=4096, show_default=True, help="Maximum chunk size.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def bench_dedup(
    base_mib: float,
    versions: int,
    seed: int,
    workers: int,
    restic_bin: str,
    min_kib: int,
    avg_kib: int,
    max_kib: int,
    as_json: bool,
) -> None:
    """Dedup ratio and throughput of the codec on edited versions of a tree, vs restic."""
    if base_mib <= 0 or versions < 1 or workers < 1:
        raise click.UsageError("--base-mib, --versions and --workers must be positive")
    try:
        chunking = ChunkingParams(min_kib * KiB, avg_kib * KiB, max_kib * KiB)
    except ConfigError as error:
        raise click.UsageError(str(error)) from error
    config = dedup_bench.DedupBenchConfig(
        base_bytes=int(base_mib * MiB),
        versions=versions,
        seed=seed,
        workers=workers,
        restic_bin=restic_bin,
        chunking=chunking,
    )
    result = dedup_bench.run_dedup_bench(
        config, progress=lambda line: stderr_console.print(f"[dim]{line}[/dim]")
    )
    cairn, restic = result["cairn"], result["restic"]
    rows = [
        (
            "cairn",
            _mib(cairn["logical_bytes"]),
            _mib(cairn["unique_bytes"]),
            _mib(cairn["stored_bytes"]),
            cairn["dedup_ratio"],
            cairn["reduction_ratio"],
            cairn["gbps"],
        )
    ]
    if restic["available"]:
        rows.append(
            (
                "restic",
                _mib(result["dataset"]["logical_bytes"]),
                _mib(restic["unique_bytes"]),
                _mib(restic["stored_bytes"]),
                restic["dedup_ratio"],
                restic["reduction_ratio"],
                restic["gbps"],
            )
        )
    else:
        rows.append(("restic", "absent", "-", "-", "-", "-", restic["reason"]))
    dataset = result["dataset"]
    print_table(
        f"dedup: {dataset['files']} files in {dataset['versions']} versions, "
        f"{_mib(dataset['logical_bytes'])} MiB",
        ("system", "logical MiB", "unique MiB", "stored MiB", "dedup", "dedup+zstd", "GB/s"),
        rows,
    )
    if as_json:
        emit_json(result)
