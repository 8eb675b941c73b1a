"""`cairn bench balance`: every request strategy on the same simulated backends.

A discrete-event simulation in virtual time, seeded, so a run replays exactly. Requests
arrive as a Poisson stream from `clients` client addresses (the source-hash key) and go to
the backend the strategy picks. Each backend has `workers` parallel workers and a FIFO queue
of at most `queue_depth_max` requests (a full queue rejects at once: a failure with no
latency). Service times are exponential with the backend's mean. The default backends:

| backend | weight | mean service | behaviour                                            |
|---------|--------|--------------|------------------------------------------------------|
| fast-1  | 3      | 10 ms        |                                                      |
| fast-2  | 3      | 10 ms        |                                                      |
| slow    | 1      | 60 ms        | about one sixth of a fast backend's capacity         |
| flaky   | 3      | 10 ms        | fails every request after 2 ms during the fault window |

Per strategy we report each backend's share of requests, the p50 and p99 latency of
*successful* requests (queueing included), the fraction that failed and how many times a
backend was ejected. Outlier ejection uses a 5 s base backoff so ejection, a failed probe
and recovery all happen within the default run; `ejection=False` turns it off to show
what it buys.
"""

import heapq
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cairn.balancing import STRATEGY_NAMES, Backend, OutlierPolicy, make_strategy
from cairn.balancing.pool import PooledStrategy

JsonDict = dict[str, Any]  # JSON-shaped results for `emit_json`

DEFAULT_DURATION_S = 40.0
DEFAULT_RATE_PER_S = 400.0
DEFAULT_SEED = 1
WORKERS_PER_BACKEND = 4
QUEUE_DEPTH_MAX = 256
CLIENT_COUNT = 256
FAULT_WINDOW_S = (10.0, 25.0)
FAILURE_LATENCY_S = 0.002
REQUEST_COUNT_MAX = 2_000_000
SIM_POLICY = OutlierPolicy(ejection_base_s=5.0, probe_timeout_s=2.0)


@dataclass(frozen=True, slots=True)
class SimBackend:
    name: str
    weight: int
    mean_service_s: float
    fault_window_s: tuple[float, float] | None = None


DEFAULT_BACKENDS = (
    SimBackend("fast-1", 3, 0.010),
    SimBackend("fast-2", 3, 0.010),
    SimBackend("slow", 1, 0.060),
    SimBackend("flaky", 3, 0.010, FAULT_WINDOW_S),
)


@dataclass(slots=True)
class _Server:
    spec: SimBackend
    backend: Backend
    busy: int = 0
    queue: deque[float] = field(default_factory=deque)  # arrival times


@dataclass(slots=True)
class _Tally:
    requests: dict[str, int]
    latencies_s: list[float] = field(default_factory=list)
    failures: int = 0


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class _Simulation:
    """One strategy, one seeded run. Events: (time, sequence, kind, server index, arrival)."""

    ARRIVAL, DONE_OK, DONE_FAILED = 0, 1, 2

    def __init__(
        self,
        strategy_name: str,
        backends: Sequence[SimBackend],
        seed: int,
        policy: OutlierPolicy,
    ) -> None:
        self.rng = random.Random(seed)
        self.servers = [_Server(b, Backend(b.name, b.weight)) for b in backends]
        self.strategy: PooledStrategy = make_strategy(
            strategy_name,
            [s.backend for s in self.servers],
            random=random.Random(seed + 1).random,
            policy=policy,
        )
        self.by_id = {s.backend.id: i for i, s in enumerate(self.servers)}
        self.events: list[tuple[float, int, int, int, float]] = []
        self.sequence = 0
        self.tally = _Tally({b.name: 0 for b in backends})

    def _push(self, when: float, kind: int, server: int, arrival: float) -> None:
        self.sequence += 1
        heapq.heappush(self.events, (when, self.sequence, kind, server, arrival))

    def _start(self, index: int, arrival: float, now: float) -> None:
        server = self.servers[index]
        server.busy += 1
        window = server.spec.fault_window_s
        if window is not None and window[0] <= now < window[1]:
            self._push(now + FAILURE_LATENCY_S, self.DONE_FAILED, index, arrival)
        else:
            service = self.rng.expovariate(1.0 / server.spec.mean_service_s)
            self._push(now + service, self.DONE_OK, index, arrival)

    def _arrive(self, now: float) -> None:
        client = self.rng.randrange(CLIENT_COUNT)
        key = bytes((10, 0, client // 256, client % 256))
        backend = self.strategy.pick(key, now)
        index = self.by_id[backend.id]
        self.strategy.on_start(backend)
        self.tally.requests[backend.id] += 1
        server = self.servers[index]
        if server.busy < WORKERS_PER_BACKEND:
            self._start(index, now, now)
        elif len(server.queue) < QUEUE_DEPTH_MAX:
            server.queue.append(now)
        else:
            self.tally.failures += 1
            self.strategy.on_finish(backend, 0.0, False, now)

    def _done(self, index: int, arrival: float, ok: bool, now: float) -> None:
        server = self.servers[index]
        server.busy -= 1
        latency = now - arrival
        if ok:
            self.tally.latencies_s.append(latency)
        else:
            self.tally.failures += 1
        self.strategy.on_finish(server.backend, latency, ok, now)
        if server.queue:
            self._start(index, server.queue.popleft(), now)

    def run(self, duration_s: float, rate_per_s: float) -> JsonDict:
        self._push(self.rng.expovariate(rate_per_s), self.ARRIVAL, -1, 0.0)
        handled = 0
        while self.events and handled < 3 * REQUEST_COUNT_MAX:
            handled += 1
            now, _, kind, index, arrival = heapq.heappop(self.events)
            if kind == self.ARRIVAL:
                self._arrive(now)
                following = now + self.rng.expovariate(rate_per_s)
                if following < duration_s:
                    self._push(following, self.ARRIVAL, -1, 0.0)
            else:
                self._done(index, arrival, kind == self.DONE_OK, now)
        return self._figures()

    def _figures(self) -> JsonDict:
        total = sum(self.tally.requests.values())
        latencies = sorted(self.tally.latencies_s)
        return {
            "requests": total,
            "share": {name: count / total for name, count in self.tally.requests.items()},
            "p50_ms": 1000 * _percentile(latencies, 0.50),
            "p99_ms": 1000 * _percentile(latencies, 0.99),
            "failed_fraction": self.tally.failures / total,
            "ejections": self.strategy.outliers.ejections_total,
        }


def run(
    strategies: Sequence[str] = STRATEGY_NAMES,
    duration_s: float = DEFAULT_DURATION_S,
    rate_per_s: float = DEFAULT_RATE_PER_S,
    seed: int = DEFAULT_SEED,
    backends: Sequence[SimBackend] = DEFAULT_BACKENDS,
    ejection: bool = True,
    progress: Callable[[str], None] | None = None,
) -> JsonDict:
    """Simulate every strategy with the same seed; returns config and per-strategy figures."""
    if duration_s <= 0 or rate_per_s <= 0 or duration_s * rate_per_s > REQUEST_COUNT_MAX:
        raise ValueError(f"duration x rate must be positive and at most {REQUEST_COUNT_MAX}")
    unknown = set(strategies) - set(STRATEGY_NAMES)
    if unknown:
        raise ValueError(f"unknown strategies: {sorted(unknown)}")
    policy = SIM_POLICY if ejection else OutlierPolicy(failures_consecutive_max=0)
    results: JsonDict = {}
    for name in strategies:
        if progress:
            progress(f"simulating {name}")
        results[name] = _Simulation(name, backends, seed, policy).run(duration_s, rate_per_s)
    return {
        "benchmark": "balance",
        "config": {
            "duration_s": duration_s,
            "rate_per_s": rate_per_s,
            "seed": seed,
            "outlier_ejection": ejection,
            "workers_per_backend": WORKERS_PER_BACKEND,
            "queue_depth_max": QUEUE_DEPTH_MAX,
            "clients": CLIENT_COUNT,
            "backends": [
                {
                    "name": b.name,
                    "weight": b.weight,
                    "mean_service_ms": 1000 * b.mean_service_s,
                    "fault_window_s": list(b.fault_window_s) if b.fault_window_s else None,
                }
                for b in backends
            ],
        },
        "strategies": results,
    }
