"""Balance and movement figures for any placement, ours or another algorithm's.

Theory of operation. A placement is given as *assignments*: for each item (a partition),
the nodes that hold it. A node's *share* is the fraction of all replica slots it holds; its
*target* is its fraction of the total weight. `balance` reports the ratio share / target
for every node: 1.0 is perfect; `max_deviation` is the worst |ratio - 1| and `cv` the
coefficient of variation (population standard deviation / mean) of the ratios.

Movement is counted in replica slots: `moved_fraction(old, new)` is the fraction of the new
table's slots whose node did not hold that item before (for one replica it is the fraction
of items that changed owner). The least any algorithm can move is the total variation
distance between the old and new weight targets, `ideal_moved_fraction`: w / (W + w) when a
node of weight w joins total W, w / W when it leaves. With R > 1 replicas and very uneven
weights the targets can be unreachable (a node cannot hold a partition twice), which these
figures then show as imbalance.
"""

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Balance:
    """How closely each node's share of slots follows its share of weight."""

    max_deviation: float
    cv: float
    ratios: Mapping[str, float]


def slot_counts(assignments: Sequence[Sequence[str]]) -> Counter[str]:
    """How many replica slots each node holds."""
    counts: Counter[str] = Counter()
    for owners in assignments:
        counts.update(owners)
    return counts


def balance(assignments: Sequence[Sequence[str]], weights: Mapping[str, float]) -> Balance:
    """Share of slots against share of weight for every node in `weights`."""
    counts = slot_counts(assignments)
    total_slots = sum(counts.values())
    total_weight = sum(weights.values())
    if total_slots == 0 or total_weight <= 0:
        raise ValueError("balance needs at least one slot and a positive total weight")
    stray = set(counts) - set(weights)
    assert not stray, f"assignments name nodes without a weight: {sorted(stray)[:5]}"
    ratios = {
        node: (counts[node] / total_slots) / (weight / total_weight)
        for node, weight in weights.items()
        if weight > 0
    }
    values = list(ratios.values())
    mean = sum(values) / len(values)
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return Balance(max_deviation=max(abs(v - 1.0) for v in values), cv=spread / mean, ratios=ratios)


def moved_fraction(old: Sequence[Sequence[str]], new: Sequence[Sequence[str]]) -> float:
    """Fraction of the new slots whose node did not hold the same item before."""
    if len(old) != len(new):
        raise ValueError("assignments cover different item counts")
    moved = total = 0
    for before, after in zip(old, new, strict=True):
        total += len(after)
        moved += sum(1 for node in after if node not in before)
    return moved / total if total else 0.0


def ideal_moved_fraction(before: Mapping[str, float], after: Mapping[str, float]) -> float:
    """The least fraction of slots that must move when the weights change like this."""
    old_total = sum(before.values())
    new_total = sum(after.values())
    if old_total <= 0 or new_total <= 0:
        raise ValueError("weights must have a positive total")
    nodes = set(before) | set(after)
    return 0.5 * sum(
        abs(after.get(n, 0.0) / new_total - before.get(n, 0.0) / old_total) for n in nodes
    )
