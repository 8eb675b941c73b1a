"""A lockstep Raft cluster for tests that script every step (etcd's `network` test helper).

Storage is perfect (a Ready is on disk the moment it is handed over), messages wait in one
FIFO queue until `deliver()`, and a test decides which links are cut and which messages
are dropped. Nothing is random except the election timeouts, which come from a seeded
`random.Random`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

from cairn.raft.core import RaftConfig, RaftNode, bootstrap_snapshot
from cairn.raft.types import Entry, HardState, Message, ReadState, Role, Snapshot

MAX_DELIVERIES = 100_000


class LockstepCluster:
    def __init__(
        self,
        voters: list[int],
        *,
        spares: tuple[int, ...] = (),
        seed: int = 0,
        config: RaftConfig | None = None,
        logs: dict[int, tuple[HardState, list[Entry]]] | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.base_config = config or RaftConfig(node_id=1)
        self.initial = bootstrap_snapshot(set(voters), b"")
        self.nodes: dict[int, RaftNode] = {}
        self.queue: list[Message] = []
        self.cut: set[tuple[int, int]] = set()
        self.drop: Callable[[Message], bool] = lambda _m: False
        self.applied: dict[int, list[Entry]] = {}
        self.read_states: dict[int, list[ReadState]] = {}
        self.delivered: list[Message] = []
        logs = logs or {}
        for node_id in voters:
            hs, entries = logs.get(node_id, (HardState(), []))
            self.nodes[node_id] = self._make(node_id, self.initial, hs, entries)
        for node_id in spares:
            self.nodes[node_id] = self._make(node_id, None, HardState(), [])

    def _make(
        self, node_id: int, snapshot: Snapshot | None, hs: HardState, entries: list[Entry]
    ) -> RaftNode:
        self.applied[node_id] = []
        self.read_states[node_id] = []
        cfg = replace(self.base_config, node_id=node_id)
        node = RaftNode(cfg, self.rng, hard_state=hs, snapshot=snapshot, entries=entries)
        # As if booted an election timeout ago: a freshly booted node ignores vote requests
        # for one election timeout (see readonly.py), which scripted tests do not want.
        node.tick_count = cfg.election_timeout_ticks
        return node

    # -- driving ----------------------------------------------------------------------------

    def process(self, node_id: int) -> None:
        """Persist (perfectly), queue the messages, apply; until the node has no Ready."""
        node = self.nodes[node_id]
        while node.has_ready():
            ready = node.ready()
            self.queue.extend(ready.messages)
            self.applied[node_id].extend(ready.committed_entries)
            self.read_states[node_id].extend(ready.read_states)
            node.advance(ready)

    def process_all(self) -> None:
        for node_id in self.nodes:
            self.process(node_id)

    def tick(self, node_id: int, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.nodes[node_id].tick()
            self.process(node_id)

    def deliver(self, max_messages: int = MAX_DELIVERIES) -> int:
        """Deliver queued messages (and what they cause) until the queue is empty."""
        count = 0
        while self.queue:
            assert count < max_messages, "messages did not quiesce"
            message = self.queue.pop(0)
            count += 1
            if (message.frm, message.to) in self.cut or self.drop(message):
                continue
            if message.to not in self.nodes:
                continue
            self.delivered.append(message)
            self.nodes[message.to].step(message)
            self.process(message.to)
        return count

    def campaign(self, node_id: int) -> None:
        """Make `node_id` time out (pre-vote, then vote) and deliver everything."""
        node = self.nodes[node_id]
        self.tick(node_id, node.randomized_election_timeout - node.election_elapsed)
        self.deliver()

    def expire_leases(self) -> None:
        """As if an election timeout passed on every follower without hearing a leader
        (without ticking them, so none of them campaigns)."""
        for node in self.nodes.values():
            if node.role != Role.LEADER:
                node.election_elapsed = max(node.election_elapsed, node.cfg.election_timeout_ticks)

    def elect(self, node_id: int) -> RaftNode:
        self.process_all()
        self.deliver()
        self.campaign(node_id)
        node = self.nodes[node_id]
        assert node.role == Role.LEADER, (node.role, node.term)
        self.deliver()
        return node

    def isolate(self, node_id: int) -> None:
        for other in self.nodes:
            if other != node_id:
                self.cut.add((node_id, other))
                self.cut.add((other, node_id))

    def heal(self) -> None:
        self.cut.clear()
        self.drop = lambda _m: False

    def propose(self, node_id: int, data: bytes) -> tuple[int, int]:
        result = self.nodes[node_id].propose(data)
        self.process(node_id)
        return result

    def leader(self) -> RaftNode | None:
        leaders = [n for n in self.nodes.values() if n.role == Role.LEADER]
        return max(leaders, key=lambda n: n.term) if leaders else None
