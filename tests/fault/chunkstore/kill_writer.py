"""Helper process for the kill -9 test: a storm of concurrent puts and deletes.

Usage: python kill_writer.py DIRECTORY SEED

Runs 16 asyncio tasks against an `AsyncChunkStore` (fsync batch, small segments so that
segments roll and checkpoints are written during the storm). Every chunk's id is the
SHA-256 of its bytes, so any chunk read back can be checked without a record of it.
Lines on stdout, each flushed *after* the acknowledgement it reports:

    P <hex id>   a put was acknowledged
    d <hex id>   a delete is about to be issued (it may or may not happen)
    D <hex id>   the delete was acknowledged

The process runs until it is killed (or, as a bound, after OPS_MAX operations).
"""

import asyncio
import hashlib
import random
import sys

from cairn.chunkstore import AsyncChunkStore, StoreOptions
from cairn.chunkstore.store import CACHE_BEHIND_BYTES_DEFAULT

TASKS = 16
OPS_MAX = 20_000


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def worker(store: AsyncChunkStore, rng: random.Random, budget: list[int]) -> None:
    mine: list[bytes] = []
    while budget[0] > 0:
        budget[0] -= 1
        if mine and rng.random() < 0.2:
            cid = mine.pop(rng.randrange(len(mine)))
            emit(f"d {cid.hex()}")
            await store.delete(cid)
            emit(f"D {cid.hex()}")
            continue
        data = rng.randbytes(rng.choice((16, 200, 1000, 4000, 9000)))
        cid = hashlib.sha256(data).digest()
        await store.put(cid, data)
        emit(f"P {cid.hex()}")
        mine.append(cid)


async def main(directory: str, seed: int) -> None:
    # Odd seeds drop every durable byte from the page cache at each group commit (window
    # 0), even seeds only sealed segments (the default window is larger than a segment).
    options = StoreOptions(
        segment_bytes_max=48 * 1024,
        fsync="batch",
        cache_behind_bytes=0 if seed % 2 else CACHE_BEHIND_BYTES_DEFAULT,
    )
    store = await AsyncChunkStore.open(directory, options, threads_max=TASKS)
    budget = [OPS_MAX]
    await asyncio.gather(
        *(worker(store, random.Random(seed * 1000 + i), budget) for i in range(TASKS))
    )
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
