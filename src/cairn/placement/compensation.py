"""Weight compensation for picking R > 1 distinct nodes by rendezvous hashing.

Theory of operation. With one replica, weighted rendezvous gives node i exactly
w_i / W of the partitions. With R > 1 the top R scores are a sample *without replacement*
(an exponential race: the first R clocks to ring), and a heavy node, which can appear only
once per partition, gets less than R w_i / W while light nodes get more: with weights 1 and
2 on 12 nodes and R = 3 the light nodes hold about 6.5 % too much, with weights 1..4 on
10 nodes about 12 %. Ceph's straw2 has the same bias and offsets it with a separately
computed "weight set".

We compensate with Rosén's approximation for successive sampling: node i's inclusion
probability is about 1 - exp(-lambda_i tau), where tau solves
sum_j (1 - exp(-lambda_j tau)) = R. Asking for inclusion probability t_i = R w_i / W and
fixing tau = 1 (weights are scale free) gives the rate to hash with in closed form:
`lambda_i = -ln(1 - t_i)`. It is exact when weights are equal (then it changes nothing),
removes most of the bias for mixed weights (12 nodes of weights 1 and 2: 6.5 % to under
1 %), and slightly over-corrects for very few nodes. A target above 1 (a node heavier than
W / R) is capped at 1 and the surplus spread over the others (water filling).

Failure domains. When replicas must sit in distinct domains (say zones), the table picks R
distinct *domains*, and a domain's best score behaves like one node whose weight is the sum
of its nodes' weights (the minimum of exponential clocks is an exponential clock with the
summed rate); inside a domain one node is picked, in proportion to weight, exactly. So the
compensation is applied to the domain totals, and each node keeps its share of its
domain's compensated weight. With as many domains as replicas every domain gets one
replica of every partition and the compensation changes nothing.

The price: the effective weights depend on the total, so when a node of a *different* weight
joins or leaves, every other node's effective weight shifts a little and a few partitions
that did not involve that node move too (`cairn bench placement` reports this as
`leave_collateral`). With equal weights there is no such movement.
"""

import math
from collections.abc import Sequence

TARGET_MAX = 1.0 - 1e-9
"""Inclusion targets are clamped below 1 so that the logarithm stays finite."""


def inclusion_targets(weights: Sequence[float], replica_count: int) -> list[float]:
    """Each node's wanted probability of holding a partition: R w_i / W, capped at 1."""
    targets = [0.0] * len(weights)
    free = [i for i, w in enumerate(weights) if w > 0]
    slots = float(min(replica_count, len(free)))
    while free:
        total = sum(weights[i] for i in free)
        over = [i for i in free if slots * weights[i] / total >= 1.0]
        if not over:
            for i in free:
                targets[i] = slots * weights[i] / total
            break
        for i in over:
            targets[i] = 1.0
        slots -= len(over)
        free = [i for i in free if i not in over]
    return targets


def compensated_weights(
    weights: Sequence[float], replica_count: int, domains: Sequence[str] | None = None
) -> list[float]:
    """Weights to hash with so that top-R picks follow `weights` (identity for R = 1).

    `domains[i]` is node i's domain at the level where replicas must differ (None: every
    node is its own domain).
    """
    if replica_count <= 1:
        return list(weights)
    groups = list(domains) if domains is not None else [str(i) for i in range(len(weights))]
    assert len(groups) == len(weights), "one domain per node"
    totals: dict[str, float] = {}
    for group, weight in zip(groups, weights, strict=True):
        totals[group] = totals.get(group, 0.0) + weight
    names = list(totals)
    targets = inclusion_targets([totals[n] for n in names], replica_count)
    rates = {
        name: -math.log1p(-min(t, TARGET_MAX)) / totals[name] if t > 0 else 0.0
        for name, t in zip(names, targets, strict=True)
    }
    return [weight * rates[group] for group, weight in zip(groups, weights, strict=True)]
