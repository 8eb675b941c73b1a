"""The sans-IO Raft state machine of one node in one group.

Theory of operation
===================

`RaftNode` does no IO. It is driven by four kinds of input and produces one kind of output:

    tick()                      one unit of logical time (the driver calls it every ~10 ms)
    step(message)               a message from a peer (anything malformed is dropped, counted)
    propose(data) / propose_conf_change(cc) / transfer_leadership(id) / read_index(ctx)
                                requests from the local application (typed errors on refusal)
    ready() -> Ready            everything the inputs caused: entries and hard state to
                                persist, a snapshot to install, messages to send, committed
                                entries to apply, reads that may now be served
    advance(ready)              the driver finished that Ready (persisted, sent, applied)

The driver must persist a Ready's snapshot, entries and hard state (fsync) before it sends
the Ready's messages: a vote or an append acknowledgement promises that the state is on
disk. It must not call `ready()` again before `advance()`. Inputs may keep arriving while
a Ready is being persisted; what they cause goes into the next Ready.

Protocol (the Raft paper, Ongaro & Ousterhout 2014, and Ongaro's dissertation 2014):

* Roles follow `_ROLE_TRANSITIONS`. Followers that hear nothing for a randomised election
  timeout (in [election_timeout_ticks, 2 * election_timeout_ticks), drawn from the injected
  `RandomSource`) first run a pre-vote (dissertation §9.6): they bump their term only if a
  quorum would vote for them, so a node that was partitioned away cannot disrupt a healthy
  leader when it comes back. With check-quorum a leader that has not heard from a quorum for
  an election timeout steps down, and a follower that heard from a leader less than an
  election timeout ago ignores (pre-)vote requests; together these give the leader lease.
* Replication (§5.3): per-follower flow control in `progress.py` (probe, replicate with an
  inflight window, snapshot); appends carry at most `max_append_entries` entries and about
  `max_append_bytes`. A rejected append carries a hint (index and term of the follower's
  last entry at or before the rejected index with a term <= the probe's term) so the leader
  skips a whole term per round trip.
* Commit (§5.4.2): the leader only counts replicas for entries of its own term; a new
  leader appends an empty entry so that earlier entries become committed through it. The
  leader counts itself only for entries it has persisted (`advance`).
* Snapshots (§7): the application calls `compact(index, data)` with its state at an applied
  index; the log before it is dropped. A follower whose next entry was compacted receives
  the snapshot in chunks of `snapshot_chunk_bytes` (offset, done); chunks that do not follow
  on are rejected and the leader starts again after a probe.
* Membership (dissertation §4.1, one server at a time): a `CONF_CHANGE` entry takes effect
  on each node as soon as it is in its log (and is undone if the entry is truncated). The
  leader accepts a change only when (a) no other change is uncommitted and (b) it has
  committed an entry of its own term — the fix for the bug in Ongaro's 2015 raft-dev note:
  without (b) a new leader could add a change on top of an uncommitted one from a previous
  term and two disjoint majorities could exist. New servers join as learners (they receive
  the log but do not vote or count for commit) and are promoted only when they are within
  `learner_catchup_lag_entries` of the leader, so a promotion does not stall commits. Any
  two majorities of configurations that differ by one voter overlap, which is what makes
  one-at-a-time changes safe. A leader that removes itself steps down once that change
  commits; nodes outside the configuration never campaign.
* Leadership transfer (dissertation §3.10): the leader stops taking proposals, brings the
  target up to date, sends TimeoutNow; the target campaigns at once, and its votes carry
  `transfer=True` so voters ignore their lease. Aborted after one election timeout.
* Reads: `read_index` (dissertation §6.4) and lease reads; see `readonly.py`.

Everything that can grow is bounded by a named limit in `RaftConfig`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from cairn.raft.log import RaftLog
from cairn.raft.progress import Progress, ProgressState
from cairn.raft.readonly import ReadOnly
from cairn.raft.types import (
    NONE,
    ConfChange,
    ConfChangeRejected,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    NotLeader,
    ProposalDropped,
    ProposalTooLarge,
    RandomSource,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
    SoftState,
)

_ROLE_TRANSITIONS: dict[Role, frozenset[Role]] = {
    Role.FOLLOWER: frozenset({Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE}),
    Role.PRE_CANDIDATE: frozenset({Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE}),
    Role.CANDIDATE: frozenset({Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE, Role.LEADER}),
    Role.LEADER: frozenset({Role.FOLLOWER}),
}
"""Which role may follow which (asserted on every change; tests iterate this table)."""

_FROM_LEADER = frozenset({MessageType.APP, MessageType.HEARTBEAT, MessageType.SNAP})
_VOTE_REQUESTS = frozenset({MessageType.VOTE, MessageType.PRE_VOTE})
_MAX_ENTRIES_PER_MESSAGE = 100_000
"""Sanity bound on an incoming append (a peer's `max_append_entries` may differ from ours)."""


@dataclass(frozen=True, slots=True)
class RaftConfig:
    node_id: int
    group_id: int = 1
    election_timeout_ticks: int = 10
    heartbeat_interval_ticks: int = 2
    max_append_entries: int = 64
    max_append_bytes: int = 256 * 1024
    max_inflight_appends: int = 16
    max_inflight_bytes: int = 4 * 1024 * 1024
    max_proposal_bytes: int = 1024 * 1024
    max_uncommitted_entries: int = 4096
    max_apply_bytes: int = 4 * 1024 * 1024
    snapshot_chunk_bytes: int = 64 * 1024
    snapshot_timeout_ticks: int = 50
    max_pending_reads: int = 1024
    learner_catchup_lag_entries: int = 16
    max_clock_drift_ticks: int = 3
    pre_vote: bool = True
    check_quorum: bool = True

    def __post_init__(self) -> None:
        assert self.node_id > 0, "node ids start at 1 (0 means none)"
        assert self.heartbeat_interval_ticks < self.election_timeout_ticks
        assert 0 <= self.max_clock_drift_ticks < self.election_timeout_ticks
        assert self.max_append_entries > 0 and self.snapshot_chunk_bytes > 0


def bootstrap_snapshot(
    voters: frozenset[int] | set[int], initial_state: bytes, learners: frozenset[int] = frozenset()
) -> Snapshot:
    """What every initial member of a new group starts from: index 1, term 1, the members.

    Putting the first configuration in a snapshot (not in the log) means a node added later
    always receives it: the leader's log starts after index 1, so it sends the snapshot.
    """
    conf = ConfState(frozenset(voters), frozenset(learners))
    return Snapshot(SnapshotMeta(1, 1, conf), initial_state)


class RaftNode:
    def __init__(
        self,
        config: RaftConfig,
        rng: RandomSource,
        *,
        hard_state: HardState | None = None,
        snapshot: Snapshot | None = None,
        entries: list[Entry] | tuple[Entry, ...] = (),
    ) -> None:
        """Start (or restart) from what the driver read from disk.

        The initial members of a new cluster all start from the same
        `bootstrap_snapshot(voters, initial_state)`; a node joining an existing cluster
        starts empty and learns its configuration (in a snapshot) from the leader. A
        restarted node passes its stored hard state, snapshot and entries.
        """
        self.cfg = config
        self.id = config.node_id
        self._rng = rng
        hs = hard_state or HardState()
        meta = snapshot.meta if snapshot is not None else SnapshotMeta()
        self.log = RaftLog(meta, list(entries), hs.commit)
        self._snapshot: Snapshot | None = snapshot
        self.term = max(hs.term, meta.term)
        self.vote = hs.vote
        self.leader_id = NONE
        self.role = Role.FOLLOWER
        self.counters: Counter[str] = Counter()
        self.prs: dict[int, Progress] = {}
        self._conf_base = meta.conf
        self._conf_log: list[tuple[int, ConfState]] = []
        self.conf = meta.conf
        self._rescan_conf(self.log.first_index())
        self.tick_count = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = 0
        self.lead_transferee = NONE
        self._votes: dict[int, bool] = {}
        self._msgs: list[Message] = []
        self._read_states: list[ReadState] = []
        self._readonly = ReadOnly(config.max_pending_reads)
        self._reads_waiting_commit: list[bytes] = []
        self._heartbeat_seq = 0
        self._lease_until_tick = 0
        self._timeout_now_sent = False
        self._want_append = False
        self._want_heartbeat = False
        self._snap_rx: tuple[tuple[int, int], bytearray] | None = None
        self._prev_hard_state = hs
        self._ready_outstanding = False
        self._reset_timers()

    # ---------------------------------------------------------------- public inspection

    @property
    def commit_index(self) -> int:
        return self.log.committed

    @property
    def applied_index(self) -> int:
        return self.log.applied

    @property
    def last_index(self) -> int:
        return self.log.last_index()

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def soft_state(self) -> SoftState:
        return SoftState(self.leader_id, self.role)

    def is_voter(self) -> bool:
        return self.id in self.conf.voters

    def quorum(self) -> int:
        return len(self.conf.voters) // 2 + 1

    # ---------------------------------------------------------------- inputs: time

    def tick(self) -> None:
        self.tick_count += 1
        if self.role == Role.LEADER:
            self._tick_leader()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self._promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self._campaign(pre_vote=self.cfg.pre_vote, transfer=False)

    def _tick_leader(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_timeout_ticks:
            self.election_elapsed = 0
            if self.cfg.check_quorum:
                if not self._quorum_active():
                    self.counters["check_quorum_step_down"] += 1
                    self._become_follower(self.term, NONE)
                    return
                for node, pr in self.prs.items():
                    if node != self.id:
                        pr.recent_active = False
            if self.lead_transferee != NONE:
                self.counters["transfer_aborted"] += 1
                self.lead_transferee = NONE
        for pr in self.prs.values():
            if pr.state == ProgressState.SNAPSHOT:
                pr.snapshot_elapsed_ticks += 1
                if pr.snapshot_elapsed_ticks > self.cfg.snapshot_timeout_ticks:
                    pr.pending_snapshot = 0
                    pr.become_probe()
        if self.heartbeat_elapsed >= self.cfg.heartbeat_interval_ticks:
            self.heartbeat_elapsed = 0
            self._want_heartbeat = True

    # ---------------------------------------------------------------- inputs: application

    def propose(self, data: bytes) -> tuple[int, int]:
        """Append `data` to the log; returns (index, term) of its entry.

        The command is committed iff an entry with this index and term is later applied.
        """
        if len(data) > self.cfg.max_proposal_bytes:
            self.counters["proposal_too_large"] += 1
            raise ProposalTooLarge(len(data), self.cfg.max_proposal_bytes)
        self._check_can_propose()
        if not data:
            raise ProposalDropped("empty proposals are reserved for the leader's no-op")
        return self._append_entry(EntryType.NORMAL, data)

    def propose_conf_change(self, change: ConfChange) -> tuple[int, int]:
        """Propose one single-server membership change (see the module docstring)."""
        self._check_can_propose()
        if self.log.term(self.log.committed) != self.term:
            raise ConfChangeRejected("the leader has not yet committed an entry of its term")
        if self._conf_log and self._conf_log[-1][0] > self.log.committed:
            raise ConfChangeRejected("another membership change is not yet committed")
        conf, node = self.conf, change.node_id
        if change.type == ConfChangeType.ADD_LEARNER:
            if node in conf.members():
                raise ConfChangeRejected(f"node {node} is already a member")
        elif change.type == ConfChangeType.PROMOTE_LEARNER:
            if node not in conf.learners:
                raise ConfChangeRejected(f"node {node} is not a learner")
            lag = self.log.last_index() - self.prs[node].match
            if lag > self.cfg.learner_catchup_lag_entries:
                raise ConfChangeRejected(f"learner {node} is {lag} entries behind")
        else:
            if node not in conf.members():
                raise ConfChangeRejected(f"node {node} is not a member")
            if conf.voters == {node}:
                raise ConfChangeRejected("cannot remove the last voter")
        return self._append_entry(EntryType.CONF_CHANGE, change.encode())

    def _check_can_propose(self) -> None:
        if self.role != Role.LEADER:
            self.counters["proposal_not_leader"] += 1
            raise NotLeader(self.leader_id)
        if self.lead_transferee != NONE:
            self.counters["proposal_dropped"] += 1
            raise ProposalDropped("leadership transfer in progress")
        if self.log.last_index() - self.log.committed >= self.cfg.max_uncommitted_entries:
            self.counters["proposal_dropped"] += 1
            raise ProposalDropped("too many uncommitted entries")

    def campaign(self) -> None:
        """Stand for election now, as the target of a leadership transfer does: voters
        grant it even while they wait out their first election timeout (a node that just
        started ignores ordinary votes for that long). For a group just created, where no
        leader can exist yet, so it need not wait a whole timeout for its first one. A
        no-op on a leader, a non-voter, or when a leader is known."""
        if self.role == Role.LEADER or self.leader_id or not self._promotable():
            return
        self.election_elapsed = 0
        self._campaign(pre_vote=False, transfer=True)

    def transfer_leadership(self, target: int) -> None:
        if self.role != Role.LEADER:
            raise NotLeader(self.leader_id)
        if target in (self.id, self.lead_transferee):
            return
        if target not in self.conf.voters:
            raise ProposalDropped(f"transfer target {target} is not a voter")
        self.lead_transferee = target
        self.election_elapsed = 0
        if self.prs[target].match == self.log.last_index():
            self._send_timeout_now(target)
        else:
            self._maybe_send_append(target, send_if_empty=True)

    def read_index(self, ctx: bytes, *, lease: bool = False) -> None:
        """Ask for a linearizable read; a `ReadState(index, ctx)` comes out of a later Ready.

        With `lease=True` and a valid lease the read needs no round trip; otherwise (or if
        the lease ran out) it takes the ReadIndex path. Reads are dropped if this node loses
        leadership before they are confirmed; callers time out and retry.
        """
        if self.role != Role.LEADER:
            raise NotLeader(self.leader_id)
        if lease and self.lease_valid():
            self.counters["lease_reads"] += 1
            self._read_states.append(ReadState(self.log.committed, ctx))
            return
        if self._readonly.full() or len(self._reads_waiting_commit) >= self.cfg.max_pending_reads:
            raise ProposalDropped("too many pending reads")
        if self.log.term(self.log.committed) != self.term:
            self._reads_waiting_commit.append(ctx)
            return
        self._add_read(ctx)

    def lease_valid(self) -> bool:
        return (
            self.role == Role.LEADER
            and self.cfg.check_quorum
            and self.lead_transferee == NONE
            and not self._timeout_now_sent
            and self.is_voter()
            and self.log.term(self.log.committed) == self.term
            and self.tick_count < self._lease_until_tick
        )

    def compact(self, index: int, data: bytes) -> Snapshot:
        """The application's state at applied `index` is `data`: drop the log up to it.

        Returns the snapshot, which the driver persists (and may delete older WAL segments).
        """
        assert self.log.snapshot_index < index <= self.log.applied
        term = self.log.term(index)
        assert term is not None
        conf = self._conf_base
        for conf_index, conf_state in self._conf_log:
            if conf_index <= index:
                conf = conf_state
        snapshot = Snapshot(SnapshotMeta(index, term, conf), data)
        self.log.compact(index, term)
        self._snapshot = snapshot
        self._conf_base = conf
        self._conf_log = [(i, c) for i, c in self._conf_log if i > index]
        return snapshot

    # ---------------------------------------------------------------- output

    def has_ready(self) -> bool:
        if self._ready_outstanding:
            return False
        self._flush()
        return bool(
            self._msgs
            or self._read_states
            or self.hard_state() != self._prev_hard_state
            or self.log.pending_snapshot is not None
            or self.log.stable_last < self.log.last_index()
            or self.log.applied < self.log.committed
        )

    def ready(self) -> Ready:
        assert not self._ready_outstanding, "advance() the previous Ready first"
        self._flush()
        hs = self.hard_state()
        ready = Ready(
            soft_state=self.soft_state(),
            hard_state=hs if hs != self._prev_hard_state else None,
            entries=tuple(self.log.unstable_entries()),
            snapshot=self.log.pending_snapshot,
            messages=tuple(self._msgs),
            committed_entries=tuple(self.log.next_committed_entries(self.cfg.max_apply_bytes)),
            read_states=tuple(self._read_states),
        )
        self._prev_hard_state = hs
        self._msgs = []
        self._read_states = []
        self._ready_outstanding = True
        return ready

    def advance(self, ready: Ready, *, durable: bool = True) -> None:
        """`ready` was handled. `durable=False` (a leader only): its entries were handed to
        storage but are not yet known durable; `persisted(index)` says when they are, and
        only then does the leader count itself for them (dissertation §10.2.1: a leader
        writes to its disk in parallel with replicating, and a quorum of followers alone
        can commit an entry)."""
        assert self._ready_outstanding
        self._ready_outstanding = False
        if ready.snapshot is not None and self.log.pending_snapshot is ready.snapshot:
            self.log.pending_snapshot = None
        if ready.entries:
            last = ready.entries[-1]
            self.log.stable_to(last.index, last.term)
        if ready.committed_entries:
            applied = ready.committed_entries[-1].index
            if applied > self.log.applied:
                self.log.applied_to(applied)
        if durable:
            self.persisted(self.log.stable_last)

    def persisted(self, index: int) -> None:
        """Everything handed out in Readies up to log `index` is durable on this node."""
        self.log.durable_to(index)
        me = self.prs.get(self.id) if self.role == Role.LEADER else None
        if me is not None and me.maybe_update(self.log.durable_last) and self._maybe_commit():
            self._want_append = True

    def _flush(self) -> None:
        """Send what proposals and ticks asked for, once per Ready (this is the batching)."""
        if self.role != Role.LEADER:
            self._want_append = self._want_heartbeat = False
            return
        if self._want_append:
            self._want_append = False
            self._bcast_append()
        if self._want_heartbeat:
            self._want_heartbeat = False
            self._bcast_heartbeat()

    # ---------------------------------------------------------------- inputs: messages

    def step(self, m: Message) -> None:
        """Take one message from a peer. Never raises on bad input: drops and counts it."""
        reason = self._reject_reason(m)
        if reason:
            self.counters[reason] += 1
            return
        if m.term > self.term:
            if m.type in _VOTE_REQUESTS and not m.transfer and self._in_lease():
                self.counters["vote_ignored_in_lease"] += 1
                return
            if m.type == MessageType.PRE_VOTE or (
                m.type == MessageType.PRE_VOTE_RESP and not m.reject
            ):
                pass  # a pre-vote never changes terms
            elif m.type in _FROM_LEADER:
                self._become_follower(m.term, m.frm)
            else:
                self._become_follower(m.term, NONE)
        elif m.term < self.term:
            self.counters["dropped_stale_term"] += 1
            if m.type in (MessageType.APP, MessageType.HEARTBEAT):
                # Tell a deposed leader about the newer term (it may be cut off otherwise).
                self._send(MessageType.APP_RESP, m.frm)
            elif m.type == MessageType.PRE_VOTE:
                self._send(MessageType.PRE_VOTE_RESP, m.frm, reject=True)
            return

        if m.type in _VOTE_REQUESTS:
            self._handle_vote_request(m)
        elif self.role == Role.LEADER:
            self._step_leader(m)
        elif self.role == Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _reject_reason(self, m: Message) -> str:
        if m.group_id != self.cfg.group_id:
            return "dropped_unknown_group"
        if m.to != self.id:
            return "dropped_wrong_recipient"
        if m.frm <= 0 or m.frm == self.id or m.term < 0 or m.index < 0 or m.commit < 0:
            return "dropped_malformed"
        if m.type == MessageType.SNAP and m.snapshot is None:
            return "dropped_malformed"
        if m.type == MessageType.APP:
            if m.log_term > m.term or len(m.entries) > _MAX_ENTRIES_PER_MESSAGE:
                return "dropped_malformed"
            for offset, entry in enumerate(m.entries):
                if entry.index != m.index + 1 + offset or entry.term > m.term:
                    return "dropped_malformed"
                if offset and entry.term < m.entries[offset - 1].term:
                    return "dropped_malformed"
            if m.entries and m.entries[0].term < m.log_term:
                return "dropped_malformed"
        return ""

    def _in_lease(self) -> bool:
        if not self.cfg.check_quorum:
            return False
        recently_heard = self.leader_id != NONE and (
            self.election_elapsed < self.cfg.election_timeout_ticks
        )
        just_booted = self.tick_count < self.cfg.election_timeout_ticks
        return recently_heard or just_booted

    def _handle_vote_request(self, m: Message) -> None:
        pre = m.type == MessageType.PRE_VOTE
        resp = MessageType.PRE_VOTE_RESP if pre else MessageType.VOTE_RESP
        can_vote = (
            self.vote == m.frm
            or (self.vote == NONE and self.leader_id == NONE)
            or (pre and m.term > self.term)
        )
        # No check of m.frm against our configuration (dissertation §4.1): our view may
        # lag, and refusing such votes can leave no electable node (seed 40067). Removed
        # nodes cannot disrupt: pre-vote and the lease stop them, and without the entries
        # that removed them their logs lose the freshness comparison.
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._send(resp, m.frm, term=m.term)
            if not pre:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self._send(resp, m.frm, reject=True)

    def _step_follower(self, m: Message) -> None:
        if m.type in _FROM_LEADER:
            self.election_elapsed = 0
            self.leader_id = m.frm
            if m.type == MessageType.APP:
                self._handle_append(m)
            elif m.type == MessageType.HEARTBEAT:
                self._handle_heartbeat(m)
            else:
                self._handle_snapshot(m)
        elif m.type == MessageType.TIMEOUT_NOW:
            if self._promotable():
                self._campaign(pre_vote=False, transfer=True)
            else:
                self.counters["timeout_now_ignored"] += 1
        else:
            self.counters["ignored_message"] += 1

    def _step_candidate(self, m: Message) -> None:
        if m.type in _FROM_LEADER:
            self._become_follower(m.term, m.frm)
            self._step_follower(m)
            return
        expected = (
            MessageType.PRE_VOTE_RESP if self.role == Role.PRE_CANDIDATE else MessageType.VOTE_RESP
        )
        if m.type != expected:
            self.counters["ignored_message"] += 1
            return
        if m.frm not in self.conf.voters:
            self.counters["dropped_unknown_node"] += 1
            return
        self._votes.setdefault(m.frm, not m.reject)
        voters = self.conf.voters
        granted = sum(1 for node, v in self._votes.items() if v and node in voters)
        rejected = sum(1 for node, v in self._votes.items() if not v and node in voters)
        if granted >= self.quorum():
            if self.role == Role.PRE_CANDIDATE:
                self._campaign(pre_vote=False, transfer=False)
            else:
                self._become_leader()
        elif rejected > len(self.conf.voters) - self.quorum():
            self._become_follower(self.term, NONE)

    def _step_leader(self, m: Message) -> None:
        pr = self.prs.get(m.frm)
        if pr is None:
            self.counters["dropped_unknown_node"] += 1
            return
        if m.type == MessageType.APP_RESP:
            if m.index > self.log.last_index():
                self.counters["dropped_malformed"] += 1
                return
            pr.recent_active = True
            self._handle_append_response(m, pr)
        elif m.type == MessageType.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state == ProgressState.REPLICATE and pr.inflights.full():
                pr.inflights.free_first()
            if pr.match < self.log.last_index():
                self._maybe_send_append(m.frm, send_if_empty=True)
            if m.heartbeat_seq > pr.heartbeat_seq_acked:
                pr.heartbeat_seq_acked = m.heartbeat_seq
                self._advance_reads()
        elif m.type == MessageType.SNAP_RESP:
            pr.recent_active = True
            if pr.state == ProgressState.SNAPSHOT and m.index == pr.pending_snapshot:
                self.counters["snapshot_rejected"] += 1
                pr.pending_snapshot = 0
                pr.become_probe()
        else:
            self.counters["ignored_message"] += 1

    # ---------------------------------------------------------------- follower handlers

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            self._send(MessageType.APP_RESP, m.frm, index=self.log.committed)
            return
        before = self.log.last_index()
        last_new = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            if m.entries:
                self._rescan_conf(min(before + 1, m.entries[0].index))
            self._send(MessageType.APP_RESP, m.frm, index=last_new)
            return
        hint_index, hint_term = self.log.find_conflict_by_term(
            min(m.index, self.log.last_index()), m.log_term
        )
        self._send(
            MessageType.APP_RESP,
            m.frm,
            index=m.index,
            reject=True,
            reject_hint=hint_index,
            log_term=hint_term,
        )

    def _handle_heartbeat(self, m: Message) -> None:
        if m.commit > self.log.last_index():
            self.counters["heartbeat_commit_clamped"] += 1
        self.log.commit_to(min(m.commit, self.log.last_index()))
        self._send(MessageType.HEARTBEAT_RESP, m.frm, heartbeat_seq=m.heartbeat_seq)

    def _handle_snapshot(self, m: Message) -> None:
        meta = m.snapshot
        assert meta is not None
        if meta.index <= self.log.committed:
            self._snap_rx = None
            if m.snap_done:
                self._send(MessageType.APP_RESP, m.frm, index=self.log.committed)
            return
        key = (meta.index, meta.term)
        if m.snap_offset == 0:
            self._snap_rx = (key, bytearray())
        rx = self._snap_rx
        if rx is None or rx[0] != key or m.snap_offset > len(rx[1]):
            self._snap_rx = None
            self._send(MessageType.SNAP_RESP, m.frm, index=meta.index, reject=True)
            return
        if m.snap_offset < len(rx[1]):
            self.counters["snapshot_chunk_duplicate"] += 1
            return
        rx[1].extend(m.snap_data)
        if not m.snap_done:
            return
        self._snap_rx = None
        if self.log.match_term(meta.index, meta.term):
            self.log.commit_to(meta.index)
            self._send(MessageType.APP_RESP, m.frm, index=self.log.committed)
            return
        snapshot = Snapshot(meta, bytes(rx[1]))
        self.log.restore(snapshot)
        self._snapshot = snapshot
        self._conf_base = meta.conf
        self._conf_log = []
        self._set_conf(meta.conf)
        self.counters["snapshot_installed"] += 1
        self._send(MessageType.APP_RESP, m.frm, index=meta.index)

    # ---------------------------------------------------------------- leader handlers

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        if m.reject:
            next_probe = m.reject_hint
            if m.log_term > 0:
                next_probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decrease_to(m.index, next_probe):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self._maybe_send_append(m.frm, send_if_empty=True)
            return
        was_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT:
            if pr.match >= pr.pending_snapshot:
                pr.become_probe()
                pr.become_replicate()
        else:
            pr.inflights.free_le(m.index)
        if self._maybe_commit():
            if self.role != Role.LEADER:
                return  # the commit removed this leader from the group
            # Entries still unsent go out now and carry the new commit index; followers
            # with nothing new learn it from the next append or heartbeat. An empty
            # append per commit (etcd's bcastAppend) doubles the messages per entry on
            # every node for a follower-side apply nobody waits for: the leader answers
            # proposals and reads. (Measured: docs/design/raft-driver.md, "Decisions".)
            for node in self.prs:
                if node != self.id:
                    while self._maybe_send_append(node, send_if_empty=False):
                        pass
        elif was_paused:
            self._maybe_send_append(m.frm, send_if_empty=False)
        while self._maybe_send_append(m.frm, send_if_empty=False):
            pass
        if m.frm == self.lead_transferee and pr.match == self.log.last_index():
            self._send_timeout_now(m.frm)

    def _send_timeout_now(self, to: int) -> None:
        # The target's campaign overrides every voter's lease, and the message may arrive
        # after the transfer was aborted: no lease reads for the rest of this term.
        self._timeout_now_sent = True
        self._send(MessageType.TIMEOUT_NOW, to)

    def _maybe_commit(self) -> bool:
        """Raft §5.4.2: commit the quorum's match index only if it is of the current term."""
        voters = self.conf.voters
        matches = sorted((self.prs[v].match for v in voters if v in self.prs), reverse=True)
        q = self.quorum()
        if len(matches) < q:
            return False
        index = matches[q - 1]
        if index <= self.log.committed or self.log.term(index) != self.term:
            return False
        self.log.commit_to(index)
        self._on_commit_advanced()
        return True

    def _on_commit_advanced(self) -> None:
        if self._conf_log and self._conf_log[-1][0] <= self.log.committed:
            for node in [n for n in self.prs if n not in self.conf.members()]:
                if node != self.id:
                    del self.prs[node]
        if self._reads_waiting_commit and self.log.term(self.log.committed) == self.term:
            waiting, self._reads_waiting_commit = self._reads_waiting_commit, []
            for ctx in waiting:
                self._add_read(ctx)
        if (
            self.id not in self.conf.voters
            and self._conf_log
            and self._conf_log[-1][0] <= self.log.committed
        ):
            self.counters["leader_removed_step_down"] += 1
            self._become_follower(self.term, NONE)

    def _maybe_send_append(self, to: int, *, send_if_empty: bool) -> bool:
        pr = self.prs[to]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        prev_term = self.log.term(prev_index)
        entries = None
        if prev_term is not None:
            entries = self.log.slice(
                pr.next, self.cfg.max_append_entries, self.cfg.max_append_bytes
            )
        if prev_term is None or entries is None:
            self._send_snapshot(to, pr)
            return True
        if not entries and not send_if_empty:
            return False
        self._send(
            MessageType.APP,
            to,
            index=prev_index,
            log_term=prev_term,
            entries=tuple(entries),
            commit=self.log.committed,
        )
        if entries:
            pr.sent_entries(entries[-1].index, sum(e.size_bytes() for e in entries))
        elif pr.state == ProgressState.PROBE:
            pr.probe_sent = True
        return True

    def _send_snapshot(self, to: int, pr: Progress) -> None:
        snapshot = self._snapshot
        assert snapshot is not None, "log compacted without a snapshot"
        chunk = self.cfg.snapshot_chunk_bytes
        data = snapshot.data
        offsets = list(range(0, len(data), chunk)) or [0]
        for offset in offsets:
            self._send(
                MessageType.SNAP,
                to,
                snapshot=snapshot.meta,
                snap_offset=offset,
                snap_data=data[offset : offset + chunk],
                snap_done=offset == offsets[-1],
            )
        self.counters["snapshot_sent"] += 1
        pr.become_snapshot(snapshot.meta.index)

    def _bcast_append(self) -> None:
        for node in self.prs:
            if node != self.id and self._maybe_send_append(node, send_if_empty=True):
                while self._maybe_send_append(node, send_if_empty=False):
                    pass  # pipeline up to the inflight window

    def _bcast_heartbeat(self) -> None:
        self._heartbeat_seq += 1
        seq = self._heartbeat_seq
        self._readonly.heartbeat_sent(seq, self.tick_count)
        self.prs[self.id].heartbeat_seq_acked = seq
        for node, pr in self.prs.items():
            if node != self.id:
                commit = min(pr.match, self.log.committed)
                self._send(MessageType.HEARTBEAT, node, commit=commit, heartbeat_seq=seq)
        self._advance_reads()

    def _add_read(self, ctx: bytes) -> None:
        self.counters["read_index"] += 1
        if self.conf.voters == {self.id}:
            self._read_states.append(ReadState(self.log.committed, ctx))
            return
        self._readonly.add(self._heartbeat_seq + 1, self.log.committed, ctx)
        self._want_heartbeat = True

    def _advance_reads(self) -> None:
        voters = self.conf.voters
        acked = sorted(self.prs[v].heartbeat_seq_acked for v in voters if v in self.prs)
        acked.reverse()
        q = self.quorum()
        if len(acked) < q:
            return
        quorum_seq = acked[q - 1]
        self._read_states.extend(self._readonly.release(quorum_seq))
        start = self._readonly.lease_start_tick(quorum_seq)
        if start is not None:
            until = start + self.cfg.election_timeout_ticks - self.cfg.max_clock_drift_ticks
            self._lease_until_tick = max(self._lease_until_tick, until)

    def _quorum_active(self) -> bool:
        active = sum(
            1
            for v in self.conf.voters
            if v == self.id or (v in self.prs and self.prs[v].recent_active)
        )
        return active >= self.quorum()

    # ---------------------------------------------------------------- role changes

    def _set_role(self, role: Role) -> None:
        assert role in _ROLE_TRANSITIONS[self.role], f"{self.role.name} -> {role.name}"
        self.role = role

    def _reset_timers(self) -> None:
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        timeout = self.cfg.election_timeout_ticks
        jitter = int(self._rng.random() * timeout)
        assert 0 <= jitter < timeout
        self.randomized_election_timeout = timeout + jitter

    def _reset(self, term: int) -> None:
        if term != self.term:
            assert term > self.term, "terms never go backwards"
            self.term = term
            self.vote = NONE
        self.leader_id = NONE
        self._reset_timers()
        self.lead_transferee = NONE
        self._votes = {}
        self._readonly.reset()
        self._reads_waiting_commit = []
        self._lease_until_tick = 0
        self._timeout_now_sent = False
        self._want_append = self._want_heartbeat = False

    def _become_follower(self, term: int, leader: int) -> None:
        self._set_role(Role.FOLLOWER)
        self._reset(term)
        self.leader_id = leader
        self.prs = {}

    def _promotable(self) -> bool:
        return self.is_voter() and self.log.pending_snapshot is None

    def _campaign(self, *, pre_vote: bool, transfer: bool) -> None:
        if pre_vote:
            self._set_role(Role.PRE_CANDIDATE)
            self._reset(self.term)
            vote_term, kind = self.term + 1, MessageType.PRE_VOTE
        else:
            self._set_role(Role.CANDIDATE)
            self._reset(self.term + 1)
            self.vote = self.id
            vote_term, kind = self.term, MessageType.VOTE
        self.counters["campaign_pre_vote" if pre_vote else "campaign"] += 1
        self._votes = {self.id: True}
        if self.quorum() <= 1:
            if pre_vote:
                self._campaign(pre_vote=False, transfer=transfer)
            else:
                self._become_leader()
            return
        for voter in sorted(self.conf.voters):
            if voter != self.id:
                self._send(
                    kind,
                    voter,
                    term=vote_term,
                    index=self.log.last_index(),
                    log_term=self.log.last_term(),
                    transfer=transfer,
                )

    def _become_leader(self) -> None:
        self._set_role(Role.LEADER)
        self._reset(self.term)
        self.leader_id = self.id
        self.counters["became_leader"] += 1
        self.prs = {}
        for node in self.conf.members() | {self.id}:
            self._add_progress(node)
        me = self.prs[self.id]
        me.maybe_update(self.log.durable_last)
        me.become_replicate()
        me.recent_active = True
        self._append_entry(EntryType.NORMAL, b"")

    def _add_progress(self, node: int) -> None:
        cfg = self.cfg
        pr = Progress(self.log.last_index() + 1, cfg.max_inflight_appends, cfg.max_inflight_bytes)
        pr.recent_active = True
        self.prs[node] = pr

    def _append_entry(self, kind: EntryType, data: bytes) -> tuple[int, int]:
        index = self.log.last_index() + 1
        self.log.append([Entry(self.term, index, kind, data)])
        if kind == EntryType.CONF_CHANGE:
            self._rescan_conf(index)
        self._want_append = True
        return index, self.term

    # ---------------------------------------------------------------- membership

    def _rescan_conf(self, from_index: int) -> None:
        """Recompute the configuration after the log changed at or after `from_index`."""
        while self._conf_log and self._conf_log[-1][0] >= from_index:
            self._conf_log.pop()
        conf = self._conf_log[-1][1] if self._conf_log else self._conf_base
        lo = max(from_index, self.log.first_index())
        for index in range(lo, self.log.last_index() + 1):
            entry = self.log.entry(index)
            if entry.type != EntryType.CONF_CHANGE:
                continue
            change = ConfChange.decode(entry.data)
            if change is None:
                self.counters["malformed_conf_change"] += 1
                continue
            conf = change.apply_to(conf)
            self._conf_log.append((index, conf))
        self._set_conf(conf)

    def _set_conf(self, conf: ConfState) -> None:
        if conf == self.conf:
            return
        self.conf = conf
        if self.role != Role.LEADER:
            return
        for node in conf.members():
            if node not in self.prs:
                self._add_progress(node)
        # Removed nodes keep their progress until the change commits, so that they learn
        # of their removal (and stop campaigning); see _on_commit_advanced.
        if self._maybe_commit():
            self._want_append = True

    # ---------------------------------------------------------------- sending

    def _send(
        self, kind: MessageType, to: int, *, term: int | None = None, **fields: object
    ) -> None:
        message = Message(
            kind,
            to,
            self.id,
            self.term if term is None else term,
            self.cfg.group_id,
            **fields,  # type: ignore[arg-type]
        )
        self._msgs.append(message)
