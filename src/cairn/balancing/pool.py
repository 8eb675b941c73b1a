"""What every strategy shares: the backend list, in-flight counts and outlier ejection.

A concrete strategy subclasses `PooledStrategy` and implements `_choose`, which gets the
indices of the backends it may use right now (never empty: when ejection has ruled out
every backend, all of them are offered, see `outlier`). Everything else of the `Strategy`
protocol is here, so the strategies differ only in how they choose.
"""

from collections.abc import Collection, Sequence

from cairn.balancing.outlier import OutlierDetector, OutlierPolicy
from cairn.balancing.strategy import Backend, NoBackendAvailable

BACKEND_COUNT_MAX = 10_000
"""A strategy balances over at most this many backends."""


class PooledStrategy:
    """Base of the built-in strategies; subclasses implement `_choose`."""

    def __init__(self, backends: Sequence[Backend], policy: OutlierPolicy | None = None) -> None:
        if not backends:
            raise NoBackendAvailable("a strategy needs at least one backend")
        if len(backends) > BACKEND_COUNT_MAX:
            raise ValueError(f"at most {BACKEND_COUNT_MAX} backends")
        ids = [b.id for b in backends]
        if len(set(ids)) != len(ids):
            raise ValueError("backend ids must be unique")
        self.backends: tuple[Backend, ...] = tuple(backends)
        self._index = {backend_id: i for i, backend_id in enumerate(ids)}
        self._active = [0] * len(ids)
        self.outliers = OutlierDetector(ids, policy or OutlierPolicy())

    def active(self, backend: Backend) -> int:
        """Requests started on `backend` and not yet finished."""
        return self._active[self._index[backend.id]]

    def pick(self, key: bytes | None, now: float, among: Collection[str] | None = None) -> Backend:
        pool = (
            range(len(self.backends))
            if among is None
            else [i for i, b in enumerate(self.backends) if b.id in among]
        )
        if not pool:
            raise NoBackendAvailable(f"none of {sorted(among or ())[:5]} is a known backend")
        eligible = [i for i in pool if self.outliers.eligible(self.backends[i].id, now)]
        candidates = eligible or list(pool)
        chosen = self.backends[self._choose(candidates, key, now)]
        self.outliers.picked(chosen.id, now)
        return chosen

    def on_start(self, backend: Backend) -> None:
        self._active[self._index[backend.id]] += 1

    def on_finish(self, backend: Backend, latency_s: float, ok: bool, now: float) -> None:
        index = self._index[backend.id]
        assert self._active[index] > 0, f"on_finish without on_start for {backend.id}"
        self._active[index] -= 1
        self.outliers.finished(backend.id, ok, now)
        self._observe(index, latency_s, ok, now)

    def _choose(self, candidates: list[int], key: bytes | None, now: float) -> int:
        raise NotImplementedError

    def _observe(self, index: int, latency_s: float, ok: bool, now: float) -> None:
        """Hook for strategies that learn from latency; default: nothing."""
