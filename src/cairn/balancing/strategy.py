"""The interface every request strategy implements, and the values it deals in.

A strategy is a small state machine fed by its caller: `pick` chooses a backend for a
request, `on_start` says the request was sent to it, `on_finish` reports how it went. Time
is an argument (seconds on any monotonic clock, virtual in simulation), so strategies never
read a clock and the same code runs in the load balancer, the SDK (across gateways) and the
gateway (across chunk replicas).
"""

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from cairn.base.errors import CairnError

BACKEND_WEIGHT_MAX = 1_000_000
"""Weights are small positive integers (smooth weighted round robin adds them up)."""

RandomSource = Callable[[], float]
"""A source of floats in [0, 1): `cairn.runtime.Rng.random`, or a seeded `SplitMix64`."""


@dataclass(frozen=True, slots=True)
class Backend:
    """Something requests can go to: a gateway, a chunk replica. `id` is unique."""

    id: str
    weight: int = 1

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("backend id must not be empty")
        if not 1 <= self.weight <= BACKEND_WEIGHT_MAX:
            raise ValueError(f"backend {self.id}: weight must be 1..{BACKEND_WEIGHT_MAX}")


class NoBackendAvailable(CairnError):
    """A strategy was asked to pick from an empty backend list (or an empty `among`)."""


class Strategy(Protocol):
    """Choose a backend per request and learn from how requests went."""

    def pick(self, key: bytes | None, now: float, among: Collection[str] | None = None) -> Backend:
        """The backend for the next request; `key` is the affinity key (e.g. client IP).

        `among` limits the choice to these backend ids (a gateway choosing among the
        replicas of one chunk keeps one strategy for all nodes, so latency and ejection
        state are shared); raises `NoBackendAvailable` if none of them is known.
        """
        ...

    def on_start(self, backend: Backend) -> None:
        """A request was sent to `backend`."""
        ...

    def on_finish(self, backend: Backend, latency_s: float, ok: bool, now: float) -> None:
        """A request to `backend` finished after `latency_s`; `ok` False for a failure."""
        ...
