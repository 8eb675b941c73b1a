"""Where requests go: round robin, weighted, least connections, source hash, p2c-ewma. Pure.

Every strategy implements `Strategy` (`pick`, `on_start`, `on_finish`, with the time passed
in) and ejects backends that keep failing (`OutlierPolicy`). `make_strategy(name, backends)`
builds one from its configuration name. No IO, no clock, no `random`: only `cairn.base` and
the standard library, so the load balancer, the SDK and the simulator share the same code.
"""

from cairn.balancing.factory import STRATEGY_NAMES, make_strategy
from cairn.balancing.outlier import OutlierDetector, OutlierPolicy
from cairn.balancing.p2c import P2CEwma
from cairn.balancing.pool import PooledStrategy
from cairn.balancing.simple import LeastConnections, RoundRobin, SmoothWeighted, SourceHash
from cairn.balancing.splitmix import SplitMix64
from cairn.balancing.strategy import Backend, NoBackendAvailable, RandomSource, Strategy

__all__ = [
    "STRATEGY_NAMES",
    "Backend",
    "LeastConnections",
    "NoBackendAvailable",
    "OutlierDetector",
    "OutlierPolicy",
    "P2CEwma",
    "PooledStrategy",
    "RandomSource",
    "RoundRobin",
    "SmoothWeighted",
    "SourceHash",
    "SplitMix64",
    "Strategy",
    "make_strategy",
]
