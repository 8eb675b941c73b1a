"""Raft snapshot files: written atomically, checked on load, the last two kept.

Theory of operation
-------------------
A snapshot is one file, `<index>-<term>.snap` (both zero padded to 20 digits), holding::

    header (44 bytes, little endian)
        magic  b"CSNP"      4
        version u16         2   (SNAPSHOT_VERSION)
        reserved u16        2   (zero)
        index u64           8   last log index the snapshot covers
        term u64            8   term of that entry
        config length u32   4   membership configuration bytes (opaque)
        data length u64     8   state machine bytes (opaque)
        body crc32c u32     4   over the configuration, then the data
        header crc32c u32   4   over the 40 bytes before it
    configuration bytes, then data bytes

`save` streams the body (bytes, or an iterator of chunks from InstallSnapshot) into
`<name>.tmp`, computing the length and checksum as it goes, writes the real header over
a zeroed placeholder, fsyncs the file, renames it into place and fsyncs the directory. A
crash at any point leaves either the old set of snapshots or the old set plus the new
one; never a half-written `.snap` (a leftover `.tmp` is ignored and removed). Then all
but the newest `SNAPSHOT_KEEP_COUNT` snapshots are deleted (again when the store is
opened, in case a crash came between the rename and the deletion).

`load_latest` tries the snapshots newest first and returns the first that passes every
check (sizes, both checksums, name matches header): the checksum is computed before
writing and verified after reading. One that fails is skipped, logged and listed in
`StoredSnapshot.skipped`, so a snapshot torn by a failing disk falls back to the older one
instead of stopping the node; the WAL keeps entries from the older snapshot only if it was
compacted no further, which the driver checks (snapshot index >= WAL floor).

Blocking IO: from asyncio, run `save` and `load_latest` in a thread.
"""

import logging
import os
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cairn.base.checksum import Buffer, crc32c, crc32c_extend
from cairn.base.errors import CairnError
from cairn.runtime.fsync import fsync_directory

__all__ = [
    "SNAPSHOT_KEEP_COUNT",
    "SkippedSnapshot",
    "SnapshotCorrupt",
    "SnapshotStore",
    "StoredSnapshot",
]

log = logging.getLogger(__name__)

SNAPSHOT_MAGIC = b"CSNP"
SNAPSHOT_VERSION = 1
SNAPSHOT_KEEP_COUNT = 2
CONFIG_BYTES_MAX = 16 * 1024 * 1024
SNAPSHOT_DATA_BYTES_MAX = 64 * 1024 * 1024 * 1024
_HEADER = struct.Struct("<4sHHQQIQI")
_HEADER_CRC = struct.Struct("<I")
SNAPSHOT_HEADER_BYTES = _HEADER.size + _HEADER_CRC.size  # 44
_NAME = re.compile(r"^(\d{20})-(\d{20})\.snap$")
_TMP_SUFFIX = ".tmp"


class SnapshotCorrupt(CairnError):
    """A snapshot file fails a check; names the file and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SkippedSnapshot:
    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    index: int
    term: int
    config: bytes
    data: bytes
    path: str
    skipped: tuple[SkippedSnapshot, ...] = ()
    """Newer snapshot files that failed their checks and were passed over."""


def _snapshot_name(index: int, term: int) -> str:
    return f"{index:020d}-{term:020d}.snap"


def _encode_header(index: int, term: int, config_len: int, data_len: int, body_crc: int) -> bytes:
    head = _HEADER.pack(
        SNAPSHOT_MAGIC, SNAPSHOT_VERSION, 0, index, term, config_len, data_len, body_crc
    )
    return head + _HEADER_CRC.pack(crc32c(head))


class SnapshotStore:
    """Snapshot files of one Raft group in one directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._dir = Path(directory)
        if not self._dir.is_dir():
            self._dir.mkdir(parents=True)
            fsync_directory(self._dir.parent)
        for leftover in self._dir.glob("*" + _TMP_SUFFIX):
            leftover.unlink()  # a save that crashed; it was never visible
        self._prune()  # a save that crashed after its rename, before pruning

    def save(
        self,
        index: int,
        term: int,
        config: bytes,
        data: bytes | bytearray | memoryview | Iterable[bytes],
    ) -> Path:
        """Write a snapshot atomically and durably; return its path. Then keep only the
        newest `SNAPSHOT_KEEP_COUNT`. `data` may be one buffer or an iterator of chunks."""
        if len(config) > CONFIG_BYTES_MAX:
            raise ValueError(f"config {len(config)} bytes > CONFIG_BYTES_MAX")
        final = self._dir / _snapshot_name(index, term)
        tmp = final.with_name(final.name + _TMP_SUFFIX)
        chunks: Iterable[Buffer] = (data,) if isinstance(data, Buffer) else data
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                out.write(bytes(SNAPSHOT_HEADER_BYTES))
                out.write(config)
                body_crc = crc32c(config)
                data_len = 0
                for chunk in chunks:
                    body_crc = crc32c_extend(body_crc, chunk)
                    data_len += len(chunk)
                    if data_len > SNAPSHOT_DATA_BYTES_MAX:
                        raise ValueError("snapshot data > SNAPSHOT_DATA_BYTES_MAX")
                    out.write(chunk)
            header = _encode_header(index, term, len(config), data_len, body_crc)
            os.pwrite(fd, header, 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, final)
        fsync_directory(self._dir)
        self._prune()
        return final

    def _listed(self) -> list[tuple[int, int, Path]]:
        """(index, term, path) of every snapshot file, newest first."""
        found = []
        for child in self._dir.iterdir():
            match = _NAME.match(child.name)
            if match:
                found.append((int(match.group(1)), int(match.group(2)), child))
        found.sort(reverse=True)
        return found

    def paths(self) -> list[Path]:
        """Snapshot files, newest first (valid or not)."""
        return [p for _, _, p in self._listed()]

    def _prune(self) -> None:
        old = self._listed()[SNAPSHOT_KEEP_COUNT:]
        for _, _, path in old:
            path.unlink()
        if old:
            fsync_directory(self._dir)

    def load_latest(self) -> StoredSnapshot | None:
        """The newest snapshot that passes its checks, or None if there is none.

        Files that fail are logged and listed in the result's `skipped`.
        """
        skipped: list[SkippedSnapshot] = []
        for index, term, path in self._listed():
            try:
                config, data = _read_checked(path, index, term)
            except SnapshotCorrupt as exc:
                log.warning("skipping corrupt snapshot %s: %s", path, exc.reason)
                skipped.append(SkippedSnapshot(str(path), exc.reason))
                continue
            return StoredSnapshot(index, term, config, data, str(path), tuple(skipped))
        return None


def _read_checked(path: Path, index: int, term: int) -> tuple[bytes, bytes]:
    """Read a snapshot file and verify it; raise SnapshotCorrupt naming what failed."""
    where = str(path)
    try:
        with path.open("rb") as f:
            buf = f.read()
    except OSError as exc:
        raise SnapshotCorrupt(where, f"unreadable: {exc}") from exc
    if len(buf) < SNAPSHOT_HEADER_BYTES:
        raise SnapshotCorrupt(where, "header truncated")
    fields = _HEADER.unpack_from(buf, 0)
    magic, version, reserved, h_index, h_term, config_len, data_len, body_crc = fields
    (header_crc,) = _HEADER_CRC.unpack_from(buf, _HEADER.size)
    if magic != SNAPSHOT_MAGIC:
        raise SnapshotCorrupt(where, "bad magic")
    if header_crc != crc32c(memoryview(buf)[: _HEADER.size]):
        raise SnapshotCorrupt(where, "header checksum mismatch")
    if version != SNAPSHOT_VERSION or reserved:
        raise SnapshotCorrupt(where, f"unsupported version {version}")
    if (h_index, h_term) != (index, term):
        raise SnapshotCorrupt(where, f"header says {h_index}-{h_term}, name says {index}-{term}")
    if len(buf) != SNAPSHOT_HEADER_BYTES + config_len + data_len:
        raise SnapshotCorrupt(where, f"size {len(buf)} does not match the header")
    body = memoryview(buf)[SNAPSHOT_HEADER_BYTES:]
    if crc32c(body) != body_crc:
        raise SnapshotCorrupt(where, "body checksum mismatch")
    return bytes(body[:config_len]), bytes(body[config_len:])
