"""Leader election (Raft paper §5.2), pre-vote and check-quorum (dissertation §9.6)."""

import pytest

from cairn.raft.core import _ROLE_TRANSITIONS, RaftConfig
from cairn.raft.types import MessageType, Role
from cairn.sim.lockstep import LockstepCluster


def test_a_timed_out_follower_is_elected_and_others_follow() -> None:
    c = LockstepCluster([1, 2, 3])
    leader = c.elect(1)
    assert leader.term == 2  # bootstrap snapshot is term 1
    for node_id in (2, 3):
        assert c.nodes[node_id].role == Role.FOLLOWER
        assert c.nodes[node_id].leader_id == 1
        assert c.nodes[node_id].term == 2
    # §5.4.2: the new leader's no-op commits; followers learn it with the next heartbeat.
    assert leader.commit_index == 2
    c.tick(1, c.base_config.heartbeat_interval_ticks)
    c.deliver()
    assert all(n.commit_index == 2 for n in c.nodes.values())


def test_single_node_elects_itself() -> None:
    c = LockstepCluster([1])
    leader = c.elect(1)
    index, _ = c.propose(1, b"x")
    assert leader.commit_index == index


def test_randomized_timeouts_are_in_range_and_seeded() -> None:
    a = LockstepCluster([1, 2, 3], seed=7)
    b = LockstepCluster([1, 2, 3], seed=7)
    et = a.base_config.election_timeout_ticks
    timeouts = [n.randomized_election_timeout for n in a.nodes.values()]
    assert all(et <= t < 2 * et for t in timeouts)
    assert timeouts == [n.randomized_election_timeout for n in b.nodes.values()]


def test_votes_go_only_to_up_to_date_candidates() -> None:
    """§5.4.1: a voter denies its vote to a candidate whose log is behind its own."""
    c = LockstepCluster([1, 2, 3])
    c.elect(1)
    c.isolate(3)
    c.propose(1, b"a")
    c.deliver()
    c.heal()
    c.isolate(1)  # the leader goes away; 3 is behind, 2 is not
    c.campaign(3)
    assert c.nodes[3].role != Role.LEADER
    c.campaign(2)
    assert c.nodes[2].role == Role.LEADER


def test_pre_vote_stops_a_partitioned_node_from_disrupting_the_leader() -> None:
    """Dissertation §9.6: a rejoining node cannot force a term change."""
    c = LockstepCluster([1, 2, 3])
    leader = c.elect(1)
    term = leader.term
    c.isolate(3)
    for _ in range(10):
        c.campaign(3)
    assert c.nodes[3].term == term, "pre-vote never bumps the term"
    assert c.nodes[3].role == Role.PRE_CANDIDATE
    c.heal()
    c.campaign(3)
    c.tick(1, 2)
    c.deliver()
    assert leader.role == Role.LEADER and leader.term == term
    assert c.nodes[3].leader_id == 1


def test_without_pre_vote_a_partitioned_node_does_disrupt() -> None:
    """The contrast case: with pre-vote and check-quorum off the rejoining node wins a term."""
    cfg = RaftConfig(node_id=1, pre_vote=False, check_quorum=False)
    c = LockstepCluster([1, 2, 3], config=cfg)
    leader = c.elect(1)
    term = leader.term
    c.isolate(3)
    for _ in range(3):
        c.campaign(3)
    assert c.nodes[3].term > term
    c.heal()
    c.tick(1, 2)
    c.deliver()
    assert leader.term > term  # the leader was forced out of its term


def test_check_quorum_steps_a_cut_off_leader_down() -> None:
    c = LockstepCluster([1, 2, 3])
    leader = c.elect(1)
    c.isolate(1)
    c.tick(1, 2 * c.base_config.election_timeout_ticks)
    assert leader.role == Role.FOLLOWER
    assert leader.counters["check_quorum_step_down"] == 1


def test_followers_in_lease_ignore_vote_requests() -> None:
    c = LockstepCluster([1, 2, 3])
    c.elect(1)
    c.cut.update({(1, 3), (3, 1)})  # 3 stops hearing the leader; 2 still does
    c.campaign(3)
    assert c.nodes[2].counters["vote_ignored_in_lease"] >= 1
    assert c.nodes[1].role == Role.LEADER


@pytest.mark.parametrize("role", list(Role))
def test_role_transition_table_is_enforced(role: Role) -> None:
    c = LockstepCluster([1, 2, 3])
    node = c.nodes[1]
    for target in Role:
        node.role = role
        if target in _ROLE_TRANSITIONS[role]:
            node._set_role(target)
            assert node.role == target
        else:
            with pytest.raises(AssertionError):
                node._set_role(target)


def test_vote_responses_are_sent_only_after_the_vote_is_in_hard_state() -> None:
    """The Ready contract: a vote response travels with the hard state that records it."""
    c = LockstepCluster([1, 2, 3])
    node2 = c.nodes[2]
    c.process_all()
    c.tick(1, c.nodes[1].randomized_election_timeout)
    c.deliver()  # pre-vote round; vote requests are now queued
    for message in [m for m in c.queue if m.type == MessageType.VOTE and m.to == 2]:
        c.queue.remove(message)
        node2.step(message)
        ready = node2.ready()
        assert any(m.type == MessageType.VOTE_RESP for m in ready.messages)
        assert ready.hard_state is not None and ready.hard_state.vote == 1
        node2.advance(ready)


def test_campaign_elects_a_new_group_without_waiting_for_the_timer() -> None:
    c = LockstepCluster([1, 2, 3])
    c.nodes[2].campaign()
    c.process(2)
    c.deliver()
    assert c.nodes[2].role == Role.LEADER and c.nodes[2].term == 2
    assert all(n.election_elapsed < n.randomized_election_timeout for n in c.nodes.values())
    c.nodes[3].campaign()  # a leader is known: nothing happens
    c.process(3)
    assert c.nodes[3].role == Role.FOLLOWER and c.queue == []
    c.nodes[2].campaign()
    assert c.nodes[2].role == Role.LEADER and c.nodes[2].term == 2
