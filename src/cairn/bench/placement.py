"""`cairn bench placement`: our placement against the textbook alternatives.

For each node count N, with equal and with unequal weights (1, 2, 3, 4, 1, 2, ...), every
algorithm places the same P items (the partitions, keyed by their number) on N nodes with
one replica, and we measure:

- balance: each node's share of items against its share of weight (`placement.balance`:
  max deviation and coefficient of variation, 0 is perfect);
- movement when a node joins (N -> N + 1) and when the node in the middle of the list
  leaves (N -> N - 1), as a ratio to the least possible (`ideal_moved_fraction`);
- `leave_collateral`: of the slots that moved when a node left, the fraction that were in
  items the leaving node did not hold (0 for a consistent algorithm).

Algorithms: `rendezvous` (ours, `cairn.placement.build_table`), `ring` (consistent hashing
with `vnodes_per_weight` virtual nodes per unit of weight, BLAKE2b points, bisection),
`jump` (Lamping and Veach's jump consistent hash; weights by giving a node `weight`
buckets; it can only remove the *last* bucket cheaply, so removing a node from the middle
renumbers the ones after it, which the figures show) and `modulo` (md5(key) % buckets,
weights the same way). Three more row families run ours with R = 3: `rendezvous-R3`
(no failure domains, weights compensated for picking 3 distinct nodes, see
`placement.compensation`), `rendezvous-R3-uncompensated` (the same with raw weights) and
`rendezvous-R3-zones` (nodes on 3 zones x 2 racks, one replica per zone).
"""

import hashlib
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cairn.placement import (
    Node,
    balance,
    build_table,
    ideal_moved_fraction,
    moved_fraction,
)

JsonDict = dict[str, Any]  # JSON-shaped results for `emit_json`
Assignments = list[tuple[str, ...]]
Placer = Callable[[Sequence[Node], int], Assignments]

DEFAULT_NODE_COUNTS = (3, 5, 8, 10, 16, 20, 32, 50, 100)
DEFAULT_PARTITIONS = 4096
VNODES_PER_WEIGHT = 100
NODE_COUNT_MAX = 1000
ALGORITHMS = (
    "rendezvous",
    "ring",
    "jump",
    "modulo",
    "rendezvous-R3",
    "rendezvous-R3-uncompensated",
    "rendezvous-R3-zones",
)
REPLICAS = {"rendezvous-R3": 3, "rendezvous-R3-uncompensated": 3, "rendezvous-R3-zones": 3}
"""Replicas per item where not 1; N - 1 must still be at least this for the leave case."""


def _h64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _item_key(item: int) -> bytes:
    return item.to_bytes(8, "big")


def place_rendezvous(nodes: Sequence[Node], items: int) -> Assignments:
    return list(build_table(nodes, items, 1).owners)


def _flat(nodes: Sequence[Node]) -> list[Node]:
    return [replace(n, zone="", rack="", host="") for n in nodes]


def place_rendezvous_r3(nodes: Sequence[Node], items: int) -> Assignments:
    return list(build_table(_flat(nodes), items, 3).owners)


def place_rendezvous_r3_raw(nodes: Sequence[Node], items: int) -> Assignments:
    return list(build_table(_flat(nodes), items, 3, compensate=False).owners)


def place_rendezvous_r3_zones(nodes: Sequence[Node], items: int) -> Assignments:
    return list(build_table(nodes, items, 3).owners)


def place_ring(nodes: Sequence[Node], items: int) -> Assignments:
    points: list[tuple[int, str]] = []
    for node in nodes:
        for v in range(round(VNODES_PER_WEIGHT * node.weight)):
            points.append((_h64(f"{node.id}#{v}".encode()), node.id))
    points.sort()
    hashes = [p for p, _ in points]
    out: Assignments = []
    for item in range(items):
        i = bisect_right(hashes, _h64(_item_key(item))) % len(points)
        out.append((points[i][1],))
    return out


def jump_hash(key: int, buckets: int) -> int:
    """Lamping and Veach, "A fast, minimal memory, consistent hash algorithm" (2014)."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def _buckets(nodes: Sequence[Node]) -> list[str]:
    return [n.id for n in nodes for _ in range(max(1, round(n.weight)))]


def place_jump(nodes: Sequence[Node], items: int) -> Assignments:
    buckets = _buckets(nodes)
    return [(buckets[jump_hash(_h64(_item_key(i)), len(buckets))],) for i in range(items)]


def place_modulo(nodes: Sequence[Node], items: int) -> Assignments:
    buckets = _buckets(nodes)
    return [
        (buckets[int.from_bytes(hashlib.md5(_item_key(i)).digest(), "big") % len(buckets)],)
        for i in range(items)
    ]


PLACERS: dict[str, Placer] = {
    "rendezvous": place_rendezvous,
    "ring": place_ring,
    "jump": place_jump,
    "modulo": place_modulo,
    "rendezvous-R3": place_rendezvous_r3,
    "rendezvous-R3-uncompensated": place_rendezvous_r3_raw,
    "rendezvous-R3-zones": place_rendezvous_r3_zones,
}


def make_nodes(count: int, unequal: bool, start: int = 0) -> list[Node]:
    """Nodes n<start>..: weights 1 or 1,2,3,4 repeating; 3 zones x 2 racks, one host each."""
    return [
        Node(
            id=f"n{i:03d}",
            weight=float(1 + i % 4) if unequal else 1.0,
            zone=f"z{i % 3}",
            rack=f"r{(i // 3) % 2}",
            host=f"h{i:03d}",
        )
        for i in range(start, start + count)
    ]


@dataclass(frozen=True, slots=True)
class _Case:
    algorithm: str
    unequal: bool
    node_count: int


def _measure(case: _Case, items: int) -> JsonDict:
    place = PLACERS[case.algorithm]
    nodes = make_nodes(case.node_count + 1, case.unequal)
    base, joined = nodes[:-1], nodes
    left = base[: len(base) // 2] + base[len(base) // 2 + 1 :]
    weights = {n.id: n.weight for n in base}
    before = place(base, items)
    figures = balance(before, weights)
    after_join = place(joined, items)
    after_leave = place(left, items) if left else before
    ideal_join = ideal_moved_fraction(weights, {n.id: n.weight for n in joined})
    ideal_leave = ideal_moved_fraction(weights, {n.id: n.weight for n in left})
    join = moved_fraction(before, after_join)
    leave = moved_fraction(before, after_leave)
    leaving = base[len(base) // 2].id
    moved_slots = [
        (leaving in old, sum(1 for node in new if node not in old))
        for old, new in zip(before, after_leave, strict=True)
    ]
    collateral = sum(m for held, m in moved_slots if not held)
    moved_total = sum(m for _, m in moved_slots)
    return {
        "algorithm": case.algorithm,
        "weights": "unequal" if case.unequal else "equal",
        "nodes": case.node_count,
        "cv": figures.cv,
        "max_deviation": figures.max_deviation,
        "join_moved": join,
        "join_ideal": ideal_join,
        "join_ratio": join / ideal_join,
        "leave_moved": leave,
        "leave_ideal": ideal_leave,
        "leave_ratio": leave / ideal_leave,
        "leave_collateral": collateral / moved_total if moved_total else 0.0,
    }


def _summary(rows: Sequence[JsonDict]) -> JsonDict:
    out: JsonDict = {}
    for algorithm in ALGORITHMS:
        for weights in ("equal", "unequal"):
            mine = [r for r in rows if r["algorithm"] == algorithm and r["weights"] == weights]
            if not mine:
                continue
            out[f"{algorithm}/{weights}"] = {
                "cv_mean": sum(r["cv"] for r in mine) / len(mine),
                "cv_max": max(r["cv"] for r in mine),
                "join_ratio_max": max(r["join_ratio"] for r in mine),
                "leave_ratio_max": max(r["leave_ratio"] for r in mine),
                "join_ratio_mean": sum(r["join_ratio"] for r in mine) / len(mine),
                "leave_ratio_mean": sum(r["leave_ratio"] for r in mine) / len(mine),
            }
    return out


def run(
    partitions: int = DEFAULT_PARTITIONS,
    node_counts: Sequence[int] = DEFAULT_NODE_COUNTS,
    algorithms: Sequence[str] = ALGORITHMS,
    progress: Callable[[str], None] | None = None,
) -> JsonDict:
    """Measure every algorithm at every node count; returns config, rows and a summary."""
    if any(not 2 <= n <= NODE_COUNT_MAX for n in node_counts):
        raise ValueError(f"node counts must be 2..{NODE_COUNT_MAX}")
    unknown = set(algorithms) - set(PLACERS)
    if unknown:
        raise ValueError(f"unknown algorithms: {sorted(unknown)}")
    rows: list[JsonDict] = []
    for algorithm in algorithms:
        for unequal in (False, True):
            for count in node_counts:
                if count - 1 < REPLICAS.get(algorithm, 1):
                    continue
                if progress:
                    weights = "unequal" if unequal else "equal"
                    progress(f"{algorithm:>22} {weights:>7} weights, N={count}")
                rows.append(_measure(_Case(algorithm, unequal, count), partitions))
    return {
        "benchmark": "placement",
        "config": {
            "partitions": partitions,
            "node_counts": list(node_counts),
            "vnodes_per_weight": VNODES_PER_WEIGHT,
            "unequal_weights": "1,2,3,4 repeating",
            "leave": "the node in the middle of the list",
            "replicas": {a: REPLICAS.get(a, 1) for a in algorithms},
        },
        "rows": rows,
        "summary": _summary(rows),
    }


def write_plot(result: JsonDict, path: Path) -> None:
    """Balance and movement against N for every algorithm, equal and unequal weights."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: list[JsonDict] = result["rows"]
    algorithms = list(dict.fromkeys(r["algorithm"] for r in rows))
    panels = (
        ("cv", "balance: CV of share/weight (lower is better)", "linear"),
        ("join_ratio", "moved on join / ideal (1 is minimal)", "log"),
        ("leave_ratio", "moved on leave / ideal (1 is minimal)", "log"),
    )
    fig, axes = plt.subplots(2, 3, figsize=(16, 9), constrained_layout=True)
    for row_index, weights in enumerate(("equal", "unequal")):
        for col, (metric, title, scale) in enumerate(panels):
            ax = axes[row_index][col]
            for algorithm in algorithms:
                mine = [r for r in rows if r["algorithm"] == algorithm and r["weights"] == weights]
                ax.plot(
                    [r["nodes"] for r in mine],
                    [r[metric] for r in mine],
                    marker="o",
                    label=algorithm,
                )
            ax.set_title(f"{title}\n{weights} weights", fontsize=10)
            ax.set_xlabel("nodes N (log scale)")
            ax.set_xscale("log")
            counts = sorted({r["nodes"] for r in rows})
            ax.set_xticks(counts, [str(c) for c in counts])
            ax.minorticks_off()
            ax.set_yscale(scale)
            ax.grid(True, which="major", alpha=0.3)
            if metric != "cv":
                ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    axes[0][0].legend(fontsize=9)
    partitions = result["config"]["partitions"]
    fig.suptitle(
        f"cairn bench placement: {partitions} items, one replica (rendezvous-R3*: 3 replicas)"
    )
    fig.savefig(path, dpi=100)
    plt.close(fig)
