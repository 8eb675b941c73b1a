"""Power of two choices over a peak-EWMA of latency (as in Finagle and Linkerd).

Theory of operation. Each pick draws two distinct candidates at random and sends the
request to the one with the lower *cost* = latency estimate x (requests in flight + 1) /
weight. Comparing two random candidates instead of all of them avoids the herd behaviour
of "always the best" (every client piling onto the same backend between updates) while
still steering most traffic away from slow backends (Mitzenmacher, "The power of two
choices in randomized load balancing", 2001).

The latency estimate is a *peak* EWMA: a sample above the estimate replaces it at once (a
backend that just got slow is avoided immediately), a sample below it pulls it down with
weight 1 - exp(-dt / decay_s), where dt is the virtual time since the last update (so the
memory is in seconds, not in request counts). A failed request counts as at least
`failure_penalty_s`, so a backend that fails fast does not look fast. A backend with no
samples yet uses `default_latency_s`.

Randomness comes from an injected `RandomSource` (`cairn.runtime.Rng.random` in servers, a
seeded `SplitMix64` in tests and simulations), never from the `random` module.
"""

import math
from collections.abc import Sequence

from cairn.balancing.outlier import OutlierPolicy
from cairn.balancing.pool import PooledStrategy
from cairn.balancing.strategy import Backend, RandomSource


class P2CEwma(PooledStrategy):
    def __init__(
        self,
        backends: Sequence[Backend],
        random: RandomSource,
        policy: OutlierPolicy | None = None,
        *,
        decay_s: float = 10.0,
        default_latency_s: float = 0.05,
        failure_penalty_s: float = 1.0,
    ) -> None:
        super().__init__(backends, policy)
        if decay_s <= 0 or default_latency_s <= 0 or failure_penalty_s < 0:
            raise ValueError("decay_s and default_latency_s must be > 0, penalty >= 0")
        self._random = random
        self.decay_s = decay_s
        self.failure_penalty_s = failure_penalty_s
        self._ewma_s = [default_latency_s] * len(self.backends)
        self._updated = [math.nan] * len(self.backends)

    def latency_estimate_s(self, backend: Backend) -> float:
        return self._ewma_s[self._index[backend.id]]

    def _cost(self, index: int) -> float:
        return self._ewma_s[index] * (self._active[index] + 1) / self.backends[index].weight

    def _choose(self, candidates: list[int], key: bytes | None, now: float) -> int:
        if len(candidates) == 1:
            return candidates[0]
        n = len(candidates)
        first = min(int(self._random() * n), n - 1)
        second = min(int(self._random() * (n - 1)), n - 2)
        if second >= first:
            second += 1
        a, b = candidates[first], candidates[second]
        return a if self._cost(a) <= self._cost(b) else b

    def _observe(self, index: int, latency_s: float, ok: bool, now: float) -> None:
        sample = latency_s if ok else max(latency_s, self.failure_penalty_s)
        last = self._updated[index]
        self._updated[index] = now
        if math.isnan(last) or sample >= self._ewma_s[index]:
            self._ewma_s[index] = sample
            return
        keep = math.exp(-max(now - last, 0.0) / self.decay_s)
        self._ewma_s[index] = self._ewma_s[index] * keep + sample * (1.0 - keep)
