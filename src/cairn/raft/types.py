"""Values the Raft core takes and returns: entries, hard state, messages, Ready, errors.

Everything here is a frozen dataclass (or an enum) so that a message or an entry can be
shared between the core, the simulator and a driver without anyone mutating it. The wire
and WAL encodings live with the driver and the WAL; the core never serialises a message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from cairn.base.errors import CairnError

NONE = 0
"""Node id 0 means "nobody": no vote cast, no leader known. Real node ids are >= 1."""


class Role(enum.IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


class EntryType(enum.IntEnum):
    NORMAL = 0
    """Application command (empty data: the no-op a new leader appends, never applied)."""
    CONF_CHANGE = 1
    """A single-server membership change; `data` is `ConfChange.encode()`."""


class MessageType(enum.IntEnum):
    APP = 1
    APP_RESP = 2
    VOTE = 3
    VOTE_RESP = 4
    PRE_VOTE = 5
    PRE_VOTE_RESP = 6
    HEARTBEAT = 7
    HEARTBEAT_RESP = 8
    SNAP = 9
    """One chunk of InstallSnapshot (`snap_offset`, `snap_data`, `snap_done`)."""
    SNAP_RESP = 10
    """Only sent to reject a chunk that does not follow the previous one."""
    TIMEOUT_NOW = 11
    """Leadership transfer: campaign now, skipping pre-vote and the leader lease."""


EARLY_MESSAGE_TYPES = frozenset(
    {MessageType.APP, MessageType.HEARTBEAT, MessageType.SNAP, MessageType.TIMEOUT_NOW}
)
"""Leader-to-follower messages that may leave before this node's fsync of the same Ready
when their term is already durable (dissertation §10.2.1); the rest wait for it."""


class ConfChangeType(enum.IntEnum):
    ADD_LEARNER = 1
    PROMOTE_LEARNER = 2
    REMOVE_NODE = 3


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""

    def size_bytes(self) -> int:
        return len(self.data) + 24


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on disk before any message that depends on it is sent."""

    term: int = 0
    vote: int = NONE
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    voters: frozenset[int] = frozenset()
    learners: frozenset[int] = frozenset()

    def members(self) -> frozenset[int]:
        return self.voters | self.learners


@dataclass(frozen=True, slots=True)
class ConfChange:
    type: ConfChangeType
    node_id: int

    def encode(self) -> bytes:
        return b"cc1:%d:%d" % (int(self.type), self.node_id)

    @staticmethod
    def decode(data: bytes) -> ConfChange | None:
        """None for anything that is not a well-formed version-1 conf change."""
        parts = data.split(b":")
        if len(parts) != 3 or parts[0] != b"cc1":
            return None
        try:
            kind = ConfChangeType(int(parts[1]))
            node = int(parts[2])
        except ValueError:
            return None
        return ConfChange(kind, node) if node > 0 else None

    def apply_to(self, conf: ConfState) -> ConfState:
        n = self.node_id
        if self.type == ConfChangeType.ADD_LEARNER:
            return ConfState(conf.voters - {n}, conf.learners | {n})
        if self.type == ConfChangeType.PROMOTE_LEARNER:
            return ConfState(conf.voters | {n}, conf.learners - {n})
        return ConfState(conf.voters - {n}, conf.learners - {n})


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int = 0
    term: int = 0
    conf: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta
    data: bytes


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    to: int
    frm: int
    term: int
    group_id: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: SnapshotMeta | None = None
    snap_offset: int = 0
    snap_data: bytes = b""
    snap_done: bool = False
    heartbeat_seq: int = 0
    transfer: bool = False
    """On VOTE: this campaign follows TimeoutNow, so voters ignore their leader lease."""


@dataclass(frozen=True, slots=True)
class ReadState:
    """`ctx` may be served once the local state machine has applied `index`."""

    index: int
    ctx: bytes


@dataclass(frozen=True, slots=True)
class SoftState:
    leader: int
    role: Role


@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the driver. Order (contract):

    1. if `snapshot`: persist it (replaces the log up to its index) and restore the state
       machine from it;
    2. persist `entries` (first truncate the stored log at `entries[0].index`) and
       `hard_state` if not None, and fsync;
    3. only then send `messages`;
    4. apply `committed_entries` in order; serve `read_states` once applied >= index;
    5. call `advance(ready)`.
    """

    soft_state: SoftState
    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    messages: tuple[Message, ...]
    committed_entries: tuple[Entry, ...]
    read_states: tuple[ReadState, ...]

    def must_sync(self) -> bool:
        return bool(self.entries) or self.hard_state is not None or self.snapshot is not None


class RandomSource(Protocol):
    """Where randomised election timeouts come from (a seeded source in tests and sim)."""

    def random(self) -> float: ...


class RaftError(CairnError):
    """Root of the errors the Raft core raises at its API."""


class NotLeader(RaftError):
    """The call needs the leader; `leader_id` is the leader this node knows (0: none)."""

    def __init__(self, leader_id: int) -> None:
        super().__init__(f"not the leader (leader is {leader_id or 'unknown'})")
        self.leader_id = leader_id


class ProposalTooLarge(RaftError):
    def __init__(self, size_bytes: int, max_bytes: int) -> None:
        super().__init__(f"proposal of {size_bytes} bytes exceeds {max_bytes} bytes")
        self.size_bytes = size_bytes
        self.max_bytes = max_bytes


class ProposalDropped(RaftError):
    """The leader cannot take this proposal now (transfer, pending change, full queue)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProposalOutcomeUnknown(RaftError):
    """The proposal's index was covered by a snapshot this node installed: its entry may or
    may not be inside it. Like a timeout, only an idempotent command may be retried."""


class ConfChangeRejected(RaftError):
    """The membership change is invalid or unsafe right now; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
