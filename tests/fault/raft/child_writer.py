"""The process the fault tests kill -9: it writes, and prints a line only once the write
is durable (after `sync()` or `save()` returned), flushing stdout each time.

    child_writer.py wal  DIR SEED   appends batches; prints "first last term hs_term"
    child_writer.py snap DIR SEED   saves snapshots; prints "index"
"""

import random
import sys
import zlib

from cairn.raft.snapshot_store import SnapshotStore
from cairn.raft.wal import HardState, Wal, WalEntry

WAL_SEGMENT_SIZE_BYTES_MAX = 4096
COMPACT_KEEP_ENTRIES = 40
BATCHES_MAX = 100_000


def payload(index: int, term: int) -> bytes:
    """Deterministic contents of entry `index`, so the parent can check them."""
    seed = zlib.crc32(f"{index}/{term}".encode())
    return seed.to_bytes(4, "little") * ((index * 7) % 50)


def snapshot_chunks(index: int) -> list[bytes]:
    chunk = zlib.crc32(str(index).encode()).to_bytes(4, "little") * 16384  # 64 KiB
    return [chunk] * (1 + index % 8)


def run_wal(directory: str, rng: random.Random) -> None:
    wal, recovered = Wal.open(directory, WAL_SEGMENT_SIZE_BYTES_MAX)
    term = max(recovered.hard_state.term, wal.term_at(wal.last_index) or 0, 1)
    last = wal.last_index
    for _ in range(BATCHES_MAX):
        if rng.random() < 0.15:  # a new term: vote, then entries of the new leader
            term += 1
            wal.set_hard_state(HardState(term, rng.randint(1, 3), last))
        count = rng.randint(1, 12)
        batch = [WalEntry(last + i, term, payload(last + i, term)) for i in range(1, count + 1)]
        wal.append(batch)
        first, last = last + 1, last + count
        if rng.random() < 0.05 and last > COMPACT_KEEP_ENTRIES:
            index = last - COMPACT_KEEP_ENTRIES
            compact_term = wal.term_at(index)
            assert compact_term is not None
            wal.compact(index, compact_term)
        wal.sync()
        print(f"{first} {last} {batch[0].term} {wal.durable_hard_state.term}", flush=True)


def run_snap(directory: str, rng: random.Random) -> None:
    store = SnapshotStore(directory)
    latest = store.load_latest()
    index = 0 if latest is None else latest.index
    for _ in range(BATCHES_MAX):
        index += rng.randint(1, 5)
        store.save(index, 1, b"conf", iter(snapshot_chunks(index)))
        print(index, flush=True)


def main() -> None:
    mode, directory, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    {"wal": run_wal, "snap": run_snap}[mode](directory, rng)


if __name__ == "__main__":
    main()
