"""Mark-and-sweep garbage collection of chunks, driven from one place.

Theory of operation. A chunk is garbage when no manifest in any index shard references
it. The coordinator:

1. begins a round on every node that holds chunks (`GcBegin`): each node notes its own
   monotonic time, so no clocks are compared across machines;
2. marks: reads the set of referenced chunk ids from every shard at `linearizable`
   (after step 1, so any manifest committed before the mark is seen);
3. sweeps: sends the live set to every node (`GcSweep`); a node deletes a chunk only if it
   is not in the set *and* nothing touched it (wrote it, or found it in a dedup check)
   since `grace_seconds` before its round began.

An upload in flight writes or touches every chunk it will reference and then commits its
manifest; the gateway refuses to commit when more than half the grace period has passed
without re-touching. So a chunk an upload counts on is either in the live set (committed
before the mark) or touched recently enough (not committed yet): never deleted. A node
that cannot be reached is simply skipped this round; its garbage waits for the next.

One round at a time, cluster-wide: a round holds the lock `cairn/gc` (`internal_lock`)
from before `GcBegin` to after the last sweep, whether the root leader runs it on its
timer or an operator runs `cairn gc`. Overlapping rounds would be safe (each node keeps
each round's start, and the rules above hold per round), but each would mark the whole
index and ship the whole live set again for nothing. A round that finds the lock taken
raises `GcBusy` at once, or after `wait_s` when asked to wait. The lock is not a fence: a
round whose lease lapsed (`lost`) still finishes, which is harmless for the same reason.
"""

import asyncio
import logging
from dataclasses import dataclass, field

from cairn.base.errors import CairnError
from cairn.meta.clustermap import AdminState
from cairn.monitor.logs import log_event
from cairn.node.chunk_messages import GcBegin, GcBeginReply, GcSweep, GcSweepReply
from cairn.node.internal_lock import LockBusy, hold_exclusive
from cairn.node.meta_client import MetaClient
from cairn.wire import RpcPool

log = logging.getLogger("cairn.gc")
RPC_TIMEOUT_SECONDS = 60.0
GC_LOCK = "cairn/gc"
"""Held for a whole round (see the module docstring)."""


class GcBusy(CairnError):
    """Another GC round holds `GC_LOCK`."""


@dataclass
class GcReport:
    live_chunks: int = 0
    nodes_swept: int = 0
    scanned: int = 0
    kept_live: int = 0
    kept_recent: int = 0
    deleted: int = 0
    deleted_bytes: int = 0
    dry_run: bool = False
    lock_token: int = 0
    """Fencing token of this round's hold on `GC_LOCK` (rounds are ordered by it)."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Node name -> why it was not swept this round."""


async def collect_garbage(
    pool: RpcPool,
    meta: MetaClient,
    grace_seconds: float,
    *,
    dry_run: bool = False,
    wait_s: float = 0.0,
    label: str = "gc",
) -> GcReport:
    """One round under `GC_LOCK`; `GcBusy` if another round holds it for `wait_s`."""
    try:
        async with hold_exclusive(meta, GC_LOCK, label=label, wait_s=wait_s) as held:
            report = await _round(pool, meta, grace_seconds, dry_run)
            report.lock_token = held.token
            return report
    except LockBusy:
        raise GcBusy(f"another GC round is running (it holds the lock {GC_LOCK!r})") from None


async def _round(pool: RpcPool, meta: MetaClient, grace_seconds: float, dry_run: bool) -> GcReport:
    view = await meta.cluster_view("linearizable")
    nodes = {m.name: m.address for m in view.members if m.admin != AdminState.OUT}
    report = GcReport(dry_run=dry_run)

    async def begin(name: str, address: str) -> tuple[str, int | None]:
        try:
            reply, _ = await pool.call(address, GcBegin(), GcBeginReply, timeout=5.0)
        except (CairnError, OSError) as exc:
            report.skipped[name] = f"begin: {exc}"
            return name, None
        return name, reply.round_id

    rounds = dict(await asyncio.gather(*(begin(n, a) for n, a in nodes.items())))
    live = await meta.live_chunk_ids()  # the mark: strictly after every GcBegin
    report.live_chunks = len(live)
    payload = b"".join(sorted(live))

    async def sweep(name: str, round_id: int) -> None:
        try:
            reply, _ = await pool.call(
                nodes[name],
                GcSweep(round_id, grace_seconds, dry_run),
                GcSweepReply,
                payload,
                timeout=RPC_TIMEOUT_SECONDS,
            )
        except (CairnError, OSError) as exc:
            report.skipped[name] = f"sweep: {exc}"
            return
        report.nodes_swept += 1
        report.scanned += reply.scanned
        report.kept_live += reply.kept_live
        report.kept_recent += reply.kept_recent
        report.deleted += reply.deleted
        report.deleted_bytes += reply.deleted_bytes

    await asyncio.gather(*(sweep(n, r) for n, r in rounds.items() if r is not None))
    log_event(
        log,
        "gc.round",
        live=report.live_chunks,
        deleted=report.deleted,
        deleted_bytes=report.deleted_bytes,
        skipped=len(report.skipped),
        dry_run=dry_run,
    )
    return report
