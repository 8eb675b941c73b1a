"""Pacing for background work: a byte-rate limiter and a stoppable periodic thread.

Compaction and scrubbing must not starve foreground IO, so each reads and writes through
a `RateLimiter` (a token bucket in bytes per second, with a burst of one second's worth).
Waiting is done on the worker's stop `threading.Event`, so `stop()` interrupts a wait at
once instead of sleeping it out; a stopped worker's limiter raises `Stopped` to unwind.
"""

import threading
from collections.abc import Callable

from cairn.runtime.clock import Clock, SystemClock

ERRORS_KEPT_MAX = 100


class Stopped(Exception):
    """The background worker was asked to stop while it waited."""


class RateLimiter:
    """At most `bytes_per_s` on average (0 = unlimited); `consume` blocks to keep it."""

    def __init__(
        self,
        bytes_per_s: int,
        *,
        clock: Clock | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        assert bytes_per_s >= 0, bytes_per_s
        self.bytes_per_s = bytes_per_s
        self._clock = clock or SystemClock()
        self._stop = stop or threading.Event()
        self._tokens = float(bytes_per_s)
        self._last = self._clock.monotonic()

    def consume(self, n_bytes: int) -> None:
        if self._stop.is_set():
            raise Stopped()
        if self.bytes_per_s == 0:
            return
        now = self._clock.monotonic()
        burst = float(self.bytes_per_s)
        self._tokens = min(burst, self._tokens + (now - self._last) * self.bytes_per_s)
        self._last = now
        self._tokens -= n_bytes
        if self._tokens < 0 and self._stop.wait(-self._tokens / self.bytes_per_s):
            raise Stopped()


class PeriodicWorker:
    """Runs `step()` in a daemon thread, then waits `interval_s`, until `stop()`."""

    def __init__(self, name: str, step: Callable[[], object], interval_s: float) -> None:
        self.stop_event = threading.Event()
        self.errors: list[BaseException] = []
        self._step = step
        self._interval_s = interval_s
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self.stop_event.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._step()
            except Stopped:
                return
            except Exception as exc:  # kept for the owner to report; the loop goes on
                self.errors = [*self.errors[-(ERRORS_KEPT_MAX - 1) :], exc]
            if self.stop_event.wait(self._interval_s):
                return
