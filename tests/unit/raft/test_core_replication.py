"""Log replication (Raft paper §5.3), the commit rule (§5.4.2, Figure 8), snapshots (§7)."""

from dataclasses import replace

from cairn.raft.core import RaftConfig
from cairn.raft.progress import ProgressState
from cairn.raft.types import Entry, HardState, MessageType, Role
from cairn.sim.lockstep import LockstepCluster


def entries(first: int, terms: list[int]) -> list[Entry]:
    return [Entry(term, first + i, data=b"e%d" % (first + i)) for i, term in enumerate(terms)]


def test_proposals_replicate_commit_and_apply_in_order_everywhere() -> None:
    c = LockstepCluster([1, 2, 3])
    c.elect(1)
    for i in range(20):
        c.propose(1, b"v%d" % i)
    c.deliver()
    c.tick(1, 2)
    c.deliver()
    datas = [[e.data for e in c.applied[n] if e.data] for n in (1, 2, 3)]
    assert datas[0] == [b"v%d" % i for i in range(20)]
    assert datas[0] == datas[1] == datas[2]


def test_appends_are_batched_and_bounded() -> None:
    cfg = RaftConfig(node_id=1, max_append_entries=4)
    c = LockstepCluster([1, 2, 3], config=cfg)
    c.elect(1)
    c.isolate(2)
    for i in range(10):
        c.nodes[1].propose(b"x%d" % i)  # no Ready in between: one batch
    c.process(1)
    appends = [m for m in c.queue if m.type == MessageType.APP and m.to == 3]
    assert [len(m.entries) for m in appends] == [4, 4, 2]
    c.deliver()


def test_pipelining_is_bounded_by_the_inflight_window() -> None:
    cfg = RaftConfig(node_id=1, max_append_entries=1, max_inflight_appends=3)
    c = LockstepCluster([1, 2, 3], config=cfg)
    c.elect(1)
    pr = c.nodes[1].prs[2]
    assert pr.state == ProgressState.REPLICATE
    for i in range(10):
        c.nodes[1].propose(b"x%d" % i)
    c.process(1)
    to2 = [m for m in c.queue if m.type == MessageType.APP and m.to == 2]
    assert len(to2) == 3 and pr.is_paused()
    c.deliver()
    assert c.nodes[2].last_index == c.nodes[1].last_index


def test_commit_rule_figure_8() -> None:
    """§5.4.2 / Figure 8: an entry from an earlier term on a majority is not committed
    by counting replicas; only an entry of the leader's own term commits it."""
    # Indices shifted by one: index 1 is the bootstrap snapshot (term 1).
    logs = {
        1: (HardState(term=3), entries(2, [2])),  # (c): S1 has 2@t2
        2: (HardState(term=3), entries(2, [2])),
        3: (HardState(term=3), []),
        4: (HardState(term=3), []),
        5: (HardState(term=3), entries(2, [3])),  # S5 has 2@t3 from its term-3 leadership
    }
    # The paper's setting: no check-quorum lease, so S5 may be elected right after S1 fails.
    cfg = RaftConfig(node_id=1, check_quorum=False)
    c = LockstepCluster([1, 2, 3, 4, 5], logs=logs, config=cfg)
    c.isolate(5)
    c.isolate(4)
    c.drop = lambda m: m.type == MessageType.APP and m.frm == 1
    s1 = c.elect(1)  # term 4, votes from 2 and 3; appends its no-op 3@t4
    assert s1.term == 4 and s1.log.term(3) == 4
    # Figure 8 (c): 2@t2 reaches a majority (S1, S2, S3) but 3@t4 does not.
    s1.prs[2].maybe_update(2)
    s1.prs[3].maybe_update(2)
    assert not s1._maybe_commit()
    assert s1.commit_index == 1, "an old-term entry must not be committed by counting"
    # (d) is therefore safe: S5 can still win (its last term 3 beats 2) and overwrite 2@t2.
    c.heal()
    c.isolate(1)
    c.campaign(5)  # first attempt only teaches S5 the current term (4)
    s5 = c.elect(5)
    assert s5.term == 5
    for node_id in (2, 3, 4):
        assert c.nodes[node_id].log.term(2) == 3
    # (e): had S1 replicated 3@t4 to a majority, both entries would commit together.
    c2 = LockstepCluster([1, 2, 3, 4, 5], logs=logs)
    c2.isolate(5)
    s1 = c2.elect(1)
    assert s1.commit_index == 3 and s1.log.term(2) == 2


def test_a_far_behind_conflicting_follower_is_repaired_in_few_round_trips() -> None:
    """§5.3 optimisation: the reject hint lets the leader skip a whole term at a time."""
    follower_log = entries(2, [1] * 5 + [2] * 40)  # a long stale tail of term 2
    leader_log = entries(2, [1] * 5 + [3] * 40)
    logs = {
        1: (HardState(term=3), leader_log),
        2: (HardState(term=3), leader_log),
        3: (HardState(term=2), follower_log),
    }
    c = LockstepCluster([1, 2, 3], logs=logs)
    c.isolate(3)
    c.elect(1)
    c.heal()
    c.delivered.clear()
    c.tick(1, 2)
    c.deliver()
    c.tick(1, 2)
    c.deliver()
    rejects = [m for m in c.delivered if m.type == MessageType.APP_RESP and m.reject]
    assert 1 <= len(rejects) <= 2, rejects
    assert c.nodes[3].log.term(46) == 3
    assert c.nodes[3].last_index == c.nodes[1].last_index


def test_leader_replaces_a_conflicting_uncommitted_suffix() -> None:
    logs = {
        1: (HardState(term=4), entries(2, [2, 4])),
        2: (HardState(term=4), entries(2, [2, 4])),
        3: (HardState(term=3), entries(2, [2, 3, 3, 3])),
    }
    c = LockstepCluster([1, 2, 3], logs=logs)
    c.elect(1)
    c.tick(1, 2)
    c.deliver()
    assert [e.term for e in c.nodes[3].log.entries] == [2, 4, 5]
    assert c.nodes[3].commit_index == 4


def test_a_follower_restarted_from_its_persisted_state_catches_up() -> None:
    c = LockstepCluster([1, 2, 3])
    c.elect(1)
    c.propose(1, b"a")
    c.deliver()
    node3 = c.nodes[3]
    hs, log = node3.hard_state(), list(node3.log.entries)
    c.nodes[3] = c._make(3, c.initial, hs, log)
    c.propose(1, b"b")
    c.deliver()
    c.tick(1, 2)
    c.deliver()
    assert [e.data for e in c.applied[3] if e.data][-1] == b"b"


def test_snapshot_is_installed_in_chunks_on_a_lagging_follower() -> None:
    """§7: the leader compacts its log; a follower behind the compaction point gets the
    snapshot in chunks (offset, done), installs it and then catches up from the log."""
    cfg = RaftConfig(node_id=1, snapshot_chunk_bytes=10)
    c = LockstepCluster([1, 2, 3], config=cfg)
    leader = c.elect(1)
    c.isolate(3)
    for i in range(30):
        c.propose(1, b"v%d" % i)
    c.deliver()
    state = b"S" * 35  # the application's state: 4 chunks of at most 10 bytes
    snap = leader.compact(leader.applied_index, state)
    c.propose(1, b"after")
    c.deliver()
    c.heal()
    c.delivered.clear()
    c.tick(1, 2)
    c.deliver()
    chunks = [m for m in c.delivered if m.type == MessageType.SNAP]
    assert [m.snap_offset for m in chunks] == [0, 10, 20, 30]
    assert [m.snap_done for m in chunks] == [False, False, False, True]
    node3 = c.nodes[3]
    assert node3.log.snapshot_index == snap.meta.index
    assert node3.counters["snapshot_installed"] == 1
    c.tick(1, 2)
    c.deliver()
    assert node3.commit_index == leader.commit_index
    assert c.applied[3][-1].data == b"after"


def test_a_snapshot_chunk_out_of_order_is_rejected_and_the_snapshot_resent() -> None:
    cfg = RaftConfig(node_id=1, snapshot_chunk_bytes=10)
    c = LockstepCluster([1, 2, 3], config=cfg)
    leader = c.elect(1)
    c.isolate(3)
    for i in range(5):
        c.propose(1, b"v%d" % i)
    c.deliver()
    leader.compact(leader.applied_index, b"T" * 25)
    c.heal()
    dropped: list[int] = []

    def drop_second_chunk_once(m: object) -> bool:
        if getattr(m, "snap_offset", 0) == 10 and not dropped:
            dropped.append(1)
            return True
        return False

    c.drop = drop_second_chunk_once
    c.tick(1, 2)
    c.deliver()
    assert leader.counters["snapshot_rejected"] == 1
    assert leader.prs[3].state == ProgressState.PROBE
    for _ in range(3):
        c.tick(1, 2)
        c.deliver()
    assert c.nodes[3].counters["snapshot_installed"] == 1
    assert c.nodes[3].commit_index == leader.commit_index


def test_a_minority_cannot_commit() -> None:
    c = LockstepCluster([1, 2, 3, 4, 5])
    leader = c.elect(1)
    for n in (3, 4, 5):
        c.isolate(n)
    before = leader.commit_index
    c.propose(1, b"x")
    c.deliver()
    assert leader.commit_index == before + 0
    c.cut = {p for p in c.cut if 3 not in p}
    c.tick(1, 2)
    c.deliver()
    assert leader.commit_index == before + 1
    assert leader.role == Role.LEADER


def test_config_limits_have_units() -> None:
    names = [f for f in RaftConfig.__dataclass_fields__ if f.startswith("max_")]
    assert names and all(
        n.endswith(("_ticks", "_bytes", "_entries", "_appends", "_reads")) for n in names
    )
    _ = replace


def _propose_deferring_fsync(c: LockstepCluster, leader_id: int, data: bytes) -> int:
    """Propose on the leader and hand its Ready out without confirming its own write."""
    leader = c.nodes[leader_id]
    index, _term = leader.propose(data)
    ready = leader.ready()
    assert [e.index for e in ready.entries] == [index]
    c.queue.extend(ready.messages)
    leader.advance(ready, durable=False)
    return index


def test_a_leader_counts_itself_for_an_entry_only_once_its_own_write_is_durable() -> None:
    c = LockstepCluster([1, 2, 3])
    leader = c.elect(1)
    c.isolate(3)
    before = leader.commit_index
    index = _propose_deferring_fsync(c, 1, b"x")
    c.deliver()
    assert c.nodes[2].last_index == index
    assert leader.commit_index == before  # one durable copy of three: not a quorum
    leader.persisted(index)
    assert leader.commit_index == index


def test_followers_alone_commit_while_the_leaders_write_is_in_flight() -> None:
    c = LockstepCluster([1, 2, 3])
    leader = c.elect(1)
    index = _propose_deferring_fsync(c, 1, b"x")
    for follower in (2, 3):  # the appends, and the followers' (durable) replies
        c.nodes[follower].step(c.queue.pop(0))
        c.process(follower)
    assert [m.to for m in c.queue] == [1, 1]
    for reply in c.queue:
        leader.step(reply)  # the leader has not processed a Ready since it proposed
    assert leader.log.durable_last < index
    assert leader.commit_index == index  # nodes 2 and 3 are a quorum without the leader


def test_durable_last_never_covers_entries_that_replaced_it() -> None:
    c = LockstepCluster([1, 2, 3])
    log = c.nodes[2].log
    log.append(entries(2, [1, 1, 1]))
    log.stable_to(4, 1)
    log.durable_to(4)
    assert log.durable_last == 4
    log.append(entries(3, [2]))  # a new leader's entry replaces 3 and 4
    assert log.durable_last == 2 and log.stable_last == 2
    log.durable_to(4)  # a late report of the old write cannot reach past the handed-out log
    assert log.durable_last == 2


def test_a_commit_sends_no_empty_append_followers_learn_it_from_the_next_message() -> None:
    c = LockstepCluster([1, 2, 3])
    leader = c.elect(1)
    index, _ = c.propose(1, b"x")
    c.nodes[2].step(c.queue.pop(0))  # node 2 appends and acknowledges; node 3 waits
    c.process(2)
    ack = c.queue.pop()
    assert ack.type == MessageType.APP_RESP and ack.to == 1
    leader.step(ack)
    c.process(1)
    assert leader.commit_index == index
    assert c.queue == [m for m in c.queue if m.entries]  # no append just for the commit
    c.deliver()
    assert c.nodes[2].commit_index < index  # it has the entry, not yet the commit
    c.tick(1, leader.cfg.heartbeat_interval_ticks)
    c.deliver()
    assert c.nodes[2].commit_index == c.nodes[3].commit_index == index
    index2, _ = c.propose(1, b"y")
    c.deliver()
    assert all(c.nodes[n].commit_index >= index for n in (2, 3))
    assert leader.commit_index == index2
