"""In-memory twins of the metadata client and the replicated chunk layer, built on the real
replicated machines (bucket table, index shard), so the object service runs without
processes."""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

import pytest

from cairn.base.errors import RemoteError
from cairn.codec import Chunker, ChunkingParams
from cairn.gateway.keys import cluster_key
from cairn.gateway.objects import ObjectService
from cairn.meta.buckets import (
    BeginDelete,
    Bucket,
    BucketTable,
    CancelDelete,
    CreateBucket,
    DeleteBucket,
    StoragePolicy,
    VersioningState,
)
from cairn.meta.buckets import (
    encode_command as encode_bucket_command,
)
from cairn.meta.index import (
    DeleteObject,
    DeleteResult,
    IndexShard,
    ListPage,
    ObjectVersion,
    PutObject,
    PutResult,
    encode_command,
)
from cairn.meta.machine import MetaError
from cairn.meta.manifest import Manifest
from cairn.meta.write_condition import WriteCondition
from cairn.node.chunk_client import ChunkUnavailable, InsufficientReplicas

T = TypeVar("T")
SECRET = "unit-test-cluster-secret"


class FakeMeta:
    def __init__(self) -> None:
        self.buckets = BucketTable()
        self.index = IndexShard(1)
        self._index_no = 0
        self.puts = 0

    def _apply(self, machine: Any, data: bytes) -> Any:
        self._index_no += 1
        result = machine.apply(self._index_no, data)
        if isinstance(result, MetaError):
            raise RemoteError(result.code, str(result))
        return result

    async def create_bucket(
        self, name: str, owner: str, policy: StoragePolicy | None = None
    ) -> Bucket:
        command = CreateBucket(name, owner, 1.0, policy or StoragePolicy())
        return self._apply(self.buckets, encode_bucket_command(command))  # type: ignore[no-any-return]

    async def get_bucket(self, name: str) -> Bucket:
        try:
            return self.buckets.get(name)
        except MetaError as exc:
            raise RemoteError(exc.code, str(exc)) from None

    async def list_buckets(self, owner: str | None = None) -> list[Bucket]:
        return self.buckets.buckets(owner)

    async def delete_bucket(self, name: str, owner: str, settle_seconds: float = 0.0) -> None:
        self._apply(self.buckets, encode_bucket_command(BeginDelete(name, owner)))
        count = self.index.stats(name).versions
        try:
            self._apply(self.buckets, encode_bucket_command(DeleteBucket(name, owner, count)))
        except RemoteError:
            self._apply(self.buckets, encode_bucket_command(CancelDelete(name)))
            raise

    async def put_object(
        self,
        bucket: str,
        key: str,
        manifest: Manifest,
        versioning: VersioningState,
        condition: WriteCondition | None = None,
    ) -> PutResult:
        self.puts += 1
        return self._apply(  # type: ignore[no-any-return]
            self.index, encode_command(PutObject(bucket, key, manifest, versioning, condition))
        )

    async def delete_object(
        self,
        bucket: str,
        key: str,
        versioning: VersioningState,
        version_id: str | None = None,
    ) -> DeleteResult:
        command = DeleteObject(bucket, key, 2.0, versioning, version_id)
        return self._apply(self.index, encode_command(command))  # type: ignore[no-any-return]

    async def head_object(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> ObjectVersion:
        try:
            return self.index.head(bucket, key, version_id)
        except MetaError as exc:
            raise RemoteError(exc.code, str(exc)) from None

    async def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        continuation_token: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage:
        try:
            return self.index.list_objects(
                bucket, prefix, delimiter, start_after, continuation_token, max_keys
            )
        except MetaError as exc:
            raise RemoteError(exc.code, str(exc)) from None


class FakeChunks:
    """Stores records in a dict; counts calls; can be told to fail or corrupt."""

    def __init__(self) -> None:
        self.records: dict[bytes, bytes] = {}
        self.writes = 0
        self.present_calls: list[list[bytes]] = []
        self.reads = 0
        self.in_flight = 0
        self.in_flight_max = 0
        self.fail_writes = False
        self.corrupt_once: set[bytes] = set()

    async def write(self, chunk_id: bytes, record: bytes, level: str = "quorum") -> None:
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)
        try:
            await asyncio.sleep(0)
            if self.fail_writes:
                error = InsufficientReplicas.__new__(InsufficientReplicas)
                Exception.__init__(error, "fake: 0 of 2 acks")
                raise error
            self.writes += 1
            self.records[chunk_id] = record
        finally:
            self.in_flight -= 1

    async def present(self, chunk_ids: Iterable[bytes], level: str = "quorum") -> set[bytes]:
        ids = list(chunk_ids)
        self.present_calls.append(ids)
        return {c for c in ids if c in self.records}

    async def read(self, chunk_id: bytes, verify: Callable[[bytes], T]) -> T:
        self.reads += 1
        record = self.records.get(chunk_id)
        if record is None:
            raise ChunkUnavailable(chunk_id, [("fake", "not_found")])
        if chunk_id in self.corrupt_once:  # one bad replica; the next one is fine
            self.corrupt_once.discard(chunk_id)
            try:
                return verify(record[:-1] + bytes([record[-1] ^ 1]))
            except Exception:
                self.reads += 1
        return verify(record)


SMALL_CHUNKS = ChunkingParams(
    min_size_bytes=16 * 1024, avg_size_bytes=64 * 1024, max_size_bytes=256 * 1024
)


@pytest.fixture
def meta() -> FakeMeta:
    return FakeMeta()


@pytest.fixture
def chunks() -> FakeChunks:
    return FakeChunks()


@pytest.fixture
async def service(meta: FakeMeta, chunks: FakeChunks) -> AsyncIterator[ObjectService]:
    svc = ObjectService(meta, chunks, cluster_key(SECRET), chunker=Chunker(SMALL_CHUNKS))
    yield svc
    svc.close()
