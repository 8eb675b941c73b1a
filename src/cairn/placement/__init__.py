"""Where data lives: partitions, weighted rendezvous hashing, move plans, range maps. Pure.

`build_table` places P partitions on R nodes each (weighted rendezvous hashing with
failure-domain spread); `plan_moves` diffs two tables into a safe, ordered plan;
`RangeMap` splits the metadata key space into shards; `balance` and `moved_fraction`
measure any placement. No IO, no clock, no randomness: only `cairn.base` and the stdlib.
"""

from cairn.placement.compensation import compensated_weights
from cairn.placement.figures import (
    Balance,
    balance,
    ideal_moved_fraction,
    moved_fraction,
    slot_counts,
)
from cairn.placement.moves import Move, MovePlan, Replay, Step, StepKind, plan_moves, replay
from cairn.placement.nodes import Node, NodeState
from cairn.placement.rangemap import RangeMap, encode_object_key
from cairn.placement.rendezvous import hash_unit, score
from cairn.placement.table import PartitionTable, build_table, partition_of

__all__ = [
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
]
