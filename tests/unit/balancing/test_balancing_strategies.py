"""Each strategy's choices: round robin, nginx's smooth weighted sequence, least
connections, source hash affinity, and the factory and public names."""

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cairn.balancing
from cairn.balancing import (
    STRATEGY_NAMES,
    Backend,
    LeastConnections,
    NoBackendAvailable,
    OutlierPolicy,
    P2CEwma,
    RoundRobin,
    SmoothWeighted,
    SourceHash,
    SplitMix64,
    make_strategy,
)

ABC = [Backend("a"), Backend("b"), Backend("c")]


def _picks(strategy: RoundRobin | SmoothWeighted, count: int) -> str:
    return "".join(strategy.pick(None, 0.0).id for _ in range(count))


def test_round_robin_cycles_in_order() -> None:
    assert _picks(RoundRobin(ABC), 7) == "abcabca"


def test_smooth_weighted_matches_nginx_for_5_1_1() -> None:
    strategy = SmoothWeighted([Backend("a", 5), Backend("b", 1), Backend("c", 1)])
    assert _picks(strategy, 14) == "aabacaa" * 2


@given(st.lists(st.integers(1, 9), min_size=1, max_size=6))
def test_smooth_weighted_gives_each_backend_its_weight_every_cycle(weights: list[int]) -> None:
    backends = [Backend(f"b{i}", w) for i, w in enumerate(weights)]
    strategy = SmoothWeighted(backends)
    for _ in range(3):
        counts = Counter(strategy.pick(None, 0.0).id for _ in range(sum(weights)))
        assert counts == {b.id: b.weight for b in backends}


def test_least_connections_prefers_the_idlest_per_unit_of_weight() -> None:
    a, b, c = Backend("a", 1), Backend("b", 2), Backend("c", 1)
    strategy = LeastConnections([a, b, c])
    for backend, count in ((a, 2), (b, 3), (c, 1)):
        for _ in range(count):
            strategy.on_start(backend)
    assert strategy.pick(None, 0.0) == c  # 2/1, 3/2, 1/1 -> c
    strategy.on_finish(a, 0.01, True, 1.0)
    strategy.on_finish(a, 0.01, True, 1.0)
    assert strategy.pick(None, 0.0) == a  # a now has 0 in flight
    assert strategy.active(a) == 0


def test_least_connections_spreads_ties() -> None:
    strategy = LeastConnections(ABC)
    assert {strategy.pick(None, 0.0).id for _ in range(3)} == {"a", "b", "c"}


def test_source_hash_is_sticky_and_only_moves_an_ejected_backends_keys() -> None:
    backends = [Backend(f"gw{i}") for i in range(5)]
    policy = OutlierPolicy(failures_consecutive_max=1, ejection_base_s=100.0)
    strategy = SourceHash(backends, policy)
    keys = [f"10.0.0.{i}".encode() for i in range(200)]
    before = {k: strategy.pick(k, 0.0) for k in keys}
    assert before == {k: strategy.pick(k, 0.0) for k in keys}
    assert len(set(before.values())) == 5
    victim = backends[2]
    strategy.on_start(victim)
    strategy.on_finish(victim, 0.1, False, 1.0)  # one failure ejects it
    after = {k: strategy.pick(k, 2.0) for k in keys}
    for key in keys:
        if before[key] != victim:
            assert after[key] == before[key]
        else:
            assert after[key] != victim


def test_source_hash_without_a_key_falls_back_to_round_robin() -> None:
    strategy = SourceHash(ABC)
    assert "".join(strategy.pick(None, 0.0).id for _ in range(4)) == "abca"


def test_factory_knows_every_name() -> None:
    kinds = {name: type(make_strategy(name, ABC)) for name in STRATEGY_NAMES}
    assert kinds == {
        "round-robin": RoundRobin,
        "weighted": SmoothWeighted,
        "least-connections": LeastConnections,
        "source-hash": SourceHash,
        "p2c-ewma": P2CEwma,
    }
    with pytest.raises(ValueError):
        make_strategy("random", ABC)
    with pytest.raises(NoBackendAvailable):
        make_strategy("round-robin", [])
    with pytest.raises(ValueError):
        make_strategy("round-robin", [Backend("a"), Backend("a")])


def test_splitmix_matches_the_reference_and_stays_in_range() -> None:
    assert SplitMix64(0).next_u64() == 0xE220A8397B1DCDAF
    draws = SplitMix64(42)
    values = [draws() for _ in range(1000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert values == [SplitMix64(42)() for _ in range(1)] + values[1:]


def test_public_names_are_pinned() -> None:
    assert set(cairn.balancing.__all__) == {
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
    }
    for name in cairn.balancing.__all__:
        assert hasattr(cairn.balancing, name)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_among_limits_a_pick_to_some_backends(name: str) -> None:
    backends = [Backend(f"node-{i}") for i in range(6)]
    strategy = make_strategy(name, backends, random=SplitMix64(5))
    replicas = {"node-1", "node-4"}
    for i in range(20):
        chosen = strategy.pick(f"10.0.0.{i}".encode(), float(i), among=replicas)
        assert chosen.id in replicas
    with pytest.raises(NoBackendAvailable):
        strategy.pick(None, 0.0, among={"node-99"})
