"""Move plans: minimal, one move per partition per round, copy before drop, >= R-1 live."""

from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.placement import Node, NodeState, build_table, plan_moves, replay

from .strategies import node_lists

_STATES = st.sampled_from([NodeState.UP, NodeState.UP, NodeState.DOWN, NodeState.OUT])


@given(
    node_lists(min_size=1, max_size=10),
    st.integers(1, 3),
    st.lists(_STATES, min_size=10, max_size=10),
    st.integers(0, 3),
)
@settings(max_examples=60)
def test_plans_are_minimal_and_never_drop_below_r_minus_one_live_replicas(
    nodes: list[Node], replicas: int, states: list[NodeState], joining: int
) -> None:
    old = build_table(nodes, 64, replicas, epoch=7)
    changed = [
        Node(n.id, n.weight, n.zone, n.rack, n.host, state)
        for n, state in zip(nodes, states, strict=False)
    ]
    changed += [Node(f"new-{i}", 2.0, zone="c", rack="z", host=f"new{i}") for i in range(joining)]
    new = build_table(changed, 64, replicas, epoch=8)
    live = {n.id for n in changed if n.serves_data}
    plan = plan_moves(old, new, live)
    assert (plan.from_epoch, plan.to_epoch) == (7, 8)

    least = sum(
        max(len(set(b) - set(a)), len({d for d in set(a) - set(b) if d not in live}))
        for a, b in zip(old.owners, new.owners, strict=True)
    )
    assert len(plan.moves) == least  # one move per add, plus leftover drops of dead replicas
    for round_ in plan.rounds:
        partitions = [m.partition for m in round_]
        assert len(partitions) == len(set(partitions))

    start = [sum(1 for o in owners if o in live) for owners in old.owners]
    result = replay(old, plan, live)
    for partition, floor in enumerate(result.floors):
        assert floor >= start[partition] >= 0, partition  # never below where it started
        assert floor >= min(replicas - 1, start[partition])
    for partition, holders in enumerate(result.holders):
        target_live = {n for n in new.owners[partition] if n in live}
        assert target_live <= holders  # every live new owner got its copy


def test_a_plan_ends_at_the_new_table() -> None:
    nodes = [Node(f"n{i}", zone=f"z{i % 3}") for i in range(6)]
    old = build_table(nodes, 128, 3)
    new = build_table([*nodes[1:], Node("n9", zone="z0")], 128, 3, epoch=2)
    plan = plan_moves(old, new)
    holders = [set(owners) for owners in old.owners]
    for step in plan.steps():
        if step.kind == "copy":
            holders[step.partition].add(step.node)
        else:
            holders[step.partition].discard(step.node)
    assert holders == [set(owners) for owners in new.owners]
    everyone = {f"n{i}" for i in range(1, 6)} | {"n9"}
    assert replay(old, plan, everyone).holders == holders
    assert all(m.from_node is not None and m.to_node is not None for m in plan.moves)
    assert len(plan.rounds) == 1


def test_identical_tables_need_no_moves() -> None:
    table = build_table([Node("a"), Node("b")], 16, 2)
    assert plan_moves(table, table).moves == ()


def test_a_move_to_a_down_node_is_held_and_its_source_keeps_the_data() -> None:
    nodes = [Node("a"), Node("b"), Node("c")]
    old = build_table(nodes, 16, 2)
    changed = [Node("a", state=NodeState.DRAINING), Node("b"), Node("c", state=NodeState.DOWN)]
    new = build_table(changed, 16, 2)
    live = {"a", "b"}
    plan = plan_moves(old, new, live)
    result = replay(old, plan, live)
    assert result.held == [m for m in plan.moves if m.to_node == "c"] != []
    for partition, holders in enumerate(result.holders):
        if "c" in new.owners[partition] and "c" not in old.owners[partition]:
            assert "a" in holders  # the draining node still has it: its move is held
