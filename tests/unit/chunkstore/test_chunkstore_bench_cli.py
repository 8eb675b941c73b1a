"""`cairn bench chunkstore --json` runs with tiny sizes and ends with one JSON line."""

import json

from click.testing import CliRunner

from cairn.cli.main import cli


def test_bench_chunkstore_json(tmp_path: object) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "chunkstore",
            "--dir",
            str(tmp_path),
            "--sizes",
            "4096,65536",
            "--ops",
            "50",
            "--concurrency",
            "4",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["benchmark"] == "chunkstore"
    assert [r["chunk_bytes"] for r in figures["results"]] == [4096, 65536]
    for r in figures["results"]:
        assert r["put_ops"] == 50
        assert r["get_ops"] == 50
        assert r["put_mb_per_s"] > 0
        assert r["get_ops_per_s"] > 0
    assert figures["raw_write_mb_per_s"] > 0
    assert figures["put_vs_raw_ratio"] > 0
