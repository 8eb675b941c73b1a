"""`cairn bench cluster` runs end to end at tiny sizes and a fraction of a second per cell:
its JSON has every cell with put and get figures, every GET verified, no dedup hits, and
a repair timeline that reached full replication."""

import json
from typing import Any

import pytest
from click.testing import CliRunner

from cairn.bench.cluster import format_size, parse_size
from cairn.cli.main import cli

pytestmark = pytest.mark.xdist_group("processes")

FIGURES = ("ops", "errors", "ops_per_s", "mb_per_s", "p50_ms", "p99_ms")


def run_json(args: list[str]) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["bench", "cluster", *args, "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def check_cells(data: dict[str, Any], sizes: list[int], levels: list[int]) -> None:
    cells = data["cells"]
    assert [(c["size_bytes"], c["concurrency"]) for c in cells] == [
        (s, c) for s in sizes for c in levels
    ]
    for cell in cells:
        put, get = cell["put"], cell["get"]
        for phase in (put, get):
            assert all(name in phase for name in FIGURES)
            assert phase["ops"] > 0 and phase["errors"] == 0
            assert phase["p99_ms"] >= phase["p50_ms"] > 0
        assert put["dedup_hits"] == 0
        assert get["verified"] == get["ops"] and get["mismatches"] == 0


def test_bench_cluster_http_with_repair() -> None:
    data = run_json(
        ["--sizes", "4KiB,300KiB", "--concurrency", "1,2", "--seconds", "0.2",
         "--repair-mib", "3"]
    )  # fmt: skip
    config = data["config"]
    assert config["api"] == "http" and config["replica_count"] == 3
    check_cells(data, [4096, 300 * 1024], [1, 2])
    repair = data["repair"]
    assert repair["completed"], repair
    assert 0 < repair["down_s"] <= repair["lost_s"] <= repair["full_replication_s"]
    assert repair["victim_bytes"] > 0 and repair["bytes_copied"] >= repair["victim_bytes"]
    assert repair["readback_verified"] == repair["objects"] == 3


def test_bench_cluster_rpc_without_repair() -> None:
    data = run_json(
        ["--api", "rpc", "--sizes", "1MiB", "--concurrency", "2", "--seconds", "0.2",
         "--no-repair"]
    )  # fmt: skip
    check_cells(data, [1 << 20], [2])
    assert "repair" not in data


def test_sizes_parse_and_format() -> None:
    assert [parse_size(t) for t in ("4KiB", "1MiB", "16m", "4096", "2 GiB")] == [
        4096, 1 << 20, 16 << 20, 4096, 2 << 30,
    ]  # fmt: skip
    assert format_size(16 << 20) == "16 MiB" and format_size(1000) == "1000 B"
    with pytest.raises(ValueError):
        parse_size("4 parsecs")
