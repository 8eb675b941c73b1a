"""Strategies that need no measurements: round robin, smooth weighted round robin, least
connections and source hash.

Theory of operation.

- **Round robin** walks the backend list in order, skipping ejected backends. The cursor
  is an index into the full list, so an ejection does not reshuffle everyone else.
- **Smooth weighted round robin** is nginx's algorithm (ngx_http_upstream_round_robin.c):
  on every pick each candidate's `current` grows by its weight, the largest `current` wins
  and loses the total weight. Over any window of sum(weights) picks each backend gets
  exactly its weight, and the picks are interleaved (5, 1, 1 gives a a b a c a a, not
  a a a a a b c).
- **Least connections** picks the candidate with the fewest requests in flight per unit of
  weight; ties are broken by a rotating start, so an idle pool still spreads requests.
- **Source hash** keeps a client on one backend: the key (the client IP) is hashed with
  each candidate's id by BLAKE2b and the highest weighted rendezvous score wins (the same
  method as `cairn.placement.rendezvous`, repeated here because the two packages are
  independent layers). When a backend is ejected, only its clients move; when it returns,
  they move back. A request without a key falls back to round robin.
"""

import hashlib
import math
from collections.abc import Sequence

from cairn.balancing.outlier import OutlierPolicy
from cairn.balancing.pool import PooledStrategy
from cairn.balancing.strategy import Backend

_PERSON = b"cairn-lb-v1"


class RoundRobin(PooledStrategy):
    def __init__(self, backends: Sequence[Backend], policy: OutlierPolicy | None = None) -> None:
        super().__init__(backends, policy)
        self._cursor = 0

    def _choose(self, candidates: list[int], key: bytes | None, now: float) -> int:
        chosen = next((i for i in candidates if i >= self._cursor), candidates[0])
        self._cursor = (chosen + 1) % len(self.backends)
        return chosen


class SmoothWeighted(PooledStrategy):
    def __init__(self, backends: Sequence[Backend], policy: OutlierPolicy | None = None) -> None:
        super().__init__(backends, policy)
        self._current = [0] * len(self.backends)

    def _choose(self, candidates: list[int], key: bytes | None, now: float) -> int:
        total = 0
        best = candidates[0]
        for i in candidates:
            weight = self.backends[i].weight
            self._current[i] += weight
            total += weight
            if self._current[i] > self._current[best]:
                best = i
        self._current[best] -= total
        return best


class LeastConnections(PooledStrategy):
    def __init__(self, backends: Sequence[Backend], policy: OutlierPolicy | None = None) -> None:
        super().__init__(backends, policy)
        self._rotation = 0

    def _choose(self, candidates: list[int], key: bytes | None, now: float) -> int:
        start = self._rotation % len(candidates)
        self._rotation += 1
        ordered = candidates[start:] + candidates[:start]
        return min(ordered, key=lambda i: self._active[i] / self.backends[i].weight)


class SourceHash(PooledStrategy):
    def __init__(self, backends: Sequence[Backend], policy: OutlierPolicy | None = None) -> None:
        super().__init__(backends, policy)
        self._cursor = 0

    def _choose(self, candidates: list[int], key: bytes | None, now: float) -> int:
        if key is None:
            chosen = next((i for i in candidates if i >= self._cursor), candidates[0])
            self._cursor = (chosen + 1) % len(self.backends)
            return chosen
        return max(candidates, key=lambda i: self._score(key, i))

    def _score(self, key: bytes, index: int) -> float:
        backend = self.backends[index]
        digest = hashlib.blake2b(
            key + b"\x00" + backend.id.encode(), digest_size=8, person=_PERSON
        ).digest()
        unit = ((int.from_bytes(digest, "big") >> 11) + 0.5) * 2.0**-53
        return -backend.weight / math.log(unit)
