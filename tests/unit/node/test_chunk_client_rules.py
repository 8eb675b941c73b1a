"""Pure rules of the replicated chunk client: acks per level, where hints go."""

import pytest

from cairn.node.chunk_client import hint_candidates, required_acks
from cairn.node.placement_view import PlacementView
from cairn.placement import Node, build_table


@pytest.mark.parametrize(
    ("level", "owners", "expected"),
    [
        ("one", 3, 1),
        ("quorum", 3, 2),
        ("all", 3, 3),
        ("quorum", 2, 2),
        ("quorum", 5, 3),
        ("quorum", 1, 1),
        ("all", 0, 1),
    ],
)
def test_required_acks(level: str, owners: int, expected: int) -> None:
    assert required_acks(level, owners) == expected  # type: ignore[arg-type]


def test_required_acks_refuses_unknown_level() -> None:
    with pytest.raises(ValueError, match="level"):
        required_acks("most", 3)  # type: ignore[arg-type]


def test_hints_prefer_live_non_owners() -> None:
    members = [f"m{i}" for i in range(5)]
    table = build_table([Node(m) for m in members], 16, 3)
    chunk_id = bytes(32)
    owners = table.owners_of_chunk(chunk_id)
    down = owners[0]
    non_owner_down = next(m for m in members if m not in owners)
    view = PlacementView(
        epoch=1,
        table=table,
        previous=None,
        addresses={m: f"127.0.0.1:{1000 + i}" for i, m in enumerate(members)},
        live=frozenset(members) - {down, non_owner_down},
    )
    candidates = hint_candidates(view, down, chunk_id)
    live_non_owners = [m for m in members if m not in owners and m != non_owner_down]
    assert set(candidates[: len(live_non_owners)]) == set(live_non_owners)
    assert set(candidates[len(live_non_owners) :]) == set(owners[1:])
    assert down not in candidates
