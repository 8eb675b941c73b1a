"""Virtual time: a clock that only moves when the simulator pops the next event.

Events are (time_us, sequence, callback). The sequence number breaks ties in insertion
order, so two runs that schedule the same events in the same order see the same trace.
Nothing here reads the real clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable


class EventQueue:
    def __init__(self) -> None:
        self.now_us = 0
        self._seq = 0
        self._heap: list[tuple[int, int, Callable[[], None]]] = []
        self.events_run = 0

    def at(self, time_us: int, callback: Callable[[], None]) -> None:
        assert time_us >= self.now_us, "cannot schedule in the past"
        self._seq += 1
        heapq.heappush(self._heap, (time_us, self._seq, callback))

    def after(self, delay_us: int, callback: Callable[[], None]) -> None:
        self.at(self.now_us + max(0, delay_us), callback)

    def run_until(self, time_us: int, max_events: int) -> None:
        """Run every event due up to `time_us` (bounded by `max_events` in total)."""
        heap = self._heap
        while heap and heap[0][0] <= time_us:
            assert self.events_run < max_events, f"more than {max_events} events"
            when, _, callback = heapq.heappop(heap)
            self.now_us = when
            self.events_run += 1
            callback()
        self.now_us = max(self.now_us, time_us)
