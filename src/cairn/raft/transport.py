"""Raft messages between processes: one outbox per peer, shared by every group.

Theory of operation
-------------------
The core emits `Message`s addressed to node ids. `RaftTransport.send` drops each into the
outbox of its destination and, when the peer's connection is open and its socket buffer
has room, sends what is queued there at once as one one-way `RaftBatch` (a NOTIFY frame,
up to `batch_bytes_max`); otherwise the peer's sender task connects, waits for the
socket and sends everything queued, so heartbeats and appends of all groups hosted on
this node travel together. There is no reply: Raft answers its messages with its own
messages, so an acknowledgement per batch would only double the frames (it cost about a
fifth of a busy leader's CPU). Messages waiting in an outbox are bounded by
`outbox_messages_max`; past it the oldest are dropped - Raft retransmits whatever matters.

Delivery is best-effort, as Raft assumes: a batch that cannot be sent (peer down, in
backoff, connection lost) is dropped and counted, never retried here. The receiving side
steps messages into their group in arrival order; a message for a group this node does
not host is dropped and counted. `RaftBatch` is also served as a call (with a
`RaftBatchAck`) for tools and tests that want to know what was accepted.
"""

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable

import msgspec

from cairn.base.errors import CairnError
from cairn.monitor.logs import log_event
from cairn.raft.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    SnapshotMeta,
)
from cairn.wire import CallContext, Reply, Router, RpcPool

log = logging.getLogger("cairn.raft.transport")

BATCH_BYTES_MAX = 4 << 20
OUTBOX_MESSAGES_MAX = 16_384
SEND_TIMEOUT_SECONDS = 2.0


class WireEntry(msgspec.Struct, array_like=True, frozen=True):
    term: int
    index: int
    type: int
    data: bytes


class WireSnapshotMeta(msgspec.Struct, array_like=True, frozen=True):
    index: int
    term: int
    voters: list[int]
    learners: list[int]


class WireMessage(msgspec.Struct, array_like=True, frozen=True, omit_defaults=True):
    type: int
    to: int
    frm: int
    term: int
    group_id: int = 0
    log_term: int = 0
    index: int = 0
    entries: list[WireEntry] = []
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: WireSnapshotMeta | None = None
    snap_offset: int = 0
    snap_data: bytes = b""
    snap_done: bool = False
    heartbeat_seq: int = 0
    transfer: bool = False


class RaftBatch(msgspec.Struct, frozen=True, tag=True):
    messages: list[WireMessage]


class RaftBatchAck(msgspec.Struct, frozen=True, tag=True):
    accepted: int


def to_wire(m: Message) -> WireMessage:
    snapshot = None
    if m.snapshot is not None:
        conf = m.snapshot.conf
        snapshot = WireSnapshotMeta(
            m.snapshot.index, m.snapshot.term, sorted(conf.voters), sorted(conf.learners)
        )
    return WireMessage(
        type=int(m.type), to=m.to, frm=m.frm, term=m.term, group_id=m.group_id,
        log_term=m.log_term, index=m.index,
        entries=[WireEntry(e.term, e.index, int(e.type), e.data) for e in m.entries],
        commit=m.commit, reject=m.reject, reject_hint=m.reject_hint, snapshot=snapshot,
        snap_offset=m.snap_offset, snap_data=m.snap_data, snap_done=m.snap_done,
        heartbeat_seq=m.heartbeat_seq, transfer=m.transfer,
    )  # fmt: skip


def from_wire(w: WireMessage) -> Message:
    """Convert; raises ValueError on an unknown message or entry type."""
    snapshot = None
    if w.snapshot is not None:
        conf = ConfState(frozenset(w.snapshot.voters), frozenset(w.snapshot.learners))
        snapshot = SnapshotMeta(w.snapshot.index, w.snapshot.term, conf)
    return Message(
        type=MessageType(w.type), to=w.to, frm=w.frm, term=w.term, group_id=w.group_id,
        log_term=w.log_term, index=w.index,
        entries=tuple(Entry(e.term, e.index, EntryType(e.type), e.data) for e in w.entries),
        commit=w.commit, reject=w.reject, reject_hint=w.reject_hint, snapshot=snapshot,
        snap_offset=w.snap_offset, snap_data=w.snap_data, snap_done=w.snap_done,
        heartbeat_seq=w.heartbeat_seq, transfer=w.transfer,
    )  # fmt: skip


def _size(m: WireMessage) -> int:
    return 64 + len(m.snap_data) + sum(len(e.data) + 24 for e in m.entries)


def _take_batch(peer: "_Peer") -> list[WireMessage]:
    """The oldest queued messages of `peer`, up to `BATCH_BYTES_MAX` (at least one)."""
    batch: list[WireMessage] = []
    size = 0
    while peer.outbox:
        message_bytes = _size(peer.outbox[0])
        if batch and size + message_bytes > BATCH_BYTES_MAX:
            break
        batch.append(peer.outbox.popleft())
        size += message_bytes
    return batch


class _Peer:
    def __init__(self, address: str) -> None:
        self.address = address
        self.outbox: deque[WireMessage] = deque()
        self.wake = asyncio.Event()
        self.sending = False  # the sender task is between taking a batch and sending it
        self.task: asyncio.Task[None] | None = None


class RaftTransport:
    def __init__(
        self,
        pool: RpcPool,
        peers: dict[int, str],
        deliver: Callable[[Message], bool],
    ) -> None:
        """`peers` maps node id -> RPC address; `deliver` steps a received message into
        its group and returns False when no such group is hosted here."""
        self._pool = pool
        self._peers = {node: _Peer(address) for node, address in peers.items()}
        self._deliver = deliver
        self.counters: Counter[str] = Counter()

    def register(self, router: Router) -> None:
        router.register(RaftBatch, self._handle_batch)
        router.register_notify(RaftBatch, self._receive_batch)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for peer in self._peers.values():
            peer.task = loop.create_task(self._sender(peer))

    async def stop(self) -> None:
        tasks = [p.task for p in self._peers.values() if p.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def send(self, messages: tuple[Message, ...] | list[Message]) -> None:
        """Queue `messages`; those to a peer whose connection is open and writable go out
        now (one batch per peer per call), the rest when that peer's sender gets to them.
        Sending now saves the hop through the sender task on every append and reply."""
        touched: dict[int, _Peer] = {}
        for message in messages:
            peer = self._peers.get(message.to)
            if peer is None:
                self.counters["dropped_unknown_peer"] += 1
                continue
            if len(peer.outbox) >= OUTBOX_MESSAGES_MAX:
                peer.outbox.popleft()
                self.counters["dropped_outbox_full"] += 1
            peer.outbox.append(to_wire(message))
            touched[message.to] = peer
        for peer in touched.values():
            if not peer.sending:
                self._send_now(peer)
            if peer.outbox:
                peer.wake.set()

    async def _sender(self, peer: _Peer) -> None:
        while True:
            await peer.wake.wait()
            peer.wake.clear()
            while peer.outbox:
                batch = _take_batch(peer)
                peer.sending = True
                try:
                    async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                        await self._pool.notify(peer.address, RaftBatch(batch))
                except (CairnError, TimeoutError) as exc:
                    self._failed(peer, batch, exc)
                else:
                    self._count_sent(batch)
                finally:
                    peer.sending = False

    def _send_now(self, peer: _Peer) -> None:
        """Send `peer`'s outbox on its connection while the socket takes it unblocked."""
        connection = self._pool.writable_connection(peer.address)
        while connection is not None and peer.outbox and connection.writable:
            batch = _take_batch(peer)
            try:
                connection.notify_now(RaftBatch(batch))
            except CairnError as exc:
                self._failed(peer, batch, exc)
            else:
                self._count_sent(batch)

    def _count_sent(self, batch: list[WireMessage]) -> None:
        self.counters["batches_sent"] += 1
        self.counters["messages_sent"] += len(batch)

    def _failed(self, peer: _Peer, batch: list[WireMessage], exc: Exception) -> None:
        self.counters["batches_failed"] += 1
        self.counters["messages_dropped"] += len(batch)
        if self.counters["batches_failed"] % 100 == 1:
            log_event(log, "raft.send_failed", logging.DEBUG, peer=peer.address, error=str(exc))

    async def _handle_batch(
        self, batch: RaftBatch, _payload: memoryview, _ctx: CallContext
    ) -> Reply:
        return RaftBatchAck(self._receive_batch(batch, _payload, _ctx))

    def _receive_batch(self, batch: RaftBatch, _payload: memoryview, _ctx: CallContext) -> int:
        accepted = 0
        for wire_message in batch.messages:
            try:
                message = from_wire(wire_message)
            except ValueError:
                self.counters["dropped_malformed"] += 1
                continue
            if self._deliver(message):
                accepted += 1
            else:
                self.counters["dropped_unknown_group"] += 1
        return accepted
