"""What the object service needs from the layers below, as `typing.Protocol`s.

The real implementations are `node.meta_client.MetaClient` and
`node.chunk_client.ReplicatedChunks`; tests pass in-memory twins. Naming the few calls the
gateway makes keeps the service testable without processes and shows at a glance what it
depends on.
"""

from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from cairn.meta.buckets import Bucket, StoragePolicy, VersioningState
from cairn.meta.index import DeleteResult, ListPage, ObjectVersion, PutResult
from cairn.meta.manifest import Manifest
from cairn.meta.write_condition import WriteCondition
from cairn.node.chunk_client import Level

T = TypeVar("T")


class MetaPort(Protocol):
    async def create_bucket(
        self, name: str, owner: str, policy: StoragePolicy | None = None
    ) -> Bucket: ...

    async def get_bucket(self, name: str) -> Bucket: ...

    async def list_buckets(self, owner: str | None = None) -> list[Bucket]: ...

    async def delete_bucket(self, name: str, owner: str, settle_seconds: float = 0.0) -> None: ...

    async def put_object(
        self,
        bucket: str,
        key: str,
        manifest: Manifest,
        versioning: VersioningState,
        condition: WriteCondition | None = None,
    ) -> PutResult: ...

    async def delete_object(
        self,
        bucket: str,
        key: str,
        versioning: VersioningState,
        version_id: str | None = None,
    ) -> DeleteResult: ...

    async def head_object(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> ObjectVersion: ...

    async def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        continuation_token: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage: ...


class ChunkPort(Protocol):
    async def write(self, chunk_id: bytes, record: bytes, level: Level = "quorum") -> Any: ...

    async def present(self, chunk_ids: Iterable[bytes], level: Level = "quorum") -> set[bytes]: ...

    async def read(self, chunk_id: bytes, verify: Callable[[bytes], T]) -> T: ...
