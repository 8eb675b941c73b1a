"""`cairn up` as a user runs it: prints endpoints and credentials, writes cluster.json,
and Ctrl-C stops every node it started."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("processes")


def test_up_prints_writes_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "local"
    up = subprocess.Popen(
        [sys.executable, "-m", "cairn", "up", "--nodes", "2", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CAIRN_CLUSTER_SECRET": "up-command-test-secret"},
    )
    try:
        assert up.stdout is not None
        printed_lines = []
        for line in up.stdout:  # the JSON object ends with a closing brace at column 0
            printed_lines.append(line)
            if line == "}\n":
                break
        printed = json.loads("".join(printed_lines))
        written = json.loads((data / "cluster.json").read_text())
        assert printed == written
        assert printed["cluster_secret"] == "up-command-test-secret"
        pids = [node["pid"] for node in printed["nodes"]]
        assert len(pids) == 2
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in pids):
            assert time.monotonic() < deadline, "nodes outlived `cairn up`"
            time.sleep(0.02)  # poll a condition with a deadline
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
