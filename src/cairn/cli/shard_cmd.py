"""`cairn shard ...`: list the index shards of the object index and split one by hand.

`list` reads the shard directory from the root group, then each shard's figures from its
leader (`ShardStatsQuery` at `lease`, naming the range the directory gives it, so a shard
that does not cover exactly that range yet answers `WrongShard` instead of counting keys
twice). A shard that does not answer within `STATS_TIMEOUT_SECONDS` shows `n/a` and a
warning on stderr: the new half of a pending split has no replicas until the root leader
carries the split out. When a shard answers `WrongShard` because the directory moved on
meanwhile, the listing starts over on the new directory, at most `LIST_ATTEMPTS_MAX`
times.

`split BUCKET/KEY` proposes `SplitShard(encode_object_key(bucket, key))` to the root
group: from that key on, the range of the shard holding it goes to a new group. The
directory records the split as pending (`ShardInfo.parent`) and the root leader's
`ShardSplitter` carries it out in its next round; the command polls the directory until
it is done, at most `--wait` seconds (0: return at once), and exits 1 if it is still
pending then: the split is recorded and will still finish in the background.

Range boundaries are encoded object keys (`bucket`, 0x00, `key`); they print as
`bucket/key`, with `-inf` and `+inf` for the open ends, and bytes that are not UTF-8 (or
not printable) as backslash escapes.
"""

import asyncio
import time
from dataclasses import dataclass

import click

from cairn.base.errors import CairnError, RemoteError
from cairn.cli.node_cmd import _with_meta, cluster_option, json_option
from cairn.cli.output import emit_json, print_table
from cairn.cli.status_cmd import _bytes
from cairn.meta.buckets import InvalidBucketName, validate_bucket_name
from cairn.meta.directory import ShardInfo, SplitShard
from cairn.node.meta_client import MetaClient
from cairn.node.meta_messages import DirectoryReply, ShardBounds, ShardStatsQuery, ShardStatsReply
from cairn.placement import encode_object_key

STATS_TIMEOUT_SECONDS = 5.0
"""How long `list` waits for one shard's figures before it shows `n/a`."""
STATS_CONCURRENCY_MAX = 16
"""Shards `list` queries at once."""
LIST_ATTEMPTS_MAX = 3
"""Directories `list` tries when shards answer for other ranges than it expects."""
SPLIT_WAIT_SECONDS_DEFAULT = 30.0
SPLIT_POLL_SECONDS = 0.2


class SplitRefused(CairnError):
    """The split point cannot be used (checked before anything is proposed)."""


# -- showing keys ---------------------------------------------------------------------


def _escaped(part: bytes) -> str:
    """`part` as text: UTF-8 where it is, `\\xNN` for other bytes, escapes for
    unprintable characters and backslashes (so the text reads back unambiguously)."""
    out: list[str] = []
    for char in part.decode("utf-8", errors="surrogateescape"):
        if "\udc80" <= char <= "\udcff":
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        elif char == "\\":
            out.append("\\\\")
        elif char.isprintable():
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def readable_key(encoded: bytes) -> str:
    """An encoded object key as `bucket/key` (a key without the 0x00 separator, which the
    directory never makes, shows escaped whole)."""
    bucket, separator, key = encoded.partition(b"\x00")
    if not separator:
        return _escaped(encoded)
    return f"{_escaped(bucket)}/{_escaped(key)}"


def readable_start(start: bytes) -> str:
    return "-inf" if start == b"" else readable_key(start)


def readable_end(end: bytes | None) -> str:
    return "+inf" if end is None else readable_key(end)


def range_json(shard: ShardInfo) -> dict[str, object]:
    """A shard's range, replicas and state as `--json` shows them."""
    return {
        "group_id": shard.group_id,
        "start": readable_start(shard.start),
        "end": readable_end(shard.end),
        "start_hex": shard.start.hex(),
        "end_hex": None if shard.end is None else shard.end.hex(),
        "replicas": list(shard.replicas),
        "epoch": shard.epoch,
        "pending": shard.parent != 0,
    }


def parse_split_point(text: str) -> bytes:
    """`BUCKET/KEY` as the encoded key to split at; click.BadParameter when it is not one."""
    bucket, slash, key = text.partition("/")
    if not slash:
        raise click.BadParameter(
            f"{text!r} has no '/': give BUCKET/KEY, e.g. photos/m", param_hint="BUCKET/KEY"
        )
    try:
        validate_bucket_name(bucket)
        return encode_object_key(bucket, key)
    except (InvalidBucketName, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="BUCKET/KEY") from None


# -- cairn shard list -----------------------------------------------------------------


@dataclass(frozen=True)
class ShardRow:
    shard: ShardInfo
    stats: ShardStatsReply | None
    error: str = ""
    error_code: str = ""
    """The machine's code when the error is a `RemoteError` (`WrongShard`, ...)."""

    def to_json(self) -> dict[str, object]:
        shard, stats = self.shard, self.stats
        return {
            **range_json(shard),
            "parent": shard.parent,
            "keys": None if stats is None else stats.key_count,
            "objects": None if stats is None else stats.stats.objects,
            "versions": None if stats is None else stats.stats.versions,
            "bytes": None if stats is None else stats.stats.bytes,
            "leader": None if stats is None else stats.leader_address or None,
            "error": self.error or None,
        }

    def to_cells(self, splitting: dict[int, int]) -> list[object]:
        """The table row; `splitting`: parent group -> the pending group split from it."""
        shard, stats = self.shard, self.stats
        state = "ok"
        if shard.parent:
            state = f"pending (split from {shard.parent})"
        elif shard.group_id in splitting:
            state = f"splitting (into {splitting[shard.group_id]})"
        figures: list[object] = ["n/a"] * 4
        if stats is not None:
            figures = [
                stats.key_count,
                stats.stats.objects,
                _bytes(stats.stats.bytes),
                stats.leader_address or "none (election?)",
            ]
        return [
            shard.group_id,
            readable_start(shard.start),
            readable_end(shard.end),
            *figures,
            state,
        ]


def _explained(row: ShardRow, splitting: dict[int, int]) -> str:
    """Why a shard gave no figures, in the operator's terms (the raw error is in --json)."""
    group = row.shard.group_id
    if group in splitting or row.shard.parent:
        return f"no figures while the split is carried out; run again in a moment ({row.error})"
    return row.error


async def _shard_row(meta: MetaClient, shard: ShardInfo, gate: asyncio.Semaphore) -> ShardRow:
    query = ShardStatsQuery(shard.group_id, None, "lease", ShardBounds.of(shard))
    async with gate:
        try:
            reply, _ = await meta.call(
                shard.group_id, query, ShardStatsReply, timeout=STATS_TIMEOUT_SECONDS
            )
        except RemoteError as exc:
            return ShardRow(shard, None, str(exc), exc.code)
        except CairnError as exc:
            return ShardRow(shard, None, str(exc))
    return ShardRow(shard, reply)


async def _survey(meta: MetaClient) -> tuple[DirectoryReply, list[ShardRow]]:
    directory = await meta.directory(refresh=True)
    gate = asyncio.Semaphore(STATS_CONCURRENCY_MAX)
    for _ in range(LIST_ATTEMPTS_MAX):
        shards = sorted(directory.shards, key=lambda s: s.start)
        rows = list(await asyncio.gather(*(_shard_row(meta, s, gate) for s in shards)))
        if not any(row.error_code == "WrongShard" for row in rows):
            break
        fresh = await meta.directory(refresh=True)
        if fresh.epoch == directory.epoch:
            break  # the directory is current: those shards are still being split
        directory = fresh
    return directory, rows


@click.group()
def shard() -> None:
    """List the index shards (key ranges of the object index) and split one."""


@shard.command("list")
@cluster_option
@json_option
def list_shards(cluster_path: str | None, as_json: bool) -> None:
    """Every shard in key order: range, figures, leader.

    One row per index shard: its key range, keys, objects and bytes, the address of its
    leader, and `pending (split from N)` while a split that made it is carried out."""
    directory, rows = _with_meta(cluster_path, _survey)
    if as_json:
        emit_json({"epoch": directory.epoch, "shards": [row.to_json() for row in rows]})
        return
    splitting = {row.shard.parent: row.shard.group_id for row in rows if row.shard.parent}
    columns = ["group", "start", "end", "keys", "objects", "bytes", "leader", "state"]
    print_table(
        f"index shards (directory epoch {directory.epoch})",
        columns,
        [row.to_cells(splitting) for row in rows],
    )
    if not rows:
        click.echo("the shard directory is not bootstrapped yet")
    for row in rows:
        if row.error:
            click.echo(
                f"warning: group {row.shard.group_id}: {_explained(row, splitting)}", err=True
            )


# -- cairn shard split ----------------------------------------------------------------


def _check_split_point(directory: DirectoryReply, at: bytes) -> None:
    if not directory.shards:
        raise SplitRefused("the shard directory is not bootstrapped yet")
    for info in directory.shards:
        if info.start == at:
            raise SplitRefused(
                f"{readable_key(at)} is already a shard boundary (group {info.group_id} "
                f"starts there); `cairn shard list` shows them all"
            )
    pending = [info.group_id for info in directory.shards if info.parent]
    if pending:
        raise SplitRefused(
            f"the split that made group {pending[0]} is still being carried out; "
            f"try again when `cairn shard list` no longer shows it pending"
        )


async def _wait_done(meta: MetaClient, group_id: int, wait_seconds: float) -> ShardInfo | None:
    """The new group once its split is done; None if still pending after `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    while True:
        directory = await meta.directory(refresh=True)
        made = next((s for s in directory.shards if s.group_id == group_id), None)
        if made is None:
            raise SplitRefused(f"group {group_id} is no longer in the shard directory")
        if not made.parent:
            return made
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(SPLIT_POLL_SECONDS)  # poll the directory until the deadline


def _split_json(
    made: ShardInfo, done: ShardInfo | None, waited_s: float | None
) -> dict[str, object]:
    return {**range_json(done or made), "split_from": made.parent, "waited_s": waited_s}


@shard.command("split")
@click.argument("point", metavar="BUCKET/KEY")
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(min=0),
    default=SPLIT_WAIT_SECONDS_DEFAULT,
    show_default=True,
    help="Seconds to wait for the split to be carried out (0: do not wait).",
)
@cluster_option
@json_option
def split(point: str, wait_seconds: float, cluster_path: str | None, as_json: bool) -> None:
    """Split the shard holding BUCKET/KEY at that key.

    The keys from BUCKET/KEY to the end of its shard's range go to a new shard group;
    the command then waits (at most --wait seconds) until the split is carried out."""
    at = parse_split_point(point)

    async def work(meta: MetaClient) -> tuple[ShardInfo, ShardInfo | None, float | None]:
        _check_split_point(await meta.directory(refresh=True), at)
        made = await meta.propose_root(SplitShard(at), ShardInfo)
        if not as_json:
            click.echo(
                f"group {made.group_id} split from group {made.parent}: it takes "
                f"[{readable_start(made.start)}, {readable_end(made.end)}) "
                f"on {', '.join(made.replicas)} (directory epoch {made.epoch})"
            )
        if wait_seconds == 0:
            return made, None, None
        if not as_json:
            click.echo(
                f"waiting up to {wait_seconds:g} s for the split to be carried out", err=True
            )
        started = time.monotonic()
        done = await _wait_done(meta, made.group_id, wait_seconds)
        return made, done, round(time.monotonic() - started, 3)

    made, done, waited_s = _with_meta(cluster_path, work)
    if as_json:
        emit_json(_split_json(made, done, waited_s))
    if waited_s is None:
        if not as_json:
            click.echo("pending: the root leader carries it out in the background")
        return
    if done is None:
        raise click.ClickException(
            f"the split into group {made.group_id} is still pending after {wait_seconds:g} s; "
            f"it is recorded and the root leader carries it out in the background "
            f"(`cairn shard list` shows when it is done)"
        )
    if not as_json:
        click.echo(
            f"split done in {waited_s:.1f} s: group {done.group_id} serves "
            f"[{readable_start(done.start)}, {readable_end(done.end)})"
        )
