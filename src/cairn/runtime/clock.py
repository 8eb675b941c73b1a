"""The `Clock` port: monotonic time for timeouts and wall time for timestamps."""

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards. For timeouts."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch. For timestamps shown to people, never for timeouts."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()
