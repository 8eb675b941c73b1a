"""Balance and movement figures on hand-made placements, and the public names."""

import math

import pytest

import cairn.placement
from cairn.placement import balance, ideal_moved_fraction, moved_fraction


def test_a_perfect_placement_has_no_deviation() -> None:
    figures = balance([("a",), ("b",), ("b",), ("a",)], {"a": 1.0, "b": 1.0})
    assert figures.max_deviation == 0.0
    assert figures.cv == 0.0


def test_weights_set_the_targets() -> None:
    figures = balance([("a",), ("b",), ("b",), ("b",)], {"a": 1.0, "b": 1.0})
    assert figures.ratios == {"a": 0.5, "b": 1.5}
    assert figures.max_deviation == 0.5
    assert math.isclose(figures.cv, 0.5)


def test_moved_fraction_counts_new_slots() -> None:
    assert moved_fraction([("a", "b"), ("a", "c")], [("a", "b"), ("a", "d")]) == 0.25
    with pytest.raises(ValueError):
        moved_fraction([("a",)], [])


def test_ideal_movement_for_joins_and_leaves() -> None:
    three = {"a": 1.0, "b": 1.0, "c": 2.0}
    assert math.isclose(ideal_moved_fraction(three, {**three, "d": 4.0}), 0.5)
    assert math.isclose(ideal_moved_fraction(three, {"a": 1.0, "b": 1.0}), 0.5)
    assert ideal_moved_fraction(three, three) == 0.0


def test_public_names_are_pinned() -> None:
    assert set(cairn.placement.__all__) == {
        "Balance",
        "Move",
        "MovePlan",
        "Node",
        "NodeState",
        "PartitionTable",
        "RangeMap",
        "Replay",
        "Step",
        "StepKind",
        "balance",
        "build_table",
        "compensated_weights",
        "encode_object_key",
        "hash_unit",
        "ideal_moved_fraction",
        "moved_fraction",
        "partition_of",
        "plan_moves",
        "replay",
        "score",
        "slot_counts",
    }
    for name in cairn.placement.__all__:
        assert hasattr(cairn.placement, name)
