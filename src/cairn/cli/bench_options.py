"""Option values the benchmark commands share: lists of sizes and of concurrency levels."""

import click

from cairn.bench.cluster import parse_size


def size_list(text: str) -> tuple[int, ...]:
    """`--sizes` of the benchmarks: "4KiB,1MiB" -> (4096, 1048576)."""
    try:
        sizes = tuple(parse_size(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--sizes") from None
    if any(size < 1 for size in sizes):
        raise click.BadParameter("sizes must be positive", param_hint="--sizes")
    return sizes


def level_list(text: str) -> tuple[int, ...]:
    """`--concurrency` of the benchmarks: "1,16" -> (1, 16)."""
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(
            "a comma-separated list of integers", param_hint="--concurrency"
        ) from None
    if any(level < 1 for level in levels):
        raise click.BadParameter("concurrency must be at least 1", param_hint="--concurrency")
    return levels
