"""`cairn bench ...`: every benchmark. Each workload lives in `cairn.bench.<name>` and its
command in a `cairn.cli.bench_<name>` module registered below. Every command takes
`--json` and then prints one JSON object as the last line of stdout."""

import click

from cairn.cli.bench_balance import bench_balance
from cairn.cli.bench_chunkstore import bench_chunkstore
from cairn.cli.bench_cluster import bench_cluster
from cairn.cli.bench_codec import bench_codec
from cairn.cli.bench_dedup import bench_dedup
from cairn.cli.bench_lock import bench_lock
from cairn.cli.bench_placement import bench_placement
from cairn.cli.bench_raft import raft as bench_raft
from cairn.cli.bench_rpc import rpc as bench_rpc
from cairn.cli.bench_s3 import bench_s3
from cairn.cli.bench_split import bench_split


@click.group()
def bench() -> None:
    """Measure throughput and latency; print the configuration with the figures."""


bench.add_command(bench_placement)
bench.add_command(bench_balance)
bench.add_command(bench_rpc)
bench.add_command(bench_codec)
bench.add_command(bench_dedup)
bench.add_command(bench_chunkstore)
bench.add_command(bench_raft)
bench.add_command(bench_cluster)
bench.add_command(bench_lock)
bench.add_command(bench_s3)
bench.add_command(bench_split)
