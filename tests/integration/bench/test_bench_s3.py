"""`cairn bench s3` runs end to end against a Cairn cluster it starts itself (tiny sizes,
a fraction of a second per cell, no Swift): its JSON has every cell with PUT and GET
figures, no errors, and every GET verified. The signer is checked against botocore's."""

import datetime
import hashlib
import json
from typing import Any

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from click.testing import CliRunner

from cairn.bench.peers.swift import SwiftAllInOne, SwiftUnavailable
from cairn.bench.s3 import Signer, ratios
from cairn.cli.main import cli

pytestmark = pytest.mark.xdist_group("processes")

FIGURES = (
    "ops", "errors", "ops_per_s", "mb_per_s", "p50_ms", "p99_ms", "client_cores",
    "machine_cpu_ms_per_mb",
)  # fmt: skip


def test_bench_s3_own_cluster_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """Swift is asked for but cannot start (made so here): the bench says why and runs alone."""

    def no_swift(self: SwiftAllInOne, progress: object = None) -> None:
        raise SwiftUnavailable("not in this test")

    monkeypatch.setattr(SwiftAllInOne, "start", no_swift)
    result = CliRunner().invoke(
        cli,
        ["bench", "s3", "--peer", "swift", "--sizes", "4KiB,300KiB", "--concurrency", "1,3",
         "--seconds", "0.2", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["benchmark"] == "s3" and data["config"]["peer"] == "swift"
    assert data["systems"]["swift"]["available"] is False and "ratios" not in data
    assert "not in this test" in data["systems"]["swift"]["reason"]
    cairn = data["systems"]["cairn"]
    assert cairn["available"] and cairn["endpoint"].startswith("http://127.0.0.1:")
    assert len(set(cairn["endpoints"])) == 3 == len(cairn["gateway_pids"])  # every node serves
    cells = cairn["cells"]
    assert [(c["size_bytes"], c["concurrency"]) for c in cells] == [
        (s, c) for s in (4096, 300 * 1024) for c in (1, 3)
    ]
    for cell in cells:
        for phase in (cell["put"], cell["get"]):
            assert all(name in phase for name in FIGURES)
            assert phase["ops"] > 0 and phase["errors"] == 0, phase["error_kinds"]
            assert phase["p99_ms"] >= phase["p50_ms"] > 0
            assert phase["machine_cpu_ms_per_mb"] == pytest.approx(
                phase["machine_busy_cores"] * 1000 / phase["mb_per_s"]
            )
        get = cell["get"]
        assert get["verified"] == get["ops"] and get["mismatches"] == 0
        assert get["mb_per_s"] == pytest.approx(get["ops_per_s"] * cell["size_bytes"] / 1e6)


def test_signer_matches_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bench's SigV4 headers equal botocore's for the same request and time."""
    now_s = 1_700_000_000.0
    frozen = datetime.datetime.fromtimestamp(now_s, datetime.UTC).replace(tzinfo=None)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: frozen)
    body = b"some bytes"
    payload = hashlib.sha256(body).hexdigest()  # botocore hashes the body over http
    ours = Signer("AKID", "secret/key", "us-east-1", "127.0.0.1:9000").headers(
        "PUT", "/bucket/some/key-1", payload, now_s
    )
    request = AWSRequest(
        method="PUT",
        url="http://127.0.0.1:9000/bucket/some/key-1",
        data=body,
    )
    auth = botocore.auth.S3SigV4Auth(Credentials("AKID", "secret/key"), "s3", "us-east-1")
    auth.add_auth(request)
    assert ours["authorization"] == request.headers["Authorization"]


def test_ratios_per_cell() -> None:
    def cell(ops: float, p99: float) -> dict[str, Any]:
        phase = {"ops_per_s": ops, "mb_per_s": ops / 10, "p99_ms": p99,
                 "machine_cpu_ms_per_mb": 20_000 / ops if ops else 0.0}  # fmt: skip
        return {"size": "4 KiB", "size_bytes": 4096, "concurrency": 16, "put": phase,
                "get": phase}  # fmt: skip

    (row,) = ratios([cell(300.0, 10.0)], [cell(100.0, 40.0)])
    assert row["put_ops"] == row["get_mb"] == pytest.approx(3.0)
    assert row["put_p99"] == pytest.approx(0.25)
    assert row["put_cpu_per_mb"] == pytest.approx(1 / 3)  # a byte costs us a third
    assert ratios([cell(1.0, 1.0)], [cell(0.0, 0.0)])[0]["get_ops"] is None
