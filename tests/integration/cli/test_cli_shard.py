"""`cairn shard ...` against real node processes: splitting the only shard at `bucket/m`
waits until the split is carried out, the listing then shows two shards that hold every
object between them, and splitting at a boundary again, or at something that is not
BUCKET/KEY, is a clear error with a non-zero exit."""

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cairn.cli.main import cli
from cairn.client.sdk import CairnClient
from cairn.localcluster import LocalCluster

pytestmark = pytest.mark.xdist_group("processes")
SECRET = "shard-command-test-secret"
SETTINGS = {"heartbeat_interval_s": "0.2", "index_split_keys": "0"}  # no automatic splits
BELOW = ["apple", "kiwi", "lemon"]
ABOVE = ["m", "mango", "pear", "zucchini"]  # from the split point `m` on
FIGURES_DEADLINE_S = 20.0


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def cairn(*args: str) -> Any:
    """Run `cairn ARGS` (with --json); the last stdout line as JSON."""
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


async def put_objects(cluster: LocalCluster) -> None:
    sdk = CairnClient([f"http://{n.host}:{n.s3_port}" for n in cluster.nodes.values()], SECRET)
    try:
        await sdk.make_bucket("bucket")
        for key in BELOW + ABOVE:
            await sdk.put("bucket", key, key.encode())
    finally:
        await sdk.close()


def listed_with_figures(where: list[str]) -> Any:
    """`cairn shard list --json` once every shard has answered with its figures (the new
    group may still be electing its first leader just after the split)."""
    deadline = time.monotonic() + FIGURES_DEADLINE_S
    while True:
        listed = cairn("shard", "list", *where, "--json")
        if all(s["keys"] is not None for s in listed["shards"]):
            return listed
        assert time.monotonic() < deadline, listed
        time.sleep(0.1)  # poll a condition with a deadline


def test_split_list_and_refused_splits(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, 3, secret=SECRET, raft=True, settings=SETTINGS) as cluster:
        where = ["--cluster", str(tmp_path / "cluster.json")]
        asyncio.run(put_objects(cluster))
        before = cairn("shard", "list", *where, "--json")
        assert [(s["start"], s["end"]) for s in before["shards"]] == [("-inf", "+inf")]
        assert before["shards"][0]["keys"] == len(BELOW + ABOVE)

        split = invoke("shard", "split", "bucket/m", *where)
        assert split.exit_code == 0, split.output
        assert "split done" in split.stdout
        assert "[bucket/m, +inf)" in split.stdout

        listed = listed_with_figures(where)
        assert listed["epoch"] > before["epoch"]
        shards = listed["shards"]
        assert len(shards) == 2
        assert not any(s["pending"] for s in shards)
        assert [(s["start"], s["end"]) for s in shards] == [
            ("-inf", "bucket/m"),
            ("bucket/m", "+inf"),
        ]
        assert [s["keys"] for s in shards] == [len(BELOW), len(ABOVE)]
        assert sum(s["keys"] for s in shards) == len(BELOW + ABOVE)
        assert sum(s["objects"] for s in shards) == len(BELOW + ABOVE)
        assert all(s["leader"] for s in shards)

        text = invoke("shard", "list", *where)
        assert text.exit_code == 0, text.output
        assert "bucket/m" in text.stdout and "-inf" in text.stdout and "+inf" in text.stdout
        assert "pending" not in text.stdout

        again = invoke("shard", "split", "bucket/m", *where)
        assert again.exit_code == 1
        assert "bucket/m is already a shard boundary" in again.stderr
        assert "Traceback" not in again.output

        no_slash = invoke("shard", "split", "bucket", *where)
        assert no_slash.exit_code == 2
        assert "give BUCKET/KEY" in no_slash.stderr
        bad_bucket = invoke("shard", "split", "Not_A_Bucket/m", *where)
        assert bad_bucket.exit_code == 2
        assert "bucket name" in bad_bucket.stderr
        assert "Traceback" not in no_slash.output + bad_bucket.output

        after = cairn("shard", "list", *where, "--json")
        assert len(after["shards"]) == 2  # nothing was proposed by the refused splits
