"""`make_strategy(name, backends)`: the one place that maps configuration names to classes."""

from collections.abc import Sequence

from cairn.balancing.outlier import OutlierPolicy
from cairn.balancing.p2c import P2CEwma
from cairn.balancing.pool import PooledStrategy
from cairn.balancing.simple import LeastConnections, RoundRobin, SmoothWeighted, SourceHash
from cairn.balancing.splitmix import SplitMix64
from cairn.balancing.strategy import Backend, RandomSource, Strategy

STRATEGY_NAMES = ("round-robin", "weighted", "least-connections", "source-hash", "p2c-ewma")

_SIMPLE: dict[str, type[PooledStrategy]] = {
    "round-robin": RoundRobin,
    "weighted": SmoothWeighted,
    "least-connections": LeastConnections,
    "source-hash": SourceHash,
}


def make_strategy(
    name: str,
    backends: Sequence[Backend],
    *,
    random: RandomSource | None = None,
    policy: OutlierPolicy | None = None,
) -> PooledStrategy:
    """The strategy called `name` (one of `STRATEGY_NAMES`) over `backends`.

    `random` is used by "p2c-ewma" only; pass `cairn.runtime.Rng.random` in a server. Without
    it, p2c draws from `SplitMix64(0)`: reproducible, which is what tests and simulations want.
    """
    if name == "p2c-ewma":
        return P2CEwma(backends, random or SplitMix64(0), policy)
    if name not in _SIMPLE:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGY_NAMES)}")
    return _SIMPLE[name](backends, policy)


def _implements_strategy(strategy: PooledStrategy) -> Strategy:
    """Never called: mypy checks here that every built-in strategy fits `Strategy`."""
    return strategy
