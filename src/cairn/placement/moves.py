"""Move plans: how to get from one partition table to the next without losing redundancy.

Theory of operation. For each partition, the owners that the new table adds are paired with
the owners it drops; each pair is a `Move(partition, from_node, to_node)`, which an executor
carries out as *copy to `to_node` (from any live replica), then drop from `from_node`*. An
unpaired add (the partition had fewer than R owners) has `from_node=None`; an unpaired drop
has `to_node=None`. A partition gets max(adds, drops) moves, the least any plan can do
between the two tables (fewer when live drops are left out, below).

Liveness. When the caller says which nodes are live (up or draining), each partition's
adds are ordered live targets first and its drops dead sources first, so the first moves
raise the live count (copy to a live node) or cost nothing (drop a dead replica). A drop
with no add to pair with is left out if its node is live: a draining node with nowhere to
send its data keeps it, rather than the partition losing a live replica.

Ordering. The plan is a sequence of *rounds*: round k holds the k-th move of every
partition that has one, so a round touches each partition at most once and its moves can
run in parallel. Within a round, moves are interleaved by destination node, so an executor
that takes them in order spreads its copies over the cluster instead of filling one node
first.

Safety. An executor copies before it drops, and a copy to a node that is not live cannot
run, so such a move is *held* (its source keeps the replica) until the target is back.
Under those two rules no partition ever has fewer live replicas during the plan than it had
before it started (hence at least R - 1 whenever at most one owner was down); `replay`
runs a plan under exactly these rules and the property tests check it.
"""

from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from cairn.placement.table import PartitionTable


@dataclass(frozen=True, slots=True)
class Move:
    """Copy `partition` to `to_node`, then drop it from `from_node` (either may be None)."""

    partition: int
    from_node: str | None
    to_node: str | None


class StepKind(StrEnum):
    COPY = "copy"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    partition: int
    node: str


@dataclass(frozen=True, slots=True)
class MovePlan:
    """Moves from table `from_epoch` to `to_epoch`, grouped into rounds (see module doc)."""

    from_epoch: int
    to_epoch: int
    rounds: tuple[tuple[Move, ...], ...]

    @property
    def moves(self) -> tuple[Move, ...]:
        return tuple(move for round_ in self.rounds for move in round_)

    def steps(self) -> Iterator[Step]:
        """The moves as single actions in a safe sequential order: copy, then drop."""
        for move in self.moves:
            if move.to_node is not None:
                yield Step(StepKind.COPY, move.partition, move.to_node)
            if move.from_node is not None:
                yield Step(StepKind.DROP, move.partition, move.from_node)


def plan_moves(
    old: PartitionTable, new: PartitionTable, live: Collection[str] | None = None
) -> MovePlan:
    """The moves that turn `old` into `new`, in rounds that are safe to run in parallel.

    `live` names the nodes whose replicas count now (up or draining); None means all.
    """
    if old.partition_count != new.partition_count:
        raise ValueError("tables with different partition counts cannot be diffed")

    def is_live(node: str) -> bool:
        return live is None or node in live

    per_partition: list[list[Move]] = []
    for partition, (before, after) in enumerate(zip(old.owners, new.owners, strict=True)):
        adds = sorted((n for n in after if n not in before), key=lambda n: not is_live(n))
        drops = sorted((n for n in before if n not in after), key=is_live)
        moves = [Move(partition, d, a) for d, a in zip(drops, adds, strict=False)]
        moves += [Move(partition, None, a) for a in adds[len(drops) :]]
        moves += [Move(partition, d, None) for d in drops[len(adds) :] if not is_live(d)]
        per_partition.append(moves)
    depth = max((len(m) for m in per_partition), default=0)
    rounds = tuple(
        _interleave_by_destination([m[k] for m in per_partition if len(m) > k])
        for k in range(depth)
    )
    return MovePlan(old.epoch, new.epoch, rounds)


def _interleave_by_destination(moves: Sequence[Move]) -> tuple[Move, ...]:
    queues: dict[str, list[Move]] = defaultdict(list)
    for move in moves:
        queues[move.to_node or ""].append(move)
    order = sorted(queues)
    out: list[Move] = []
    for k in range(max((len(q) for q in queues.values()), default=0)):
        out.extend(queues[node][k] for node in order if len(queues[node]) > k)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Replay:
    """What running a plan did: final holders, fewest live replicas seen, moves held."""

    holders: list[set[str]]
    floors: list[int]
    held: list[Move]


def replay(old: PartitionTable, plan: MovePlan, live: Collection[str]) -> Replay:
    """Run the plan on `old` the way an executor must (see "Safety" above).

    Moves are taken in plan order; a move whose target is not live is held (nothing
    happens). Raises AssertionError if a step is impossible (copying to a node that already
    holds the partition, dropping one it lacks).
    """
    holders = [set(owners) for owners in old.owners]
    floors = [sum(1 for n in owners if n in live) for owners in old.owners]
    held_moves: list[Move] = []
    for move in plan.moves:
        held = holders[move.partition]
        if move.to_node is not None:
            if move.to_node not in live:
                held_moves.append(move)
                continue
            assert move.to_node not in held, f"{move}: target already holds it"
            held.add(move.to_node)
        if move.from_node is not None:
            assert move.from_node in held, f"{move}: source does not hold it"
            held.discard(move.from_node)
            count = sum(1 for n in held if n in live)
            floors[move.partition] = min(floors[move.partition], count)
    return Replay(holders, floors, held_moves)
