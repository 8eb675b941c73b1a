"""`cairn up` as a user runs it: prints endpoints and credentials, writes cluster.json,
comes up with a metadata leader, a full cluster map and a bootstrapped directory (as
`cairn status --json` reports), keeps its S3 keys across restarts on one directory, and
Ctrl-C or SIGTERM stops every node it started."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.xdist_group("processes")
SECRET = "up-command-test-secret"


def start_up(data: Path, nodes: int, *extra: str) -> tuple["subprocess.Popen[str]", dict[str, Any]]:
    """Run `cairn up`; return it and the JSON it printed once the cluster is up. Its
    stderr goes to a file next to the data dir: a pipe nobody reads could fill up and
    block `cairn up` in a write, which would look like a hang on stop."""
    data.parent.mkdir(parents=True, exist_ok=True)
    with (data.parent / f"{data.name}-up-stderr.log").open("a") as err_file:
        up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cairn",
                "up",
                "--nodes",
                str(nodes),
                "--data",
                str(data),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
            env={**os.environ, "CAIRN_CLUSTER_SECRET": SECRET},
        )
    assert up.stdout is not None
    printed_lines = []
    for line in up.stdout:  # the JSON object ends with a closing brace at column 0
        printed_lines.append(line)
        if line == "}\n":
            break
    if not printed_lines:
        up.kill()
        up.wait()
        raise AssertionError(f"cairn up printed nothing; stderr:\n{up_stderr(data)}")
    return up, json.loads("".join(printed_lines))


UP_STOP_WAIT_S = 60
"""`cairn up` gives its nodes 10 s to stop before SIGKILL; the rest is slack for CI load."""


def up_stderr(data: Path) -> str:
    return (data.parent / f"{data.name}-up-stderr.log").read_text(errors="replace")[-4000:]


def stop_and_check(up: "subprocess.Popen[str]", signum: int, pids: list[int], data: Path) -> None:
    up.send_signal(signum)
    try:
        code = up.wait(timeout=UP_STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        up.kill()
        up.wait()
        err = up_stderr(data)
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        raise AssertionError(
            f"cairn up did not exit {UP_STOP_WAIT_S} s after signal {signum}; "
            f"nodes still alive: {alive}; its stderr:\n{err}"
        ) from None
    assert code == 0
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        assert time.monotonic() < deadline, "nodes outlived `cairn up`"
        time.sleep(0.02)  # poll a condition with a deadline


def status_json(data: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "cairn", "status", "--cluster", str(data), "--json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")},
    )
    assert result.returncode == 0, result.stderr
    last: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return last


def test_up_prints_writes_reports_ready_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "local"
    up, printed = start_up(data, 3, "--set", "index_split_keys=40000")
    try:
        for node in printed["nodes"]:  # --set reaches every node
            argv = Path(f"/proc/{node['pid']}/cmdline").read_bytes().split(b"\0")
            assert b"index_split_keys=40000" in argv
        written = json.loads((data / "cluster.json").read_text())
        assert printed == written
        assert printed["cluster_secret"] == SECRET
        nodes = printed["nodes"]
        assert [n["node_id"] for n in nodes] == ["node-1", "node-2", "node-3"]
        assert [n["raft_id"] for n in nodes] == [1, 2, 3]
        assert sorted(n["member_id"] for n in nodes) == ["n1", "n2", "n3"]
        assert all(n["rpc"] and n["admin"].startswith("http://") for n in nodes)
        assert printed["s3_endpoint"] == nodes[0]["s3"]
        assert len(printed["access_key"]) == 20 and printed["access_key"].isalnum()
        assert len(printed["secret_key"]) == 40
        for name in ("cluster.json", "credentials.json"):
            assert (data / name).stat().st_mode & 0o777 == 0o600

        status = status_json(data)
        assert [n["health"] for n in status["nodes"]] == ["ok"] * 3
        assert [n["liveness"] for n in status["nodes"]] == ["alive"] * 3
        root = status["groups"][0]
        assert root["kind"] == "root" and root["leader"] in {"node-1", "node-2", "node-3"}
        assert root["term"] >= 1
        assert status["directory_bootstrapped"] is True
        assert [g["kind"] for g in status["groups"][1:]] == ["index shard"]
        assert status["balance"]["under_replicated"] == 0
        assert status["errors"] == []

        stop_and_check(up, signal.SIGINT, [n["pid"] for n in nodes], data)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


def test_up_again_keeps_credentials_and_sigterm_stops_every_node(tmp_path: Path) -> None:
    data = tmp_path / "local"
    keys = []
    for _ in range(2):
        up, printed = start_up(data, 1)
        try:
            keys.append((printed["access_key"], printed["secret_key"]))
            assert printed["nodes"][0]["member_id"] == "n1"  # rejoined under its old id
            stop_and_check(up, signal.SIGTERM, [n["pid"] for n in printed["nodes"]], data)
        finally:
            if up.poll() is None:
                up.kill()
                up.wait()
    assert keys[0] == keys[1]


def test_up_refuses_a_bad_set_before_starting_anything(tmp_path: Path) -> None:
    for assignment, reason in [
        ("bogus=1", "unknown field `bogus`"),
        ("index_split_keys=-3", "index_split_keys"),
        ("nothing", "expects field=value"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "cairn", "up", "--data", str(tmp_path), "--set", assignment],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2 and reason in result.stderr, result.stderr
        assert not (tmp_path / "cluster.json").exists()
