"""A seeded network between simulated nodes: loss, delay, duplication, reordering, partitions.

Every decision draws from the simulator's one seeded `random.Random`, in the order the
messages are sent, so a seed replays exactly. Delays are drawn per message, which reorders
messages on the same link; a small fraction get a long delay. A partition is a set of
blocked directed links, so it can be one-way.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cairn.sim.scheduler import EventQueue

T = TypeVar("T")


@dataclass
class NetworkFaults:
    drop_probability: float = 0.0
    duplicate_probability: float = 0.0
    delay_min_us: int = 500
    delay_max_us: int = 8_000
    long_delay_probability: float = 0.0
    long_delay_max_us: int = 60_000


class SimNetwork(Generic[T]):
    def __init__(
        self,
        events: EventQueue,
        rng: random.Random,
        deliver: Callable[[int, int, T], None],
    ) -> None:
        self._events = events
        self._rng = rng
        self._deliver = deliver
        self.faults = NetworkFaults()
        self.blocked: set[tuple[int, int]] = set()
        self.sent = 0
        self.dropped = 0
        self.duplicated = 0

    def send(self, frm: int, to: int, message: T) -> None:
        self.sent += 1
        faults = self.faults
        rng = self._rng
        if (frm, to) in self.blocked or rng.random() < faults.drop_probability:
            self.dropped += 1
            return
        copies = 1
        if rng.random() < faults.duplicate_probability:
            copies = 2
            self.duplicated += 1
        for _ in range(copies):
            if rng.random() < faults.long_delay_probability:
                delay = rng.randint(faults.delay_max_us, faults.long_delay_max_us)
            else:
                delay = rng.randint(faults.delay_min_us, faults.delay_max_us)
            self._events.after(delay, lambda: self._arrive(frm, to, message))

    def _arrive(self, frm: int, to: int, message: T) -> None:
        # A partition made while the message was in flight drops it too.
        if (frm, to) in self.blocked:
            self.dropped += 1
            return
        self._deliver(frm, to, message)

    def partition(self, side_a: set[int], side_b: set[int], *, one_way: bool = False) -> None:
        for a in side_a:
            for b in side_b:
                self.blocked.add((a, b))
                if not one_way:
                    self.blocked.add((b, a))

    def isolate(self, node: int, nodes: set[int]) -> None:
        self.partition({node}, nodes - {node})

    def heal(self) -> None:
        self.blocked.clear()
