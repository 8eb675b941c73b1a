"""`cairn node ...` against real node processes: draining a node bumps the map epoch and
shows it draining, weights and domains land in the map, and an unknown node is a clear
error that names the nodes that do exist."""

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cairn.cli.main import cli
from cairn.localcluster import LocalCluster

pytestmark = pytest.mark.xdist_group("processes")
SECRET = "node-command-test-secret"


def cairn(*args: str, ok: bool = True) -> Any:
    """Run `cairn ARGS --json` in process; the last stdout line as JSON (or the result)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if not ok:
        return result
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_drain_weight_domain_and_unknown_node(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, 3, secret=SECRET, raft=True):
        where = ["--cluster", str(tmp_path / "cluster.json"), "--json"]
        before = cairn("node", "list", *where)
        assert sorted(m["name"] for m in before["members"]) == ["node-1", "node-2", "node-3"]

        drained = cairn("node", "drain", "node-2", *where)
        assert drained["epoch"] > before["epoch"]
        assert drained["member"]["name"] == "node-2"
        assert drained["member"]["admin"] == "draining"
        listed = cairn("node", "list", *where)
        states = {m["name"]: m["admin"] for m in listed["members"]}
        assert states == {"node-1": "active", "node-2": "draining", "node-3": "active"}
        assert listed["epoch"] == drained["epoch"]

        undrained = cairn("node", "undrain", drained["member"]["id"], *where)  # by member id
        assert undrained["member"]["admin"] == "active"
        assert undrained["epoch"] > drained["epoch"]

        weighed = cairn("node", "weight", "node-1", "2.5", *where)
        assert weighed["member"]["weight"] == 2.5
        placed = cairn("node", "domain", "node-3", "--zone", "z1", "--rack", "r7", *where)
        member = placed["member"]
        assert (member["zone"], member["rack"], member["host"]) == ("z1", "r7", "")

        text = CliRunner().invoke(cli, ["node", "drain", "node-3", *where[:2]])
        assert text.exit_code == 0, text.output
        assert "draining" in text.stdout and "epoch" in text.stdout

        unknown = cairn("node", "drain", "node-9", *where, ok=False)
        assert unknown.exit_code == 1
        assert "no node 'node-9'" in unknown.stderr
        assert "node-1" in unknown.stderr  # names the nodes that exist
        assert "Traceback" not in unknown.output
