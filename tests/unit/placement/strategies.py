"""Hypothesis strategies shared by the placement tests: node lists with failure domains."""

from hypothesis import strategies as st

from cairn.placement import Node


@st.composite
def node_lists(
    draw: st.DrawFn,
    min_size: int = 1,
    max_size: int = 12,
    domains: bool = True,
    weights: bool = True,
) -> list[Node]:
    count = draw(st.integers(min_size, max_size))
    nodes = []
    for i in range(count):
        nodes.append(
            Node(
                id=f"node-{i}",
                weight=float(draw(st.integers(1, 4))) if weights else 1.0,
                zone=draw(st.sampled_from("abc")) if domains else "",
                rack=draw(st.sampled_from("xy")) if domains else "",
                host=draw(st.sampled_from("pqrs")) if domains else f"h{i}",
            )
        )
    return nodes
