"""Power of two choices over peak-EWMA latency: it learns which backend is slow."""

from collections import Counter

from cairn.balancing import Backend, P2CEwma, SplitMix64


def _run(strategy: P2CEwma, latency_s: dict[str, float], requests: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    now = 0.0
    for _ in range(requests):
        backend = strategy.pick(None, now)
        strategy.on_start(backend)
        now += 0.01
        strategy.on_finish(backend, latency_s[backend.id], True, now)
        counts[backend.id] += 1
    return counts


def test_p2c_prefers_the_faster_backends() -> None:
    backends = [Backend("fast-1"), Backend("fast-2"), Backend("slow")]
    strategy = P2CEwma(backends, SplitMix64(7), decay_s=1.0, default_latency_s=0.001)
    latency = {"fast-1": 0.010, "fast-2": 0.012, "slow": 0.200}
    counts = _run(strategy, latency, 3000)
    assert counts["slow"] < 0.05 * 3000
    assert counts["fast-1"] > 0.3 * 3000 and counts["fast-2"] > 0.3 * 3000
    assert strategy.latency_estimate_s(backends[0]) < 0.02
    assert strategy.latency_estimate_s(backends[2]) > 0.1


def test_p2c_is_reproducible_with_the_same_seed() -> None:
    backends = [Backend(f"b{i}") for i in range(4)]
    latency = {"b0": 0.01, "b1": 0.02, "b2": 0.03, "b3": 0.04}
    first = _run(P2CEwma(backends, SplitMix64(3)), latency, 500)
    assert first == _run(P2CEwma(backends, SplitMix64(3)), latency, 500)


def test_failures_count_as_slow_and_in_flight_requests_raise_the_cost() -> None:
    a, b = Backend("a"), Backend("b")
    strategy = P2CEwma([a, b], SplitMix64(1), failure_penalty_s=1.0)
    strategy.on_start(a)
    strategy.on_finish(a, 0.001, False, 1.0)  # a fast failure
    strategy.on_start(b)
    strategy.on_finish(b, 0.05, True, 1.0)
    assert strategy.latency_estimate_s(a) == 1.0
    assert strategy.pick(None, 1.0) == b
    for _ in range(30):
        strategy.on_start(b)  # 31 in flight x 0.05 s > 1 x 1.0 s
    assert strategy.pick(None, 1.0) == a


def test_the_estimate_decays_towards_lower_samples() -> None:
    a = Backend("a")
    strategy = P2CEwma([a, Backend("b")], SplitMix64(1), decay_s=1.0)
    strategy.on_start(a)
    strategy.on_finish(a, 0.5, True, 0.0)
    strategy.on_start(a)
    strategy.on_finish(a, 0.1, True, 1.0)  # one decay time later: 0.5/e + 0.1(1 - 1/e)
    assert abs(strategy.latency_estimate_s(a) - 0.2472) < 1e-3
