"""The lifecycle every peer a benchmark starts shares: a list of server processes that
`stop` terminates (then kills after a grace period), and use as a context manager."""

import subprocess
from types import TracebackType
from typing import Self

STOP_WAIT_SECONDS = 10.0


class PeerProcesses:
    """Base of a peer system: subclasses fill `processes` in `start`."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=STOP_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
