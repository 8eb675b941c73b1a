"""The node side of mark-and-sweep GC: touch times, rounds, and which chunks a sweep takes.

Theory of operation
-------------------
A GC round is driven from outside (the coordinator): `GcBegin` on every node, then gather
the live set (every chunk id any manifest references), then `GcSweep(live)` on every
node. A node deletes a chunk only if it is *not* in the live set *and* its last touch is
older than ``round start - grace``. Both times are this node's monotonic clock, so no
clocks are compared across machines.

A chunk is *touched* when it is put (a new record or a deduplicated one) and when a
`ChunkHas(touch=True)` asks about it, which is what a gateway's dedup check does. A chunk
not touched since this process started counts as touched at the start (the times live
in memory only): after a restart, nothing is swept until a grace period has passed.

Why a sweep never deletes a chunk an upload counts on. Say upload U touched chunk c at
t_u (by writing it or by a dedup hit) and commits its manifest at t_c, and the gateway
aborts any upload that cannot commit within the grace: t_c - t_u < grace. If U committed
before the live set was gathered, c is in the live set. Otherwise t_c is after the
gathering, which is after the round start T0, so t_u > t_c - grace > T0 - grace: c was
touched too recently to be swept. The coordinator must therefore call `GcBegin` before
it starts gathering, and the gateway must use a grace no longer than the one sweeps use.

Races inside the node are closed by the service (`chunk_service.py`): a sweep re-checks
the touch time just before it deletes, marks the chunk as being deleted, and while it is
marked a `ChunkHas` reports it absent and a `ChunkPut` of it waits for the delete and
then stores it again. A touch is recorded *before* the store is asked, so a sweep either
sees the touch (and keeps the chunk) or marked the chunk first (and the dedup check says
absent).

Touch entries older than a sweep's cutoff are pruned after the sweep: by the argument
above, no upload can still count on a touch that old, so treating it as "touched at
process start" (which is earlier still) changes nothing that matters.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from cairn.chunkstore import CHUNK_ID_BYTES
from cairn.runtime.clock import Clock
from cairn.runtime.rng import Rng

GC_ROUNDS_MAX = 8
"""Rounds remembered at once (older ones are forgotten; their sweeps get `unknown_round`)."""


class TouchLog:
    """Node-local last-touched times of chunks, and the start times of GC rounds."""

    def __init__(self, clock: Clock, rng: Rng) -> None:
        self._clock = clock
        self._rng = rng
        self.started = clock.monotonic()
        self._times: dict[bytes, float] = {}
        self._rounds: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._times)

    def touch(self, chunk_ids: Iterable[bytes]) -> None:
        now = self._clock.monotonic()
        for chunk_id in chunk_ids:
            self._times[chunk_id] = now

    def time_of(self, chunk_id: bytes) -> float:
        """When `chunk_id` was last touched; the process start if never since then."""
        return self._times.get(chunk_id, self.started)

    def forget(self, chunk_id: bytes) -> None:
        self._times.pop(chunk_id, None)

    def prune_before(self, cutoff: float) -> int:
        """Drop entries older than `cutoff` (see the module docstring); return how many."""
        old = [cid for cid, t in self._times.items() if t < cutoff]
        for chunk_id in old:
            del self._times[chunk_id]
        return len(old)

    def begin_round(self) -> int:
        """Note the start of a GC round; its id is random, so it never matches a round of
        an earlier process (a sweep after a restart must not use the new process's clock
        with a start time it never recorded)."""
        round_id = int.from_bytes(self._rng.randbytes(8), "big") >> 1
        self._rounds[round_id] = self._clock.monotonic()
        while len(self._rounds) > GC_ROUNDS_MAX:
            del self._rounds[next(iter(self._rounds))]
        return round_id

    def round_start(self, round_id: int) -> float | None:
        return self._rounds.get(round_id)


@dataclass
class SweepPlan:
    scanned: int = 0
    kept_live: int = 0
    kept_recent: int = 0
    victims: list[tuple[bytes, int]] = field(default_factory=list)
    """(id, record bytes) of the chunks to delete, if still untouched when their turn comes."""


def parse_live_ids(payload: memoryview) -> frozenset[bytes]:
    """The live set from a `GcSweep` payload; ValueError unless it is whole 32-byte ids."""
    if len(payload) % CHUNK_ID_BYTES:
        raise ValueError(f"live ids payload of {len(payload)} bytes is not a multiple of 32")
    data = bytes(payload)
    return frozenset(data[i : i + CHUNK_ID_BYTES] for i in range(0, len(data), CHUNK_ID_BYTES))


def plan_sweep(
    held: Iterable[tuple[bytes, int]],
    live: frozenset[bytes],
    touches: TouchLog,
    cutoff: float,
) -> SweepPlan:
    """Which of the `held` (id, size) chunks are unreferenced and untouched since `cutoff`."""
    plan = SweepPlan()
    for chunk_id, size in held:
        plan.scanned += 1
        if chunk_id in live:
            plan.kept_live += 1
        elif touches.time_of(chunk_id) >= cutoff:
            plan.kept_recent += 1
        else:
            plan.victims.append((chunk_id, size))
    return plan
