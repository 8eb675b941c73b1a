"""The partition table: which nodes hold each of the P partitions of chunk ids.

Theory of operation. A chunk id (a keyed hash, so uniformly distributed) maps to one of P
partitions by its first 8 bytes, big-endian, shifted right to keep log2(P) bits; P is a power
of two fixed when the cluster is created, so this mapping never changes. Each partition is
then placed on R nodes:

1. Rank every node that holds placements (see `nodes.NodeState`) by its weighted
   rendezvous score for the partition (`rendezvous`). For R > 1 the weights are first
   compensated for sampling without replacement, per domain of the level in step 2
   (`compensation`), unless the caller turns that off.
2. Pick R of them greedily down that ranking, subject to failure domains. Let L be the
   widest level (zone, then rack, then host) that has at least R distinct domains among the
   eligible nodes: no two replicas share a domain at level L (hard rule; it implies the same
   for the narrower levels). Among the candidates the hard rule allows, prefer the one that
   shares the fewest domains with the replicas already picked, widest level first (so with 2
   zones and R = 3 the replicas still split 2 + 1 across zones), then the higher score.

Spreading only ever skips a node, never reorders scores, so a node joining or leaving still
changes only the partitions whose top choices it enters or leaves (plus, rarely, a second
replica displaced by the domain rule, and, with compensated mixed weights, a few partitions
whose effective weights shifted; see `compensation`). The table is a value: building a new
one from a changed node list gives the next epoch, and `moves.plan_moves` diffs the two.

Limits: P is at most `PARTITION_COUNT_MAX`, R at most `REPLICA_COUNT_MAX`. Fewer eligible
nodes than R leaves partitions with fewer replicas (`PartitionTable.under_replicated`).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cairn.placement.compensation import compensated_weights
from cairn.placement.nodes import Node
from cairn.placement.rendezvous import node_hasher, scores_with

PARTITION_COUNT_MAX = 1 << 20
"""At most this many partitions (2^20 x R owner ids: tens of MiB in memory at most)."""
REPLICA_COUNT_MAX = 16
CHUNK_ID_BYTES_MIN = 8
"""A chunk id has at least this many bytes; the first 8 choose the partition."""

_DOMAIN_LEVELS = 3  # zone, rack, host


def partition_bits(partition_count: int) -> int:
    """log2 of a valid partition count; raises ValueError for anything else."""
    if partition_count < 1 or partition_count > PARTITION_COUNT_MAX:
        raise ValueError(f"partition count must be 1..{PARTITION_COUNT_MAX}: {partition_count}")
    if partition_count & (partition_count - 1):
        raise ValueError(f"partition count must be a power of two: {partition_count}")
    return partition_count.bit_length() - 1


def partition_of(chunk_id: bytes, partition_count: int) -> int:
    """The partition of a chunk id: its first 8 bytes, big-endian, top log2(P) bits."""
    if len(chunk_id) < CHUNK_ID_BYTES_MIN:
        raise ValueError(f"chunk id must be at least {CHUNK_ID_BYTES_MIN} bytes")
    bits = partition_bits(partition_count)
    return int.from_bytes(chunk_id[:8], "big") >> (64 - bits) if bits else 0


@dataclass(frozen=True, slots=True)
class PartitionTable:
    """Owners of every partition at one epoch; `owners[p]` is in preference order."""

    epoch: int
    partition_count: int
    replica_count: int
    owners: tuple[tuple[str, ...], ...] = field(repr=False)

    def __post_init__(self) -> None:
        partition_bits(self.partition_count)
        assert len(self.owners) == self.partition_count, "one owner tuple per partition"
        assert 1 <= self.replica_count <= REPLICA_COUNT_MAX

    def partition_of(self, chunk_id: bytes) -> int:
        return partition_of(chunk_id, self.partition_count)

    def owners_of_chunk(self, chunk_id: bytes) -> tuple[str, ...]:
        return self.owners[self.partition_of(chunk_id)]

    def partitions_of(self, node_id: str) -> list[int]:
        """Partitions that have `node_id` among their owners."""
        return [p for p, owners in enumerate(self.owners) if node_id in owners]

    def under_replicated(self) -> int:
        """How many partitions have fewer than R owners (too few eligible nodes)."""
        return sum(1 for owners in self.owners if len(owners) < self.replica_count)


def build_table(
    nodes: Iterable[Node],
    partition_count: int,
    replica_count: int,
    epoch: int = 1,
    *,
    compensate: bool = True,
) -> PartitionTable:
    """Place every partition on `replica_count` nodes (see the module docstring).

    `compensate=False` hashes with the raw weights: no collateral movement when a node of a
    different weight joins or leaves, at the cost of light nodes holding too much.
    """
    if not 1 <= replica_count <= REPLICA_COUNT_MAX:
        raise ValueError(f"replica count must be 1..{REPLICA_COUNT_MAX}: {replica_count}")
    partition_bits(partition_count)
    eligible = sorted((n for n in nodes if n.holds_placements), key=lambda n: n.id)
    if len({n.id for n in eligible}) != len(eligible):
        raise ValueError("node ids must be unique")
    chooser = _Chooser(eligible, replica_count, compensate)
    owners = tuple(chooser.choose(p) for p in range(partition_count))
    return PartitionTable(epoch, partition_count, replica_count, owners)


class _Chooser:
    """Per-table state for `build_table`: hashers, weights and domain paths of the nodes."""

    def __init__(self, nodes: Sequence[Node], replica_count: int, compensate: bool) -> None:
        self.ids = [n.id for n in nodes]
        self.hashers = [node_hasher(n.id) for n in nodes]
        self.domains = [n.domains for n in nodes]
        self.want = min(replica_count, len(nodes))
        self.domain_counts = [
            len({d[level] for d in self.domains}) for level in range(_DOMAIN_LEVELS)
        ]
        self.hard_level = _DOMAIN_LEVELS  # no domain rule beyond "distinct nodes"
        for level in range(_DOMAIN_LEVELS):
            if self.domain_counts[level] >= replica_count:
                self.hard_level = level
                break
        self.weights = [n.weight for n in nodes]
        if compensate:
            groups = (
                [d[self.hard_level] for d in self.domains]
                if self.hard_level < _DOMAIN_LEVELS
                else None
            )
            self.weights = compensated_weights(self.weights, replica_count, groups)

    def choose(self, partition: int) -> tuple[str, ...]:
        scores = scores_with(self.hashers, self.weights, partition)
        # Stable sort of nodes already in id order: exact score ties (never seen with
        # 53-bit draws) would still resolve the same way everywhere.
        ranked = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
        if self.want == 0:
            return ()
        picked = [ranked[0]]
        used: list[dict[str, int]] = [{d: 1} for d in self.domains[ranked[0]]]
        while len(picked) < self.want:
            best = self._best_candidate(ranked, picked, used)
            picked.append(best)
            for level, domain in enumerate(self.domains[best]):
                used[level][domain] = used[level].get(domain, 0) + 1
        return tuple(self.ids[i] for i in picked)

    def _best_candidate(
        self, ranked: Sequence[int], picked: Sequence[int], used: Sequence[dict[str, int]]
    ) -> int:
        # No candidate can beat this bound (0 where a level still has an unused domain), so
        # the first one that reaches it is the answer and the scan stops there.
        bound = tuple(
            0 if len(used[level]) < self.domain_counts[level] else min(used[level].values())
            for level in range(_DOMAIN_LEVELS)
        )
        best, best_penalty = -1, (0, 0, 0)
        for i in ranked:
            if i in picked:
                continue
            paths = self.domains[i]
            if self.hard_level < _DOMAIN_LEVELS and paths[self.hard_level] in used[self.hard_level]:
                continue
            penalty = (used[0].get(paths[0], 0), used[1].get(paths[1], 0), used[2].get(paths[2], 0))
            if best < 0 or penalty < best_penalty:
                best, best_penalty = i, penalty
                if penalty == bound:
                    break
        assert best >= 0, "the hard domain level always has a free domain"
        return best
