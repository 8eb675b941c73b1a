"""A simulated Raft cluster: nodes with a sans-IO core, a KV state machine and a fake disk.

Each `SimNode` is a tiny driver, the same shape as the asyncio one: tick the core on its
own (slightly drifting) clock, step it with delivered messages, and process each Ready in
the contract's order: persist (the "fsync" takes simulated time), then send, then apply,
then `advance`. A leader, when `leader_pipelines` is on (as in `raft.driver`), instead
sends, applies and advances at once (`advance(durable=False)`) and tells the core
`persisted(index)` when the write lands; its writes complete in order, like the WAL's.
Storage is modelled as two layers: `DurableState` is what the disk holds once the
simulated fsync completed; a crash throws away the core, the state machine and every
write that had not completed (the oldest possibly torn), and a restart rebuilds the node
from `DurableState` only. Clients talk to nodes directly (no network) and record a history for the
linearizability checker.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from cairn.raft.core import RaftConfig, RaftNode, bootstrap_snapshot
from cairn.raft.kv import KVStateMachine, Result
from cairn.raft.types import (
    EARLY_MESSAGE_TYPES,
    ConfChange,
    Entry,
    EntryType,
    HardState,
    Message,
    RaftError,
    ReadState,
    Ready,
    Role,
    Snapshot,
)
from cairn.sim.network import SimNetwork
from cairn.sim.raft_checkers import RaftSafetyChecker
from cairn.sim.scheduler import EventQueue

TICK_US = 10_000

ResultCallback = Callable[[Result], None]


@dataclass
class DurableState:
    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)

    def first_index(self) -> int:
        return (self.snapshot.meta.index if self.snapshot else 0) + 1

    def write(self, ready: Ready) -> None:
        if ready.snapshot is not None:
            self.snapshot = ready.snapshot
            self.entries = []
        # A leader's pipelined write can land after a snapshot that covers some of its
        # entries (they were committed by followers and applied meanwhile); recovery
        # ignores entries at or below the snapshot, so they are skipped here.
        entries = [e for e in ready.entries if e.index >= self.first_index()]
        if entries:
            start = entries[0].index - self.first_index()
            assert 0 <= start <= len(self.entries), "WAL gap"
            del self.entries[start:]
            self.entries.extend(entries)
        if ready.hard_state is not None:
            self.hard_state = ready.hard_state

    def write_torn(self, ready: Ready, count: int) -> None:
        """A crash in the middle of the fsync: only the first `count` entries made it."""
        entries = [e for e in ready.entries[:count] if e.index >= self.first_index()]
        if ready.snapshot is not None or not entries:
            return
        start = entries[0].index - self.first_index()
        del self.entries[start:]
        self.entries.extend(entries)

    def compact(self, snapshot: Snapshot) -> None:
        index = snapshot.meta.index
        self.entries = [e for e in self.entries if e.index > index]
        self.snapshot = snapshot


@dataclass(frozen=True)
class _Write:
    ready: Ready
    pipelined_to: int | None
    """A leader's pipelined write: the log index it makes durable (None: a held Ready)."""
    term: int


class SimNode:
    def __init__(self, cluster: RaftCluster, node_id: int, initial: Snapshot | None) -> None:
        self.cluster = cluster
        self.id = node_id
        self.durable = DurableState(snapshot=initial)
        self.up = False
        self.generation = 0
        self.core: RaftNode | None = None
        self.kv = KVStateMachine()
        self.persisting = False
        """A Ready waits for its write before it is finished: no new Ready meanwhile."""
        self.writes: deque[_Write] = deque()
        """Writes not yet on disk, oldest first; they complete in this order."""
        self.write_done_us = 0
        self.waiters: dict[int, ResultCallback] = {}
        self.read_waiters: dict[bytes, Callable[[ReadState], None]] = {}
        self.pending_reads: list[ReadState] = []
        self.lead_terms: set[int] = set()
        drift = cluster.rng.uniform(-cluster.max_drift, cluster.max_drift)
        self.tick_period_us = int(TICK_US * (1 + drift))

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        assert not self.up
        self.generation += 1
        self.up = True
        durable = self.durable
        self.core = RaftNode(
            self.cluster.raft_config(self.id),
            self.cluster.rng,
            hard_state=durable.hard_state,
            snapshot=durable.snapshot,
            entries=list(durable.entries),
        )
        self.kv = KVStateMachine()
        if durable.snapshot is not None:
            self.kv.restore(durable.snapshot.data)
        self.persisting = False
        self.writes = deque()
        self.waiters = {}
        self.read_waiters = {}
        self.pending_reads = []
        gen = self.generation
        phase = self.cluster.rng.randint(1, self.tick_period_us)
        self.cluster.events.after(phase, lambda: self._on_tick(gen))

    def crash(self) -> None:
        assert self.up
        self.up = False
        self.generation += 1
        torn = self.writes[0].ready if self.writes else None
        if torn is not None and torn.entries and self.cluster.rng.random() < 0.5:
            self.durable.write_torn(torn, self.cluster.rng.randint(0, len(torn.entries)))
        self.writes.clear()
        if self.core is not None:
            self.cluster.counters.update(self.core.counters)
        self.core = None
        self.persisting = False

    def _on_tick(self, gen: int) -> None:
        if gen != self.generation:
            return
        assert self.core is not None
        self.core.tick()
        self.pump()
        self.cluster.events.after(self.tick_period_us, lambda: self._on_tick(gen))

    def deliver(self, message: Message) -> None:
        if not self.up:
            return
        assert self.core is not None
        self.core.step(message)
        self.pump()

    # -- the driver loop --------------------------------------------------------------------

    def pump(self) -> None:
        while self.up and not self.persisting:
            core = self.core
            assert core is not None
            if core.role == Role.LEADER and core.term not in self.lead_terms:
                self.lead_terms.add(core.term)
                self.cluster.checker.on_leader(self.id, core)
            if not core.has_ready():
                return
            ready = core.ready()
            if self._may_pipeline(core, ready):
                last = ready.entries[-1].index if ready.entries else core.log.stable_last
                if ready.must_sync():
                    self._write(ready, pipelined_to=last)
                self._finish(ready, durable=not self.writes)
                continue
            if ready.must_sync() or self.writes:
                self.persisting = True
                self._write(ready, pipelined_to=None)
                return
            self._finish(ready)

    def _may_pipeline(self, core: RaftNode, ready: Ready) -> bool:
        """The driver's rule: a leader whose term is on disk, sending only leader messages."""
        durable_term = self.durable.hard_state.term
        return (
            self.cluster.leader_pipelines
            and core.role == Role.LEADER
            and ready.snapshot is None
            and (ready.hard_state is None or ready.hard_state.term == durable_term)
            and all(
                m.term == durable_term and m.type in EARLY_MESSAGE_TYPES for m in ready.messages
            )
        )

    def _write(self, ready: Ready, pipelined_to: int | None) -> None:
        """Queue `ready`'s write; writes land in order, each taking simulated time."""
        core = self.core
        assert core is not None
        write = _Write(ready, pipelined_to, core.term)
        self.writes.append(write)
        delay = self.cluster.rng.randint(200, self.cluster.fsync_max_us)
        self.write_done_us = max(self.write_done_us, self.cluster.events.now_us) + delay
        gen = self.generation
        self.cluster.events.at(self.write_done_us, lambda: self._written(gen, write))

    def _written(self, gen: int, write: _Write) -> None:
        if gen != self.generation:
            return  # crashed before the fsync completed: the write is lost
        assert self.writes and self.writes[0] is write, "writes land in order"
        self.writes.popleft()
        self.durable.write(write.ready)
        core = self.core
        assert core is not None
        if write.pipelined_to is None:
            self.persisting = False
            self._finish(write.ready)
        elif core.term == write.term and core.role == Role.LEADER:
            core.persisted(write.pipelined_to)
        self.pump()

    def _finish(self, ready: Ready, durable: bool = True) -> None:
        core = self.core
        assert core is not None
        cluster = self.cluster
        if ready.snapshot is not None:
            self.kv.restore(ready.snapshot.data)
            self.pending_reads = []
        for message in ready.messages:
            cluster.network.send(self.id, message.to, message)
        for entry in ready.committed_entries:
            self._apply(entry)
        self.pending_reads.extend(ready.read_states)
        core.advance(ready, durable=durable)
        self._serve_reads()
        self._maybe_compact(core)

    def _apply(self, entry: Entry) -> None:
        self.cluster.checker.on_apply(self.id, entry)
        if entry.index <= self.kv.applied_index:
            return
        if entry.type != EntryType.NORMAL or not entry.data:
            self.kv.mark_applied(entry.index)
            return
        applied = self.kv.apply(entry.index, entry.data)
        if applied is None:
            return
        request, result = applied
        callback = self.waiters.pop(request.op_id, None)
        if callback is not None:
            callback(result)

    def _serve_reads(self) -> None:
        keep: list[ReadState] = []
        for read in self.pending_reads:
            if read.index > self.kv.applied_index:
                keep.append(read)
                continue
            callback = self.read_waiters.pop(read.ctx, None)
            if callback is not None:
                callback(read)
        self.pending_reads = keep

    def _maybe_compact(self, core: RaftNode) -> None:
        every = self.cluster.compact_every_entries
        if every <= 0 or core.applied_index - core.log.snapshot_index < every:
            return
        if self.kv.applied_index != core.applied_index:
            return
        snapshot = core.compact(core.applied_index, self.kv.snapshot())
        self.durable.compact(snapshot)


class RaftCluster:
    def __init__(
        self,
        seed: int,
        voters: list[int],
        spares: list[int],
        *,
        max_drift: float = 0.01,
        fsync_max_us: int = 3_000,
        compact_every_entries: int = 40,
        snapshot_chunk_bytes: int = 256,
        max_append_entries: int = 16,
        max_inflight_appends: int = 4,
        leader_pipelines: bool = True,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.events = EventQueue()
        self.max_drift = max_drift
        self.fsync_max_us = fsync_max_us
        self.compact_every_entries = compact_every_entries
        self.snapshot_chunk_bytes = snapshot_chunk_bytes
        self.max_append_entries = max_append_entries
        self.max_inflight_appends = max_inflight_appends
        self.leader_pipelines = leader_pipelines
        self.checker = RaftSafetyChecker()
        self.counters: Counter[str] = Counter()
        self._trace = hashlib.blake2b(digest_size=16)
        self.network: SimNetwork[Message] = SimNetwork(self.events, self.rng, self._deliver)
        initial_kv = KVStateMachine()
        initial_kv.applied_index = 1
        initial = bootstrap_snapshot(set(voters), initial_kv.snapshot())
        self.nodes: dict[int, SimNode] = {}
        for node_id in voters:
            self.nodes[node_id] = SimNode(self, node_id, initial)
        for node_id in spares:
            self.nodes[node_id] = SimNode(self, node_id, None)
        for node in self.nodes.values():
            node.start()

    def raft_config(self, node_id: int) -> RaftConfig:
        return RaftConfig(
            node_id=node_id,
            election_timeout_ticks=10,
            heartbeat_interval_ticks=2,
            max_append_entries=self.max_append_entries,
            max_append_bytes=4096,
            max_inflight_appends=self.max_inflight_appends,
            snapshot_chunk_bytes=self.snapshot_chunk_bytes,
            snapshot_timeout_ticks=30,
            max_clock_drift_ticks=3,
        )

    def trace(self, text: str) -> None:
        self._trace.update(f"{self.events.now_us}|{text};".encode())

    def trace_hash(self) -> str:
        return self._trace.hexdigest()

    def _deliver(self, frm: int, to: int, message: Message) -> None:
        self.trace(f"m{frm}>{to}:{int(message.type)}:{message.term}:{message.index}")
        self.nodes[to].deliver(message)

    # -- views ------------------------------------------------------------------------------

    def up_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.up]

    def leader(self) -> SimNode | None:
        best: SimNode | None = None
        for node in self.up_nodes():
            core = node.core
            assert core is not None
            if core.role == Role.LEADER and (best is None or core.term > best.core.term):  # type: ignore[union-attr]
                best = node
        return best

    def cores(self) -> dict[int, RaftNode]:
        return {n.id: n.core for n in self.up_nodes() if n.core is not None}

    def members(self) -> tuple[frozenset[int], frozenset[int]]:
        leader = self.leader()
        if leader is None or leader.core is None:
            return frozenset(), frozenset()
        return leader.core.conf.voters, leader.core.conf.learners

    def propose_conf_change(self, change: ConfChange) -> bool:
        leader = self.leader()
        if leader is None or leader.core is None:
            return False
        try:
            leader.core.propose_conf_change(change)
        except RaftError:  # a typed refusal: the schedule tries again later
            return False
        self.trace(f"cc{int(change.type)}:{change.node_id}")
        leader.pump()
        return True
