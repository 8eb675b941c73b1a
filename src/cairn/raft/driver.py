"""The asyncio driver of one Raft group: ticks, Ready cycles, proposals, reads.

Theory of operation
-------------------
One task per group runs the Ready loop: wait until the core has work, take `ready()`,
persist it (`GroupStorage.begin_persist`: one fsync shared by everything in the Ready),
send its messages, apply its committed entries to the state machine, resolve the futures
of the proposals and reads they complete, `advance()`. A leader does not wait for its own
fsync at all (`advance(durable=False)`, then `persisted` when the thread is done): its
committed entries are already durable on a quorum, and an entry the followers have made
durable commits without the leader's copy (dissertation §10.2.1), so neither its
proposers nor the next Ready wait behind the leader's disk. Ticks, received messages and new
proposals keep arriving while a Ready is being persisted; they land in the core and come
out in the next Ready, so under load each fsync covers a batch of proposals (group commit)
without any explicit batching code.

A proposal is identified by the (index, term) the core gave it. When the entry at that
index is applied, the future gets the state machine's result if the term matches; if a
different entry was committed there, the proposal was lost to a leader change and fails
with `ProposalDropped` (safe to retry: it was not applied). A proposal whose index is
never reached (this node lost leadership and the log moved on elsewhere) is failed the
same way when a later entry at or past it is applied. A proposal whose index an installed
snapshot covers fails with `ProposalOutcomeUnknown` instead: its entry may be inside the
snapshot, so, as after a timeout, only an idempotent command may be retried.

Reads: `linearizable` uses ReadIndex (a heartbeat round confirms leadership, then wait
until applied >= the read index); `lease` uses the leader lease (no round trip; safe under
the bounded clock drift that check-quorum assumes, see docs/design/raft.md); `stale`
reads the local state machine as it is, on any replica.

Periodic compaction: once more than `snapshot_every_entries` entries were applied since
the last snapshot, the group snapshots the state machine and compacts its log.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cairn.monitor.logs import log_event
from cairn.raft.core import RaftConfig, RaftNode, bootstrap_snapshot
from cairn.raft.kv import KVStateMachine, Request, Result, encode_request
from cairn.raft.statemachine import StateMachine
from cairn.raft.storage import GroupStorage
from cairn.raft.types import (
    EARLY_MESSAGE_TYPES,
    EntryType,
    Message,
    NotLeader,
    ProposalDropped,
    ProposalOutcomeUnknown,
    RaftError,
    Ready,
    Role,
)
from cairn.runtime.rng import SystemRng

log = logging.getLogger("cairn.raft")

ReadConsistency = Literal["linearizable", "lease", "stale"]


class NoGroupState(RaftError):
    """Asked to reopen a group (no voters given) that has nothing on disk."""


SNAPSHOT_EVERY_ENTRIES = 10_000
READS_PENDING_MAX = 4096


@dataclass(frozen=True)
class GroupSettings:
    tick_seconds: float = 0.05
    election_timeout_ticks: int = 10
    heartbeat_interval_ticks: int = 2
    snapshot_every_entries: int = SNAPSHOT_EVERY_ENTRIES


class RaftGroup:
    def __init__(
        self,
        group_id: int,
        node_id: int,
        voters: set[int],
        directory: Path,
        send: Callable[[tuple[Message, ...]], None],
        settings: GroupSettings | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
        machine: StateMachine | None = None,
        initial_state: bytes | None = None,
    ) -> None:
        """`machine` defaults to the key-value machine of `raft.kv`. `initial_state`, for
        a new group only: the machine already holds exactly the state these bytes encode
        (its snapshot), so the bootstrap snapshot is made of them, not of encoding the
        machine again and decoding it back (a split-off index shard's seed: 0.7 s of
        event loop for 50,000 keys saved)."""
        self.group_id = group_id
        self._on_fatal = on_fatal
        self.node_id = node_id
        self.settings = settings or GroupSettings()
        self._send = send
        self.machine: StateMachine = machine if machine is not None else KVStateMachine()
        self.storage, recovered = GroupStorage.open(directory)
        config = RaftConfig(
            node_id=node_id,
            group_id=group_id,
            election_timeout_ticks=self.settings.election_timeout_ticks,
            heartbeat_interval_ticks=self.settings.heartbeat_interval_ticks,
        )
        snapshot = recovered.snapshot
        if snapshot is None and recovered.hard_state is None and not recovered.entries:
            # A new group: every initial member starts from the same bootstrap snapshot,
            # saved before anything else so that a restart finds it.
            if not voters:
                self.storage.close()
                raise NoGroupState(f"group {group_id} has no state on disk and no voters")
            data = self.machine.snapshot() if initial_state is None else initial_state
            snapshot = bootstrap_snapshot(voters, data)
            self.storage.save_snapshot(snapshot)
            self.storage.wal.sync()
            if initial_state is None:
                self.machine.restore(snapshot.data)
        elif snapshot is not None:
            self.machine.restore(snapshot.data)
        if snapshot is not None:
            self.machine.applied_index = snapshot.meta.index
        self.node = RaftNode(
            config,
            SystemRng(),
            hard_state=recovered.hard_state,
            snapshot=snapshot,
            entries=recovered.entries,
        )
        self._snapshot_index = snapshot.meta.index if snapshot is not None else 0
        self._wake = asyncio.Event()
        self._proposals: dict[int, tuple[int, asyncio.Future[object]]] = {}
        self._reads: dict[bytes, asyncio.Future[int]] = {}
        self._applied_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._read_seq = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._last_leader = 0
        self._syncing: asyncio.Future[None] | None = None
        """The leader's latest fsync still running in a thread, if any."""

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._ready_loop()), loop.create_task(self._ticker())]
        for task in self._tasks:
            task.add_done_callback(self._task_done)

    def _task_done(self, task: "asyncio.Task[None]") -> None:
        """A driver task must never end while the group runs: if one dies, the group is
        wedged (no ticks or no Ready cycles), so fail loudly instead of hanging."""
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        log.critical("raft.driver_failed group=%d", self.group_id, exc_info=error)
        if self._on_fatal is not None:
            self._on_fatal(error)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._syncing is not None:
            await asyncio.gather(self._syncing, return_exceptions=True)
        self.storage.close()

    # -- inputs ------------------------------------------------------------------------
    def step(self, message: Message) -> None:
        self.node.step(message)
        self._wake.set()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_seconds)  # the clock of the protocol
            self.node.tick()
            self._wake.set()

    # -- the Ready loop ----------------------------------------------------------------
    async def _ready_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.node.has_ready():
                ready = self.node.ready()
                await self._handle(ready)

    async def _handle(self, ready: Ready) -> None:
        if ready.snapshot is not None:
            self.machine.restore(ready.snapshot.data)
            self.machine.applied_index = ready.snapshot.meta.index
            self._snapshot_index = ready.snapshot.meta.index
            self._settle_covered_proposals(ready.snapshot.meta.index)
        # Leader-to-follower messages of a term that is already durable may go out before
        # the leader's own fsync (dissertation §10.2.1): the core counts the leader for an
        # entry only after `advance`, i.e. once it is durable here too. Everything else
        # (votes, acknowledgements) waits for the fsync, as the Ready contract says.
        durable_term = self.storage.durable_term
        early: list[Message] = []
        late: list[Message] = []
        for message in ready.messages:
            safe = message.type in EARLY_MESSAGE_TYPES and message.term == durable_term
            (early if safe else late).append(message)
        if early:
            self._send(tuple(early))
        role = ready.soft_state.role
        hs = ready.hard_state
        pipelined = (
            role == Role.LEADER
            and not late
            and ready.snapshot is None
            and (hs is None or hs.term == durable_term)
        )
        persisting = self.storage.begin_persist(ready, inline=role == Role.FOLLOWER)
        if pipelined:
            # Committed entries are durable on a quorum already, so the leader applies them
            # (and answers their proposers) at once, and it takes the next Ready while its
            # own fsync of this one's new entries runs in a thread: the core counts the
            # leader for those entries only when `_track_sync` reports them durable, and
            # until then acknowledgements from followers alone can commit them
            # (dissertation §10.2.1). Waiting for our own fsync here would hold every
            # commit that followers acknowledge meanwhile behind it.
            self._apply(ready)
            if persisting is not None:
                last = ready.entries[-1].index if ready.entries else self.node.log.stable_last
                self._track_sync(persisting, last)
            self.node.advance(ready, durable=persisting is None and self._syncing is None)
        else:
            if persisting is None:
                persisting = self._syncing  # an earlier Ready's sync covers what we buffered
            if role == Role.LEADER:
                self._apply(ready)
            if persisting is not None:
                await persisting
            if late:
                self._send(tuple(late))  # acknowledgements first: they gate the commit
            if role != Role.LEADER:
                self._apply(ready)
            self.node.advance(ready)
        leader = ready.soft_state.leader
        if leader != self._last_leader:
            self._last_leader = leader
            log_event(log, "raft.leader", group=self.group_id, leader=leader,
                      term=self.node.term)  # fmt: skip
        if role != Role.LEADER and self._reads:
            self._fail_reads(NotLeader(ready.soft_state.leader))
        await self._maybe_compact()

    def _track_sync(self, syncing: "asyncio.Future[None]", index: int) -> None:
        """Tell the core when the leader's own entries up to `index` are on disk."""
        term = self.node.term
        self._syncing = syncing

        def done(future: "asyncio.Future[None]") -> None:
            if self._syncing is future:
                self._syncing = None
            if future.cancelled():
                return
            error = future.exception()
            if error is not None:  # the WAL refuses every later write too: fail loudly
                log.critical("raft.wal_failed group=%d", self.group_id, exc_info=error)
                if self._on_fatal is not None:
                    self._on_fatal(error)
                return
            if self.node.term == term and self.node.role == Role.LEADER:
                self.node.persisted(index)
                self._wake.set()

        syncing.add_done_callback(done)

    def _apply(self, ready: Ready) -> None:
        """Apply `ready`'s committed entries; settle the proposals and reads they end."""
        outcomes: dict[int, tuple[int, object]] = {}
        for entry in ready.committed_entries:
            if entry.index <= self.machine.applied_index:
                continue  # covered by a snapshot restored in this Ready
            result: object = None
            if entry.type == EntryType.NORMAL and entry.data:
                result = self.machine.apply(entry.index, entry.data)
            else:
                self.machine.mark_applied(entry.index)
            outcomes[entry.index] = (entry.term, result)
        if outcomes and self._proposals:
            self._complete_proposals(outcomes, max(outcomes))
        for read_state in ready.read_states:
            future = self._reads.pop(read_state.ctx, None)
            if future is not None and not future.done():
                future.set_result(read_state.index)
        self._wake_applied()

    def _settle_covered_proposals(self, snapshot_index: int) -> None:
        """Proposals at or below an installed snapshot's index: their entries may be in
        it or may have been replaced before it was taken; nobody can tell from here."""
        for pending_index in [i for i in self._proposals if i <= snapshot_index]:
            _term, future = self._proposals.pop(pending_index)
            if not future.done():
                future.set_exception(
                    ProposalOutcomeUnknown(f"index {pending_index} was covered by a snapshot")
                )

    def _complete_proposals(self, outcomes: dict[int, tuple[int, object]], last_index: int) -> None:
        """Settle every proposal at or below `last_index`: its result if the entry applied
        at its index has its term, else dropped (another entry took its place)."""
        for pending_index in [i for i in self._proposals if i <= last_index]:
            pending_term, future = self._proposals.pop(pending_index)
            if future.done():
                continue
            outcome = outcomes.get(pending_index)
            if outcome is not None and outcome[0] == pending_term:
                future.set_result(outcome[1])
            else:
                future.set_exception(ProposalDropped("lost to a leader change; not applied"))

    def _wake_applied(self) -> None:
        applied = self.machine.applied_index
        still_waiting = []
        for index, future in self._applied_waiters:
            if applied >= index:
                if not future.done():
                    future.set_result(None)
            else:
                still_waiting.append((index, future))
        self._applied_waiters = still_waiting

    def _fail_reads(self, error: Exception) -> None:
        for future in self._reads.values():
            if not future.done():
                future.set_exception(error)
        self._reads.clear()

    async def _maybe_compact(self) -> None:
        applied = self.machine.applied_index
        if applied - self._snapshot_index < self.settings.snapshot_every_entries:
            return
        snapshot = self.node.compact(applied, self.machine.snapshot())
        # Written (and fsynced) in a thread so the event loop keeps serving; the WAL's
        # compaction mark is buffered after it and made durable by the next sync.
        await asyncio.to_thread(self.storage.save_snapshot_file, snapshot)
        self.storage.wal.compact(snapshot.meta.index, snapshot.meta.term)
        self._snapshot_index = applied

    # -- application API ---------------------------------------------------------------
    @property
    def snapshot_index(self) -> int:
        return self._snapshot_index

    @property
    def leader_id(self) -> int:
        return self.node.leader_id

    def campaign(self) -> None:
        """Stand for election now (`RaftNode.campaign`)."""
        self.node.campaign()
        self._wake.set()

    def transfer_leadership(self, target: int) -> None:
        """Hand leadership to voter `target` (Raft §3.10); NotLeader on a follower."""
        self.node.transfer_leadership(target)
        self._wake.set()

    async def propose_command(self, data: bytes) -> object:
        """Replicate the encoded command `data`; return what the state machine's `apply`
        returned for it once applied here. Raises NotLeader, ProposalTooLarge or
        ProposalDropped (typed, from the core or the driver)."""
        return await self.submit_command(data)

    def submit_command(self, data: bytes) -> "asyncio.Future[object]":
        """`propose_command` without the wait: the entry is in the leader's log when this
        returns (NotLeader and ProposalTooLarge raise here), so commands submitted in one
        synchronous stretch go out in the same Ready, in that order; the future resolves
        as `propose_command` returns."""
        index, term = self.node.propose(data)
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._proposals[index] = (term, future)
        self._wake.set()
        return future

    async def propose(self, request: Request) -> Result:
        """A key-value `request` (groups hosting `raft.kv`): its `Result`."""
        applied = await self.propose_command(encode_request(request))
        if isinstance(applied, tuple):
            result = applied[1]
            assert isinstance(result, Result)
            return result
        return Result(False)  # a malformed command is applied as a no-op

    async def read(self, key: bytes, consistency: ReadConsistency) -> bytes | None:
        """A key-value read (groups hosting `raft.kv`)."""
        await self.read_barrier(consistency)
        assert isinstance(self.machine, KVStateMachine)
        return self.machine.read(key)

    async def read_barrier(self, consistency: ReadConsistency) -> None:
        """Return when the local state machine may be read at `consistency`:
        `linearizable` confirms leadership with a heartbeat round (ReadIndex), `lease`
        relies on the leader lease, `stale` returns at once (any replica, any lag).
        Raises NotLeader on a follower for the first two."""
        if consistency == "stale":
            return
        if len(self._reads) >= READS_PENDING_MAX:
            raise ProposalDropped("too many reads pending")
        self._read_seq += 1
        ctx = self._read_seq.to_bytes(8, "big")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reads[ctx] = future
        try:
            self.node.read_index(ctx, lease=consistency == "lease")
        except BaseException:
            self._reads.pop(ctx, None)
            raise
        self._wake.set()
        index = await future
        if self.machine.applied_index < index:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._applied_waiters.append((index, waiter))
            await waiter
