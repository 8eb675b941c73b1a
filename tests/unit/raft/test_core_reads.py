"""ReadIndex (dissertation §6.4) and lease reads (§6.4.1)."""

import pytest

from cairn.raft.types import MessageType, NotLeader, ReadState
from cairn.sim.lockstep import LockstepCluster


def test_read_index_is_released_after_a_quorum_heartbeat_round() -> None:
    c = LockstepCluster([1, 2, 3])
    leader = c.elect(1)
    c.propose(1, b"x")
    c.deliver()
    leader.read_index(b"r1")
    c.process(1)
    assert c.read_states[1] == [], "not before a quorum confirmed the leadership"
    c.deliver()
    assert c.read_states[1] == [ReadState(leader.commit_index, b"r1")]


def test_an_isolated_leader_never_confirms_a_read() -> None:
    c = LockstepCluster([1, 2, 3])
    leader = c.elect(1)
    c.isolate(1)
    leader.read_index(b"r1")
    c.process(1)
    c.deliver()
    c.tick(1, 5)
    c.deliver()
    assert c.read_states[1] == []


def test_a_new_leader_defers_reads_until_it_commits_in_its_term() -> None:
    c = LockstepCluster([1, 2, 3])
    c.drop = lambda m: m.type.name == "APP_RESP"
    leader = c.elect(1)
    leader.read_index(b"early")
    c.process(1)
    c.deliver()
    assert c.read_states[1] == []
    c.heal()
    c.tick(1, 2)
    c.deliver()
    c.tick(1, 2)
    c.deliver()
    assert [r.ctx for r in c.read_states[1]] == [b"early"]
    assert c.read_states[1][0].index >= 2


def test_lease_reads_need_a_recent_quorum_and_expire() -> None:
    c = LockstepCluster([1, 2, 3])
    leader = c.elect(1)
    c.tick(1, 2)
    c.deliver()  # a heartbeat round acknowledged by a quorum
    assert leader.lease_valid()
    leader.read_index(b"lease", lease=True)
    assert leader.counters["lease_reads"] == 1
    c.process(1)
    assert [r.ctx for r in c.read_states[1]] == [b"lease"]
    c.isolate(1)
    et = c.base_config.election_timeout_ticks
    drift = c.base_config.max_clock_drift_ticks
    c.tick(1, et - drift)
    assert not leader.lease_valid(), "the lease ends before any follower's timer could"
    leader.read_index(b"fallback", lease=True)  # falls back to ReadIndex, stays pending
    c.process(1)
    c.deliver()
    assert [r.ctx for r in c.read_states[1]] == [b"lease"]


def test_no_lease_during_leadership_transfer() -> None:
    c = LockstepCluster([1, 2, 3])
    leader = c.elect(1)
    c.tick(1, 2)
    c.deliver()
    c.cut.add((1, 3))
    leader.transfer_leadership(3)
    assert not leader.lease_valid()


def test_reads_on_a_follower_raise_not_leader_with_the_leader_id() -> None:
    c = LockstepCluster([1, 2, 3])
    c.elect(1)
    with pytest.raises(NotLeader) as info:
        c.nodes[2].read_index(b"r")
    assert info.value.leader_id == 1


def test_a_restarted_voter_ignores_votes_for_one_election_timeout() -> None:
    """A restart forgets the leader; without this quiet period it could vote at once and a
    leader still serving lease reads would be deposed inside its lease."""
    c = LockstepCluster([1, 2, 3])
    c.elect(1)
    node3 = c.nodes[3]
    fresh = c._make(3, c.initial, node3.hard_state(), list(node3.log.entries))
    fresh.tick_count = 0  # really just booted
    c.nodes[3] = fresh
    c.isolate(1)
    c.expire_leases()
    fresh.tick_count = 0
    c.campaign(2)
    assert c.nodes[2].role != c.nodes[1].role
    assert fresh.counters["vote_ignored_in_lease"] >= 1


def test_a_sent_timeout_now_ends_lease_reads_for_the_term() -> None:
    c = LockstepCluster([1, 2, 3])
    leader = c.elect(1)
    c.tick(1, 2)
    c.deliver()
    assert leader.lease_valid()
    leader.transfer_leadership(3)  # 3 is up to date: TimeoutNow goes out at once
    c.process(1)
    assert [m.type for m in c.queue] == [MessageType.TIMEOUT_NOW]
    c.queue.clear()  # the TimeoutNow is "in flight" for a long time
    c.tick(1, c.base_config.election_timeout_ticks)
    assert leader.lead_transferee == 0
    c.tick(1, 2)
    c.deliver()
    assert not leader.lease_valid(), "the delayed TimeoutNow could still depose us"
