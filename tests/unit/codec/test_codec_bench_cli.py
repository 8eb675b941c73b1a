"""`cairn bench codec` and `cairn bench dedup` with tiny sizes: they run, and the last line
of stdout is one JSON object with the figures."""

import json
import shutil
from typing import Any

from click.testing import CliRunner

from cairn.cli.main import cli

SMALL_CHUNKS = ["--min-kib", "16", "--avg-kib", "64", "--max-kib", "256"]


def last_json(output: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def test_bench_codec_json() -> None:
    args = ["bench", "codec", "--size-mib", "4", "--repeats", "1", "--json", *SMALL_CHUNKS]
    outcome = CliRunner().invoke(cli, args)
    assert outcome.exit_code == 0, outcome.output
    result = last_json(outcome.stdout)
    assert result["bench"] == "codec"
    assert set(result["stages"]) == {
        "chunking",
        "hashing",
        "compression",
        "encryption",
        "pipeline",
        "decode",
    }
    for figures in result["stages"].values():
        assert figures["gbps_1_thread"] > 0
        assert figures["gbps_all_threads"] > 0
    assert result["chunks"] > 10


def run_dedup(*extra: str) -> dict[str, Any]:
    args = ["bench", "dedup", "--base-mib", "2", "--versions", "2", "--json", *SMALL_CHUNKS]
    outcome = CliRunner().invoke(cli, [*args, *extra])
    assert outcome.exit_code == 0, outcome.output
    result = last_json(outcome.stdout)
    cairn = result["cairn"]
    assert result["bench"] == "dedup"
    assert cairn["logical_bytes"] == result["dataset"]["logical_bytes"] > 2 * 1024 * 1024
    assert cairn["stored_bytes"] <= cairn["unique_bytes"] < cairn["logical_bytes"]
    assert cairn["dedup_ratio"] > 1.2
    return result


def test_bench_dedup_without_restic() -> None:
    result = run_dedup("--restic-bin", "/nonexistent/restic")
    assert result["restic"]["available"] is False
    assert "not found" in result["restic"]["reason"]
    assert "cairn_to_restic_stored" not in result


def test_bench_dedup_with_restic_when_installed() -> None:
    result = run_dedup()
    restic = result["restic"]
    assert restic["available"] is (shutil.which("restic") is not None)
    if restic["available"]:
        assert 0 < restic["stored_bytes"] <= restic["unique_bytes"]
        assert restic["dedup_ratio"] > 1.2
        assert result["cairn_to_restic_stored"] > 0
