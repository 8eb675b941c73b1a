"""Adding a node moves close to the least possible; removing one moves only its partitions."""

from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.placement import Node, build_table, ideal_moved_fraction, moved_fraction

from .strategies import node_lists


def _weights(nodes: list[Node]) -> dict[str, float]:
    return {n.id: n.weight for n in nodes}


@given(st.integers(3, 10), st.integers(2, 3))
@settings(max_examples=8, deadline=None)
def test_adding_a_node_moves_at_most_ten_percent_over_the_ideal(count: int, replicas: int) -> None:
    nodes = [Node(f"n{i}") for i in range(count)]
    joined = [*nodes, Node("newcomer")]
    before = build_table(nodes, 4096, replicas)
    after = build_table(joined, 4096, replicas)
    moved = moved_fraction(before.owners, after.owners)
    assert moved <= 1.1 * ideal_moved_fraction(_weights(nodes), _weights(joined))
    for old, new in zip(before.owners, after.owners, strict=True):
        assert set(new) - set(old) <= {"newcomer"}  # every move goes to the new node


@given(
    node_lists(min_size=2, max_size=10, domains=False),
    st.integers(1, 3),
    st.booleans(),
    st.data(),
)
@settings(max_examples=40)
def test_removing_a_node_moves_only_the_partitions_it_held(
    nodes: list[Node], replicas: int, equal_weights: bool, data: st.DataObject
) -> None:
    # Weight compensation (on by default) is the identity for equal weights; with mixed
    # weights it is turned off here, because it deliberately trades a little collateral
    # movement for balance (docs/design/placement.md).
    if equal_weights:
        nodes = [Node(n.id, 1.0) for n in nodes]
    leaving = data.draw(st.sampled_from(nodes))
    rest = [n for n in nodes if n is not leaving]
    before = build_table(nodes, 128, replicas, compensate=equal_weights)
    after = build_table(rest, 128, replicas, compensate=equal_weights)
    for old, new in zip(before.owners, after.owners, strict=True):
        if leaving.id in old:
            assert set(old) - {leaving.id} <= set(new)
        else:
            assert old == new


@given(node_lists(min_size=4, max_size=12), st.data())
@settings(max_examples=40)
def test_with_domains_a_leaving_node_disturbs_no_partition_it_did_not_hold(
    nodes: list[Node], data: st.DataObject
) -> None:
    leaving = data.draw(st.sampled_from(nodes))
    rest = [n for n in nodes if n is not leaving]
    replicas = 3
    # Only when every domain level keeps the same answer to "are there R domains here?".
    for level in range(3):
        had = len({n.domains[level] for n in nodes}) >= replicas
        has = len({n.domains[level] for n in rest}) >= replicas
        if had != has:
            return
    before = build_table(nodes, 128, replicas, compensate=False)
    after = build_table(rest, 128, replicas, compensate=False)
    for old, new in zip(before.owners, after.owners, strict=True):
        if leaving.id not in old:
            assert old == new


@given(st.lists(st.integers(1, 3), min_size=6, max_size=12), st.data())
@settings(max_examples=8, deadline=None)
def test_with_compensated_weights_a_leaving_node_moves_little_more_than_the_ideal(
    weights: list[int], data: st.DataObject
) -> None:
    nodes = [Node(f"n{i}", float(w)) for i, w in enumerate(weights)]
    leaving = data.draw(st.sampled_from(nodes))
    rest = [n for n in nodes if n is not leaving]
    before = build_table(nodes, 4096, 3)
    after = build_table(rest, 4096, 3)
    moved = moved_fraction(before.owners, after.owners)
    # 150 random cases measured at most 1.21x (capped heavy nodes on 6 nodes are the worst).
    assert moved <= 1.4 * ideal_moved_fraction(_weights(nodes), _weights(rest))
