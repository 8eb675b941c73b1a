"""A hypothesis state machine drives three cores through arbitrary interleavings (ticks,
proposals, reordered, duplicated and dropped messages, partitions, restarts from the
persisted state) and checks the safety properties of the Raft paper's Figure 3 after every
step."""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from cairn.raft.core import RaftConfig
from cairn.raft.types import Entry, Role
from cairn.sim.lockstep import LockstepCluster

NODES = [1, 2, 3]


class RaftMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # One entry per append: the leader's no-op travels apart from older entries,
        # which is what Figure 8's interleaving needs.
        self.c = LockstepCluster(NODES, seed=0, config=RaftConfig(node_id=1, max_append_entries=1))
        self.leaders: dict[int, int] = {}
        self.committed: dict[int, Entry] = {}
        self.serial = 0

    def _record(self) -> None:
        for node_id, entries in self.c.applied.items():
            for entry in entries:
                seen = self.committed.setdefault(entry.index, entry)
                assert seen == entry, f"state machine safety at {entry.index} on {node_id}"
            entries.clear()
        for node in self.c.nodes.values():
            if node.role == Role.LEADER:
                assert self.leaders.setdefault(node.term, node.id) == node.id, "two leaders"

    @rule(node=st.sampled_from(NODES), ticks=st.integers(1, 12))
    def tick(self, node: int, ticks: int) -> None:
        self.c.tick(node, ticks)
        self._record()

    @rule(pick=st.integers(0, 10_000), duplicate=st.booleans(), drop=st.booleans())
    def deliver_one(self, pick: int, duplicate: bool, drop: bool) -> None:
        queue = self.c.queue
        if not queue:
            return
        message = queue.pop(pick % len(queue))
        if duplicate:
            queue.append(message)
        if drop or (message.frm, message.to) in self.c.cut:
            return
        self.c.nodes[message.to].step(message)
        self.c.process(message.to)
        self._record()

    @rule(node=st.sampled_from(NODES))
    def time_out(self, node: int) -> None:
        """An election timeout passes everywhere and `node` campaigns (no delivery yet)."""
        self.c.expire_leases()
        core = self.c.nodes[node]
        if core.role != Role.LEADER:
            self.c.tick(node, core.randomized_election_timeout - core.election_elapsed)
        self._record()

    @rule()
    def deliver_all(self) -> None:
        self.c.deliver()
        self._record()

    @rule(node=st.sampled_from(NODES))
    def propose(self, node: int) -> None:
        core = self.c.nodes[node]
        if core.role == Role.LEADER and core.lead_transferee == 0:
            self.serial += 1
            self.c.propose(node, b"p%d" % self.serial)

    @rule(node=st.sampled_from(NODES))
    def isolate(self, node: int) -> None:
        self.c.isolate(node)

    @rule()
    def heal(self) -> None:
        self.c.cut.clear()

    @rule(node=st.sampled_from(NODES))
    def restart(self, node: int) -> None:
        old = self.c.nodes[node]
        self.c.nodes[node] = self.c._make(
            node, self.c.initial, old.hard_state(), list(old.log.entries)
        )
        self.c.queue = [m for m in self.c.queue if m.to != node]

    @invariant()
    def log_matching(self) -> None:
        nodes = list(self.c.nodes.values())
        for i, a in enumerate(nodes):
            for b in nodes[i + 1 :]:
                hi = min(a.last_index, b.last_index)
                agree = False
                for index in range(hi, 1, -1):
                    ea, eb = a.log.entry(index), b.log.entry(index)
                    agree = agree or ea.term == eb.term
                    assert not agree or ea == eb, f"log matching at {index}"

    @invariant()
    def leader_completeness(self) -> None:
        """The leader of the newest term holds every committed entry (§5.4). A deposed
        leader of an older term that does not know it yet may lag; it cannot commit."""
        if not self.leaders:
            return
        term = max(self.leaders)
        node = self.c.nodes[self.leaders[term]]
        if node.role == Role.LEADER and node.term == term:
            for index, entry in self.committed.items():
                assert node.log.entry(index) == entry, "leader lacks a committed entry"


RaftMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=80, deadline=None)
TestRaftMachine = RaftMachine.TestCase
