"""`cairn bench balance` end to end with a short simulated run: table and last-line JSON."""

import json

from click.testing import CliRunner

from cairn.balancing import STRATEGY_NAMES
from cairn.cli.main import cli


def test_bench_balance_reports_every_strategy_and_ends_with_json() -> None:
    args = ["bench", "balance", "--duration", "3", "--rate", "200", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures["strategies"]) == set(STRATEGY_NAMES)
    for name, row in figures["strategies"].items():
        assert abs(sum(row["share"].values()) - 1.0) < 1e-9, name
        assert row["p50_ms"] <= row["p99_ms"]
    again = CliRunner().invoke(cli, args)
    assert json.loads(again.stdout.strip().splitlines()[-1]) == figures  # seeded: replays


def test_bench_balance_rejects_unknown_strategies() -> None:
    result = CliRunner().invoke(cli, ["bench", "balance", "--strategies", "magic"])
    assert result.exit_code == 2
