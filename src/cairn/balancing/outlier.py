"""Passive outlier ejection: take a backend out after consecutive failures, then probe it.

Theory of operation (a circuit breaker per backend, as in Envoy's outlier detection):

| state     | eligible for picks          | on success          | on failure                  |
|-----------|-----------------------------|---------------------|-----------------------------|
| healthy   | yes                         | reset failure count | count; at N, eject          |
| ejected   | no, until the backoff ends  | -                   | -                           |
| probing   | one request at a time       | healthy, reset      | ejected again, backoff x 2  |

An ejected backend becomes *probing* when its backoff has passed: the next pick may send it
one request (the probe). The backoff doubles with every ejection in a row, up to
`ejection_max_s`, and resets when a probe succeeds. A probe that never reports back is
considered lost after `probe_timeout_s`, and another may be sent. At most
`ejected_fraction_max` of the backends are ejected at once (but at least one may be), and
if every backend is ineligible the strategy uses all of them ("panic mode"): sending to a
backend that might be bad beats refusing every request.
"""

from dataclasses import dataclass

_DOUBLINGS_MAX = 32  # 2^32 x any sane base is far past ejection_max_s


@dataclass(frozen=True, slots=True)
class OutlierPolicy:
    """Limits for ejection. `failures_consecutive_max` <= 0 disables ejection."""

    failures_consecutive_max: int = 5
    ejection_base_s: float = 10.0
    ejection_max_s: float = 300.0
    ejected_fraction_max: float = 0.5
    probe_timeout_s: float = 10.0


@dataclass(slots=True)
class _Health:
    failures: int = 0
    ejections: int = 0
    ejected_until: float | None = None
    probe_started: float | None = None


class OutlierDetector:
    """Health bookkeeping for a fixed set of backend ids."""

    def __init__(self, backend_ids: list[str], policy: OutlierPolicy) -> None:
        self.policy = policy
        self._health = {backend_id: _Health() for backend_id in backend_ids}
        self.ejections_total = 0
        """Ejections so far, re-ejections after a failed probe included (for metrics)."""

    def is_ejected(self, backend_id: str) -> bool:
        return self._health[backend_id].ejected_until is not None

    def eligible(self, backend_id: str, now: float) -> bool:
        """Whether a pick may choose `backend_id` at `now` (healthy, or a probe is due)."""
        health = self._health[backend_id]
        if health.ejected_until is None:
            return True
        if now < health.ejected_until:
            return False
        started = health.probe_started
        return started is None or now - started >= self.policy.probe_timeout_s

    def picked(self, backend_id: str, now: float) -> None:
        """A pick chose `backend_id`; if it is ejected, this request is its probe."""
        health = self._health[backend_id]
        if health.ejected_until is not None:
            health.probe_started = now

    def finished(self, backend_id: str, ok: bool, now: float) -> None:
        health = self._health[backend_id]
        if ok:
            health.failures = 0
            if health.ejected_until is not None and health.probe_started is not None:
                health.ejected_until = health.probe_started = None
                health.ejections = 0
            return
        health.failures += 1
        if health.ejected_until is not None:
            if health.probe_started is not None:  # the probe failed
                self._eject(health, now)
            return
        limit = self.policy.failures_consecutive_max
        if 0 < limit <= health.failures and self._room_to_eject():
            self._eject(health, now)

    def _room_to_eject(self) -> bool:
        ejected = sum(1 for h in self._health.values() if h.ejected_until is not None)
        cap = max(1, int(len(self._health) * self.policy.ejected_fraction_max))
        return ejected < cap and len(self._health) > 1

    def _eject(self, health: _Health, now: float) -> None:
        backoff = self.policy.ejection_base_s * 2.0 ** min(health.ejections, _DOUBLINGS_MAX)
        health.ejected_until = now + min(backoff, self.policy.ejection_max_s)
        health.ejections += 1
        self.ejections_total += 1
        health.probe_started = None
        health.failures = 0
