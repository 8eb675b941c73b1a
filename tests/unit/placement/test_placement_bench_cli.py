"""`cairn bench placement` end to end with tiny parameters: table, plot, last-line JSON."""

import json
from pathlib import Path

from click.testing import CliRunner

from cairn.cli.main import cli


def test_bench_placement_prints_a_table_writes_a_plot_and_ends_with_json(tmp_path: Path) -> None:
    plot = tmp_path / "placement.png"
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "placement",
            "--partitions",
            "256",
            "--nodes",
            "3,6",
            "--json",
            "--plot",
            str(plot),
        ],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["benchmark"] == "placement"
    assert plot.stat().st_size > 10_000
    rows = {(r["algorithm"], r["weights"], r["nodes"]): r for r in figures["rows"]}
    assert rows[("rendezvous", "equal", 6)]["leave_collateral"] == 0.0
    assert rows[("modulo", "equal", 6)]["join_ratio"] > 3
    assert ("rendezvous-R3-zones", "equal", 3) not in rows  # N - 1 < R
    assert "rendezvous" in result.stdout


def test_bench_placement_rejects_bad_node_counts() -> None:
    result = CliRunner().invoke(cli, ["bench", "placement", "--nodes", "1,x"])
    assert result.exit_code == 2
