"""Bad input: typed errors at the API, and messages that are dropped and counted, never a crash."""

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cairn.raft
from cairn.raft.core import RaftConfig
from cairn.raft.types import (
    Entry,
    Message,
    MessageType,
    NotLeader,
    ProposalDropped,
    ProposalTooLarge,
    Role,
    SnapshotMeta,
)
from cairn.sim.lockstep import LockstepCluster


def test_oversized_proposal_is_a_typed_error() -> None:
    c = LockstepCluster([1, 2, 3], config=RaftConfig(node_id=1, max_proposal_bytes=100))
    leader = c.elect(1)
    with pytest.raises(ProposalTooLarge) as info:
        leader.propose(b"x" * 101)
    assert (info.value.size_bytes, info.value.max_bytes) == (101, 100)
    assert leader.counters["proposal_too_large"] == 1
    leader.propose(b"x" * 100)


def test_proposal_to_a_follower_names_the_leader() -> None:
    c = LockstepCluster([1, 2, 3])
    c.elect(1)
    with pytest.raises(NotLeader) as info:
        c.nodes[3].propose(b"x")
    assert info.value.leader_id == 1
    with pytest.raises(NotLeader) as unknown:
        LockstepCluster([1, 2, 3]).nodes[2].propose(b"x")
    assert unknown.value.leader_id == 0


def test_empty_proposals_are_refused() -> None:
    c = LockstepCluster([1])
    with pytest.raises(ProposalDropped):
        c.elect(1).propose(b"")


def test_too_many_uncommitted_entries_are_refused() -> None:
    c = LockstepCluster([1, 2, 3], config=RaftConfig(node_id=1, max_uncommitted_entries=3))
    leader = c.elect(1)
    c.isolate(1)
    for _ in range(3):
        leader.propose(b"x")
    with pytest.raises(ProposalDropped, match="uncommitted"):
        leader.propose(b"x")


def message(**kw: object) -> Message:
    base: dict[str, object] = {
        "type": MessageType.HEARTBEAT,
        "to": 2,
        "frm": 1,
        "term": 2,
        "group_id": 1,
    }
    base.update(kw)
    return Message(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "counter"),
    [
        (message(group_id=99), "dropped_unknown_group"),
        (message(to=3), "dropped_wrong_recipient"),
        (message(frm=2), "dropped_malformed"),
        (message(term=-1), "dropped_malformed"),
        (message(type=MessageType.SNAP, snapshot=None), "dropped_malformed"),
        (
            message(type=MessageType.APP, index=2, entries=(Entry(2, 5),)),
            "dropped_malformed",
        ),
        (
            message(type=MessageType.APP, index=2, entries=(Entry(7, 3),)),
            "dropped_malformed",
        ),
    ],
)
def test_bad_messages_are_dropped_and_counted(bad: Message, counter: str) -> None:
    c = LockstepCluster([1, 2, 3])
    c.elect(1)
    node = c.nodes[2]
    term = node.term
    node.step(bad)
    assert node.counters[counter] == 1
    assert node.term == term


def test_responses_from_unknown_nodes_are_dropped_and_counted() -> None:
    c = LockstepCluster([1, 2, 3])
    leader = c.elect(1)
    for kind in (MessageType.APP_RESP, MessageType.HEARTBEAT_RESP, MessageType.SNAP_RESP):
        leader.step(message(type=kind, to=1, frm=9, term=leader.term))
    assert leader.counters["dropped_unknown_node"] == 3
    assert leader.role == Role.LEADER


def test_votes_are_granted_whatever_the_voters_configuration() -> None:
    """Dissertation §4.1: a voter whose configuration lags must still vote, or a cluster can
    be left with no electable node (the simulator found such a seed)."""
    c = LockstepCluster([1, 2, 3])
    c.process_all()
    voter = c.nodes[2]
    voter.step(message(type=MessageType.VOTE, to=2, frm=9, term=5, index=9, log_term=4))
    ready = voter.ready()
    assert [(m.type, m.to, m.reject) for m in ready.messages] == [(MessageType.VOTE_RESP, 9, False)]
    voter.advance(ready)


def test_stale_term_messages_are_dropped_counted_and_answered() -> None:
    c = LockstepCluster([1, 2, 3])
    c.elect(1)
    c.expire_leases()
    c.campaign(2)
    node = c.nodes[2]
    assert node.role == Role.LEADER
    node.step(message(to=2, frm=3, term=1, type=MessageType.APP))
    assert node.counters["dropped_stale_term"] >= 1
    ready = node.ready()
    assert any(m.type == MessageType.APP_RESP and m.to == 3 for m in ready.messages)
    node.advance(ready)


_types = st.sampled_from(list(MessageType))
_entries = st.lists(
    st.builds(Entry, st.integers(-1, 6), st.integers(-1, 12), data=st.binary(max_size=4)),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.builds(
            Message,
            type=_types,
            to=st.integers(1, 3),
            frm=st.integers(0, 5),
            term=st.integers(-1, 6),
            group_id=st.integers(0, 2),
            log_term=st.integers(-1, 6),
            index=st.integers(-1, 12),
            entries=_entries.map(tuple),
            commit=st.integers(-1, 12),
            reject=st.booleans(),
            reject_hint=st.integers(-1, 12),
            snapshot=st.none() | st.builds(SnapshotMeta, st.integers(0, 12), st.integers(0, 6)),
            snap_offset=st.integers(-1, 20),
            snap_data=st.binary(max_size=8),
            snap_done=st.booleans(),
            heartbeat_seq=st.integers(-1, 5),
            transfer=st.booleans(),
        ),
        max_size=25,
    )
)
def test_arbitrary_messages_never_crash_the_core(messages: list[Message]) -> None:
    c = LockstepCluster([1, 2, 3])
    c.elect(1)
    for m in messages:
        node = c.nodes[m.to]
        node.step(replace(m, to=node.id))
        c.process(node.id)
        node.tick()
        c.process(node.id)


def test_public_names_are_pinned() -> None:
    assert sorted(cairn.raft.__all__) == [
        "ConfChange",
        "ConfChangeRejected",
        "ConfChangeType",
        "ConfState",
        "Entry",
        "EntryType",
        "HardState",
        "Message",
        "MessageType",
        "NotLeader",
        "ProposalDropped",
        "ProposalOutcomeUnknown",
        "ProposalTooLarge",
        "RaftConfig",
        "RaftError",
        "RaftNode",
        "ReadState",
        "Ready",
        "Role",
        "Snapshot",
        "SnapshotMeta",
        "bootstrap_snapshot",
    ]
