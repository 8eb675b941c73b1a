"""`cairn bench rpc`, `raft`, `lock` and `split` run end to end (tiny
sizes) and end their stdout with one JSON object."""

import json

import pytest
from click.testing import CliRunner

from cairn.cli.main import cli

pytestmark = pytest.mark.xdist_group("processes")


def last_json(output: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(output.strip().splitlines()[-1])
    return result


def test_bench_rpc_json() -> None:
    result = CliRunner().invoke(
        cli, ["bench", "rpc", "--seconds", "0.2", "--sizes", "1024", "--concurrency", "1,4",
              "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = last_json(result.output)
    cases = data["results"]
    assert isinstance(cases, list)
    assert [c["concurrency"] for c in cases] == [1, 4]
    assert all(c["calls"] > 0 and c["p99_ms"] >= c["p50_ms"] > 0 for c in cases)


def test_bench_raft_json_without_peer() -> None:
    result = CliRunner().invoke(
        cli, ["bench", "raft", "--seconds", "0.3", "--concurrency", "2", "--peer", "none",
              "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = last_json(result.output)
    cairn = data["cairn"]
    assert isinstance(cairn, dict)
    assert cairn["writes"][0]["ops"] > 0
    assert cairn["reads"][0]["ops"] > 0
    assert cairn["writes"][0]["errors"] == 0
    assert "etcd" not in data


def test_bench_lock_contended_case_alone() -> None:
    result = CliRunner().invoke(
        cli, ["bench", "lock", "--seconds", "0.5", "--peer", "none", "--cases", "contended",
              "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = last_json(result.output)
    cairn = data["cairn"]
    assert isinstance(cairn, dict) and set(cairn) == {"contended"}
    contended = cairn["contended"]
    assert contended["clients"] == 8 and contended["errors"] == 0
    assert contended["cycles"] > 0 and contended["acquire_p99_ms"] >= contended["acquire_p50_ms"]
    assert data["config"]["cases"] == ["contended"]  # type: ignore[index]
    assert data["ratios"] == {}


def test_bench_lock_refuses_an_unknown_case() -> None:
    result = CliRunner().invoke(cli, ["bench", "lock", "--cases", "contended,fast"])
    assert result.exit_code == 2
    assert "unknown fast" in result.output and "--cases" in result.output


def test_bench_split_json() -> None:
    result = CliRunner().invoke(cli, ["bench", "split", "--keys", "300", "--probes", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = last_json(result.output)
    cairn = data["cairn"]
    assert isinstance(cairn, dict) and cairn["split_s"] > 0 and cairn["new_group"] == 2
    assert cairn["keys_total"] >= 300
    for kind in ("reads", "writes"):
        windows = cairn[kind]
        assert set(windows) == {"before", "during", "after"}
        assert windows["before"]["ops"] > 0 and windows["after"]["ops"] > 0
        assert all(w["errors"] == 0 for w in windows.values())
    assert data["config"]["keys"] == 300  # type: ignore[index]
