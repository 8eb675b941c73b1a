"""Passive outlier ejection: N failures eject, the backoff passes, one probe decides."""

from cairn.balancing import Backend, OutlierPolicy, RoundRobin

POLICY = OutlierPolicy(
    failures_consecutive_max=3, ejection_base_s=10.0, ejection_max_s=35.0, probe_timeout_s=5.0
)
A, B, C = Backend("a"), Backend("b"), Backend("c")


def _fail(strategy: RoundRobin, backend: Backend, now: float, times: int = 1) -> None:
    for _ in range(times):
        strategy.on_start(backend)
        strategy.on_finish(backend, 0.001, False, now)


def _ids(strategy: RoundRobin, now: float, count: int = 6) -> set[str]:
    return {strategy.pick(None, now).id for _ in range(count)}


def test_consecutive_failures_eject_and_a_success_resets_the_count() -> None:
    strategy = RoundRobin([A, B, C], POLICY)
    _fail(strategy, A, 0.0, times=2)
    strategy.on_start(A)
    strategy.on_finish(A, 0.01, True, 0.0)
    _fail(strategy, A, 0.0, times=2)
    assert "a" in _ids(strategy, 0.0)
    _fail(strategy, A, 0.0)
    assert _ids(strategy, 1.0) == {"b", "c"}
    assert strategy.outliers.is_ejected("a")


def test_after_the_backoff_one_probe_goes_out_and_success_restores() -> None:
    strategy = RoundRobin([A, B, C], POLICY)
    _fail(strategy, A, 0.0, times=3)
    assert _ids(strategy, 9.9) == {"b", "c"}
    picks = [strategy.pick(None, 10.0).id for _ in range(6)]
    assert picks.count("a") == 1  # exactly one probe while it is in flight
    strategy.on_start(A)
    strategy.on_finish(A, 0.01, True, 10.5)
    assert not strategy.outliers.is_ejected("a")
    assert _ids(strategy, 10.5) == {"a", "b", "c"}


def test_a_failed_probe_doubles_the_backoff_up_to_the_limit() -> None:
    strategy = RoundRobin([A, B, C], POLICY)
    _fail(strategy, A, 0.0, times=3)  # ejected until 10
    now = 10.0
    for backoff in (20.0, 35.0, 35.0):  # 10 x 2, then capped at 35
        assert "a" in _ids(strategy, now)  # the probe
        _fail(strategy, A, now)
        assert "a" not in _ids(strategy, now + backoff - 0.1)
        now += backoff
    assert "a" in _ids(strategy, now)


def test_a_lost_probe_is_retried_after_the_probe_timeout() -> None:
    strategy = RoundRobin([A, B, C], POLICY)
    _fail(strategy, A, 0.0, times=3)
    assert "a" in _ids(strategy, 10.0)  # probe sent, never reported
    assert "a" not in _ids(strategy, 14.9)
    assert "a" in _ids(strategy, 15.0)


def test_at_most_half_the_backends_are_ejected_and_panic_uses_all() -> None:
    strategy = RoundRobin([A, B], POLICY)
    _fail(strategy, A, 0.0, times=3)
    _fail(strategy, B, 0.0, times=3)  # the cap (1 of 2) keeps b in
    assert _ids(strategy, 1.0) == {"b"}
    lone = RoundRobin([A], POLICY)
    _fail(lone, A, 0.0, times=10)  # a single backend is never ejected
    assert lone.pick(None, 1.0) == A


def test_panic_mode_when_every_backend_is_waiting_on_a_probe() -> None:
    strategy = RoundRobin([A, B, C, Backend("d")], POLICY)
    _fail(strategy, A, 0.0, times=3)
    _fail(strategy, B, 0.0, times=3)
    assert _ids(strategy, 1.0) == {"c", "d"}
