"""A node's data directory: created on first start, locked while a process uses it.

Two processes writing one data directory would corrupt it, so the first one takes an
exclusive `flock` on `<data dir>/LOCK` and holds it for its lifetime; the kernel drops
the lock when the process dies, even by kill -9, so a restart never finds a stale lock.
"""

import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any

from cairn.base.errors import CairnError
from cairn.runtime.fsync import fsync_directory


class DataDirInUse(CairnError):
    """Another live process holds this data directory."""


class DataDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_file: IO[bytes] | None = None

    def acquire(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        lock_file = open(self.path / "LOCK", "ab")  # noqa: SIM115 - held for the process lifetime
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise DataDirInUse(f"data dir {self.path} is in use by another process") from None
        self._lock_file = lock_file

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """Write `name` atomically: temp file, fsync, rename, fsync the directory."""
        target = self.path / name
        temp = target.with_suffix(".tmp")
        with open(temp, "w") as file:
            json.dump(data, file, indent=2, sort_keys=True)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
        fsync_directory(self.path)

    def release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
