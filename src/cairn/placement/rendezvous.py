"""Weighted rendezvous (highest random weight) hashing, logarithmic method.

Theory of operation. Every (node, partition) pair gets a pseudo-random number `u` in
(0, 1) from BLAKE2b of the node id and the partition number; the node's score for the
partition is `-weight / ln(u)`. The partition goes to the nodes with the highest scores.

Why this form: `-ln(u) / weight` is an exponential random variable with rate `weight`, so
picking the highest score is picking the first arrival of independent exponential clocks,
and node *i* wins with probability exactly `weight_i / sum(weights)` (Schindelhauer and
Schomaker, "Weighted distributed hash tables", 2005; the same idea as Ceph's straw2).
Because a pair's score depends only on that node and that partition, adding a node can only
take partitions *to* the new node, and removing one only moves the partitions it held:
the movement is the theoretical minimum in expectation.

The hash is BLAKE2b with a fixed personalisation, never Python's `hash()`: the table must
be identical in every process, on every machine and every Python version. The top 53 bits
of the digest make a double in (0, 1) (open at both ends: +0.5 keeps it off zero).
"""

import hashlib
import math
from collections.abc import Sequence

_PERSON = b"cairn-rv-v1"
_UNIT_BITS = 53
_UNIT_SCALE = 2.0**-_UNIT_BITS


def node_hasher(node_id: str) -> hashlib.blake2b:
    """A BLAKE2b state primed with `node_id`; `scores_with` copies it per partition."""
    return hashlib.blake2b(node_id.encode() + b"\x00", digest_size=8, person=_PERSON)


def hash_unit(node_id: str, partition: int) -> float:
    """The pair's uniform draw in (0, 1), stable across processes and Python versions."""
    return _unit(node_hasher(node_id), partition)


def _unit(primed: hashlib.blake2b, partition: int) -> float:
    state = primed.copy()
    state.update(partition.to_bytes(8, "big"))
    value = int.from_bytes(state.digest(), "big") >> (64 - _UNIT_BITS)
    return (value + 0.5) * _UNIT_SCALE


def score(node_id: str, weight: float, partition: int) -> float:
    """The node's rendezvous score for the partition; higher wins. Weight 0 scores 0."""
    return -weight / math.log(hash_unit(node_id, partition))


def scores_with(
    primed: Sequence[hashlib.blake2b], weights: Sequence[float], partition: int
) -> list[float]:
    """`score` for many nodes at once, with hashers from `node_hasher` (the table's hot
    loop: each node id is hashed once per table, and the loop makes no Python calls)."""
    suffix = partition.to_bytes(8, "big")
    log = math.log
    out = []
    for hasher, weight in zip(primed, weights, strict=True):
        state = hasher.copy()
        state.update(suffix)
        unit = ((int.from_bytes(state.digest(), "big") >> (64 - _UNIT_BITS)) + 0.5) * _UNIT_SCALE
        out.append(-weight / log(unit))
    return out
