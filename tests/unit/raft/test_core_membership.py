"""Single-server membership changes (dissertation §4.1, §4.2.1) and leadership transfer
(dissertation §3.10)."""

import pytest

from cairn.raft.core import RaftConfig
from cairn.raft.types import (
    ConfChange,
    ConfChangeRejected,
    ConfChangeType,
    MessageType,
    ProposalDropped,
    Role,
)
from cairn.sim.lockstep import LockstepCluster

ADD = ConfChangeType.ADD_LEARNER
PROMOTE = ConfChangeType.PROMOTE_LEARNER
REMOVE = ConfChangeType.REMOVE_NODE


def settle(c: LockstepCluster, leader: int, rounds: int = 4) -> None:
    for _ in range(rounds):
        c.tick(leader, 2)
        c.deliver()


def change(c: LockstepCluster, leader: int, kind: ConfChangeType, node: int) -> None:
    c.nodes[leader].propose_conf_change(ConfChange(kind, node))
    c.process(leader)
    settle(c, leader)


def test_add_learner_catch_up_promote_then_remove_the_leader() -> None:
    c = LockstepCluster([1, 2, 3], spares=(4,))
    leader = c.elect(1)
    for i in range(10):
        c.propose(1, b"v%d" % i)
    change(c, 1, ADD, 4)
    node4 = c.nodes[4]
    assert node4.conf.learners == {4} and node4.conf.voters == {1, 2, 3}
    assert node4.commit_index == leader.commit_index, "the learner caught up"
    assert not node4.is_voter() and node4.role == Role.FOLLOWER
    change(c, 1, PROMOTE, 4)
    assert all(n.conf.voters == {1, 2, 3, 4} for n in c.nodes.values())
    change(c, 1, REMOVE, 1)
    assert leader.role == Role.FOLLOWER, "a removed leader steps down once the change commits"
    assert leader.counters["leader_removed_step_down"] == 1
    c.expire_leases()
    c.campaign(2)
    assert c.nodes[2].role == Role.LEADER
    assert c.nodes[2].conf.voters == {2, 3, 4}
    c.propose(2, b"after")
    settle(c, 2)
    assert c.applied[4][-1].data == b"after"


def test_a_learner_does_not_vote_or_count_for_commit() -> None:
    c = LockstepCluster([1, 2, 3], spares=(4,))
    leader = c.elect(1)
    change(c, 1, ADD, 4)
    c.isolate(2)
    c.isolate(3)
    before = leader.commit_index
    c.propose(1, b"x")
    settle(c, 1, 1)
    assert c.nodes[4].last_index == leader.last_index
    assert leader.commit_index == before, "leader + learner is not a quorum of {1,2,3}"


def test_a_new_leader_must_commit_in_its_term_before_a_change() -> None:
    """The fix from Ongaro's 2015 raft-dev note on single-server changes."""
    c = LockstepCluster([1, 2, 3], spares=(4,))
    c.drop = lambda m: m.type == MessageType.APP_RESP  # its no-op never commits
    leader = c.elect(2)
    assert leader.log.term(leader.commit_index) != leader.term
    with pytest.raises(ConfChangeRejected, match="committed an entry of its term"):
        leader.propose_conf_change(ConfChange(ADD, 4))


def test_only_one_change_at_a_time_and_promotion_needs_a_caught_up_learner() -> None:
    cfg = RaftConfig(node_id=1, learner_catchup_lag_entries=2)
    c = LockstepCluster([1, 2, 3], spares=(4,), config=cfg)
    leader = c.elect(1)
    c.isolate(4)
    leader.propose_conf_change(ConfChange(ADD, 4))
    with pytest.raises(ConfChangeRejected, match="not yet committed"):
        leader.propose_conf_change(ConfChange(REMOVE, 3))
    c.process(1)
    settle(c, 1)
    for i in range(5):
        c.propose(1, b"v%d" % i)
    settle(c, 1)
    with pytest.raises(ConfChangeRejected, match="behind"):
        leader.propose_conf_change(ConfChange(PROMOTE, 4))
    with pytest.raises(ConfChangeRejected, match="already a member"):
        leader.propose_conf_change(ConfChange(ADD, 2))
    with pytest.raises(ConfChangeRejected, match="not a learner"):
        leader.propose_conf_change(ConfChange(PROMOTE, 2))


def test_a_removed_node_does_not_disrupt_the_cluster() -> None:
    c = LockstepCluster([1, 2, 3])
    leader = c.elect(1)
    change(c, 1, REMOVE, 3)
    term = leader.term
    c.isolate(3)
    for _ in range(5):
        c.tick(3, 30)
    c.heal()
    settle(c, 1)
    assert not c.nodes[3].is_voter(), "3 learned it was removed, so it never campaigns"
    assert c.nodes[3].counters["campaign_pre_vote"] == 0
    assert leader.role == Role.LEADER and leader.term == term


def test_uncommitted_change_is_undone_when_its_entry_is_truncated() -> None:
    c = LockstepCluster([1, 2, 3], spares=(4,))
    leader = c.elect(1)
    c.isolate(1)
    leader.propose_conf_change(ConfChange(ADD, 4))
    c.process(1)
    assert leader.conf.learners == {4}, "a change takes effect when appended"
    c.deliver()
    c.tick(1, 30)  # check-quorum: the cut-off leader steps down
    c.expire_leases()
    c.campaign(2)
    c.heal()
    settle(c, 2)
    assert c.nodes[1].conf.learners == frozenset()
    assert c.nodes[1].log.term(c.nodes[1].last_index) == c.nodes[2].term


def test_leadership_transfer_with_timeout_now() -> None:
    c = LockstepCluster([1, 2, 3])
    leader = c.elect(1)
    c.isolate(3)
    c.propose(1, b"x")
    c.deliver()
    c.heal()
    leader.transfer_leadership(3)  # 3 is behind: caught up first, then TimeoutNow
    with pytest.raises(ProposalDropped, match="transfer"):
        leader.propose(b"refused during transfer")
    c.process(1)
    c.deliver()
    assert c.nodes[3].role == Role.LEADER
    assert c.nodes[3].term == leader.term and leader.role == Role.FOLLOWER
    assert any(m.type == MessageType.TIMEOUT_NOW for m in c.delivered)


def test_a_transfer_to_an_unreachable_node_is_aborted() -> None:
    c = LockstepCluster([1, 2, 3])
    leader = c.elect(1)
    c.cut.update({(1, 3)})
    leader.transfer_leadership(3)
    c.process(1)
    c.deliver()
    settle(c, 1, 6)
    assert leader.role == Role.LEADER and leader.lead_transferee == 0
    assert leader.counters["transfer_aborted"] == 1
    c.propose(1, b"accepted again")
