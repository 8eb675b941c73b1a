"""`AsyncChunkStore`: the asyncio face of `ChunkStore`.

Every call runs the blocking `ChunkStore` method on a dedicated thread pool
(`threads_max` threads), so the event loop never waits on a disk. Group commit happens
in those threads: with the `batch` policy, concurrent `put`s from many tasks append
their records one after another and then share one fsync (see `store.py`). The pool's
size bounds how many calls are in the disk at once; further calls queue in the pool.
`pread`, `pwritev` and `fsync` release the GIL, so reads proceed while a group commit
waits on the disk.
"""

import asyncio
import functools
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from cairn.base.checksum import Buffer
from cairn.chunkstore.store import ChunkStore, StoreOptions, StoreUsage

T = TypeVar("T")
THREADS_MAX_DEFAULT = 32


class AsyncChunkStore:
    def __init__(self, store: ChunkStore, *, threads_max: int = THREADS_MAX_DEFAULT) -> None:
        assert threads_max >= 1, threads_max
        self.store = store
        self._pool = ThreadPoolExecutor(threads_max, thread_name_prefix="chunkstore")

    @classmethod
    async def open(
        cls,
        directory: str,
        options: StoreOptions | None = None,
        *,
        threads_max: int = THREADS_MAX_DEFAULT,
    ) -> "AsyncChunkStore":
        store = await asyncio.to_thread(ChunkStore.open, directory, options)
        return cls(store, threads_max=threads_max)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    async def put(self, chunk_id: bytes, data: Buffer) -> bool:
        return await self._run(self.store.put, chunk_id, data)

    async def get(self, chunk_id: bytes) -> bytes:
        return await self._run(self.store.get, chunk_id)

    async def has(self, chunk_ids: Iterable[bytes]) -> set[bytes]:
        return await self._run(self.store.has, list(chunk_ids))

    async def delete(self, chunk_id: bytes) -> bool:
        return await self._run(self.store.delete, chunk_id)

    async def usage(self) -> StoreUsage:
        return await self._run(self.store.usage)

    async def close(self) -> None:
        try:
            await self._run(self.store.close)
        finally:
            self._pool.shutdown(wait=True)
