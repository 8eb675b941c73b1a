"""The scrubber: re-read every live record on a schedule and report corruption.

Theory of operation
-------------------
A pass takes a snapshot of the live (id, location) pairs, sorts it by location so the
reads are sequential, and re-reads and checks each record at most `io_bytes_per_s_max`.
A record that fails its checksum (or no longer matches its id) is quarantined by the
store - dropped from the index, so it is never served and `has` reports it missing - and
reported to `on_corrupt` and in the pass result, so the node can fetch a good copy from
another replica and put it again. Records that moved or were deleted during the pass
are skipped. Passes repeat every `interval_s`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from cairn.chunkstore.errors import StoreClosed
from cairn.chunkstore.pacing import PeriodicWorker, RateLimiter
from cairn.chunkstore.store import ChunkStore
from cairn.runtime.clock import Clock


@dataclass
class ScrubResult:
    records_checked: int = 0
    bytes_read: int = 0
    corrupt_ids: list[bytes] = field(default_factory=list)


class Scrubber:
    def __init__(
        self,
        store: ChunkStore,
        *,
        io_bytes_per_s_max: int = 32 * 1024 * 1024,
        interval_s: float = 24 * 3600.0,
        on_corrupt: Callable[[bytes], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.on_corrupt = on_corrupt
        self.passes: list[ScrubResult] = []
        self._worker = PeriodicWorker("chunkstore-scrubber", self._step, interval_s)
        self._limiter = RateLimiter(io_bytes_per_s_max, clock=clock, stop=self._worker.stop_event)

    def run_once(self) -> ScrubResult:
        result = ScrubResult()
        snapshot = sorted(self.store.live_locations(), key=lambda item: item[1])
        for chunk_id, loc in snapshot:
            self._limiter.consume(loc.record_bytes)
            result.records_checked += 1
            result.bytes_read += loc.record_bytes
            if not self.store.verify(chunk_id, loc):
                result.corrupt_ids.append(chunk_id)
                if self.on_corrupt is not None:
                    self.on_corrupt(chunk_id)
        return result

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    @property
    def errors(self) -> list[BaseException]:
        return self._worker.errors

    def _step(self) -> None:
        try:
            self.passes = [*self.passes[-9:], self.run_once()]
        except StoreClosed:
            self._worker.stop_event.set()
