"""The Python SDK: buckets and objects over the gateways' native HTTP API.

Theory of operation. A `CairnClient` knows every gateway of the cluster (from
`cluster.json`) and picks one per request with a balancing strategy from
`cairn.balancing` (p2c over an EWMA of latency by default), fed with each request's time
to response headers and its outcome, so a slow or failing gateway gets less traffic and
is ejected for a while after repeated failures. A request that cannot reach a gateway
(connection refused, reset before an answer, timeout) is retried on another one, each
gateway at most once per request. Retrying is safe for every operation whose body can be
produced again (bytes, a file path); a PUT from an async iterator is retried only if the
connection was never made, since its body may be half consumed.

Bodies stream both ways: `put` sends a file in pieces of `PIECE_BYTES` (never the whole
file in memory) with its `Content-Length`, `get` writes to a file as the bytes arrive.
`progress` callbacks get the byte count of each piece, for progress bars.

Errors from a gateway arrive as JSON `{"code", "message"}` (and the `X-Cairn-Error-Code`
header, for HEAD) and are raised as the classes of `cairn.client.errors`.

`SyncCairnClient` wraps the async client with a private event loop for scripts.
"""

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol, TypeVar

import aiohttp

from cairn.balancing import Backend, PooledStrategy, make_strategy
from cairn.client import protocol
from cairn.client.cluster_file import load_cluster_file
from cairn.client.errors import CairnClientError, NoGatewayAvailable, Unavailable, error_for
from cairn.runtime.rng import SystemRng

T = TypeVar("T")
PIECE_BYTES = 1 << 20
TIMEOUT_S = 600.0
CONNECT_TIMEOUT_S = 5.0
LIST_PAGE_KEYS = 1000
Level = Literal["one", "quorum", "all"]
Progress = Callable[[int], None]
PutSource = bytes | bytearray | memoryview | str | os.PathLike[str] | AsyncIterable[bytes]


class Fenced(Protocol):
    """What a fenced write needs of a lock grant (`cairn.client.locks.Lock` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def token(self) -> int: ...


@dataclass(frozen=True, slots=True)
class PutResult:
    etag: str
    size: int
    version_id: str
    chunks: int
    new_chunks: int
    new_bytes: int
    stored_bytes: int


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    size: int
    """The whole object's size (a ranged GET's `content_length` may be smaller)."""
    etag: str
    version_id: str
    last_modified: str
    content_type: str
    content_length: int
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BucketInfo:
    name: str
    created_s: float
    versioning: str


@dataclass(frozen=True, slots=True)
class ListedObject:
    key: str
    size: int
    etag: str
    last_modified_s: float
    version_id: str


@dataclass(frozen=True, slots=True)
class ListPage:
    objects: list[ListedObject]
    common_prefixes: list[str]
    is_truncated: bool
    next_continuation_token: str | None


def _info(headers: Any, status: int) -> ObjectInfo:
    length = int(headers.get("Content-Length", "0"))
    size = length
    content_range = headers.get("Content-Range", "")
    if status == 206 and "/" in content_range:
        size = int(content_range.rsplit("/", 1)[1])
    prefix = protocol.META_HEADER_PREFIX.lower()
    metadata = {
        k[len(prefix) :].lower(): v for k, v in headers.items() if k.lower().startswith(prefix)
    }
    return ObjectInfo(
        size=size,
        etag=headers.get("ETag", "").strip('"'),
        version_id=headers.get(protocol.VERSION_ID_HEADER, ""),
        last_modified=headers.get("Last-Modified", ""),
        content_type=headers.get("Content-Type", ""),
        content_length=length,
        metadata=metadata,
    )


class _Body:
    """Makes a request body for each attempt, and knows whether it can make another."""

    def __init__(self, source: PutSource, progress: Progress | None) -> None:
        self._source = source
        self._progress = progress
        self._used = False
        self.size: int | None = None
        if isinstance(source, bytes | bytearray | memoryview):
            self.size = len(source)
        elif isinstance(source, str | os.PathLike):
            self.size = Path(source).stat().st_size

    @property
    def replayable(self) -> bool:
        return not isinstance(self._source, AsyncIterable) or not self._used

    def make(self) -> AsyncIterator[bytes]:
        self._used = True
        source = self._source
        if isinstance(source, bytes | bytearray | memoryview):
            return self._from_buffer(memoryview(source).cast("B"))
        if isinstance(source, str | os.PathLike):
            return self._from_file(Path(source))
        return self._from_iterable(source)

    async def _from_buffer(self, view: memoryview) -> AsyncIterator[bytes]:
        for start in range(0, len(view), PIECE_BYTES):
            piece = bytes(view[start : start + PIECE_BYTES])
            yield piece
            if self._progress:
                self._progress(len(piece))

    async def _from_file(self, path: Path) -> AsyncIterator[bytes]:
        with path.open("rb") as file:
            while piece := file.read(PIECE_BYTES):
                yield piece
                if self._progress:
                    self._progress(len(piece))

    async def _from_iterable(self, source: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        async for piece in source:
            yield piece
            if self._progress:
                self._progress(len(piece))


class CairnClient:
    def __init__(
        self,
        gateways: Sequence[str],
        secret: str,
        *,
        strategy: str = "p2c-ewma",
        timeout_s: float = TIMEOUT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        if not gateways:
            raise CairnClientError("NoGateway", "the cluster lists no gateway")
        self.gateways = [g.rstrip("/") for g in gateways]
        self._authorization = protocol.authorization(secret)
        self._strategy: PooledStrategy = make_strategy(
            strategy, [Backend(g) for g in self.gateways], random=SystemRng().random
        )
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout_s, sock_read=timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_cluster_file(
        cls, path: str | os.PathLike[str] | None = None, **options: Any
    ) -> "CairnClient":
        """A client for the cluster of `cluster.json` (`path`, $CAIRN_CLUSTER, ./cairn-local)."""
        cluster = load_cluster_file(path)
        return cls(cluster.gateways, cluster.secret, **options)

    async def __aenter__(self) -> "CairnClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, auto_decompress=False, raise_for_status=False
            )
        return self._session

    # -- transport ---------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: _Body | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """Send to one gateway, failing over to others on connection errors; raise the
        gateway's error for a 4xx/5xx answer. The caller releases the response."""
        all_headers = {"Authorization": self._authorization, **(headers or {})}
        tried: set[str] = set()
        failures: list[str] = []
        while len(tried) < len(self.gateways):
            untried = [g for g in self.gateways if g not in tried]
            backend = self._strategy.pick(None, time.monotonic(), among=untried)
            tried.add(backend.id)
            if body is not None and not body.replayable:
                break
            started = time.monotonic()
            self._strategy.on_start(backend)
            try:
                response = await self._http().request(
                    method,
                    backend.id + path,
                    data=body.make() if body is not None else None,
                    headers=all_headers,
                    params=params,
                )
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                now = time.monotonic()
                self._strategy.on_finish(backend, now - started, False, now)
                failures.append(f"{backend.id}: {type(exc).__name__}: {exc}")
                continue
            now = time.monotonic()
            self._strategy.on_finish(backend, now - started, response.status < 500, now)
            if response.status >= 400:
                await _raise_for(response)
            return response
        raise NoGatewayAvailable(
            "NoGatewayAvailable", "no gateway answered: " + "; ".join(failures) or "none tried"
        )

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        async with response:
            if response.status == 204:
                return None
            return await response.json()

    # -- buckets -----------------------------------------------------------------------
    async def make_bucket(self, bucket: str) -> BucketInfo:
        data = await self._json("PUT", protocol.bucket_path(bucket))
        return BucketInfo(data["name"], data["created_s"], "unversioned")

    async def remove_bucket(self, bucket: str) -> None:
        await self._json("DELETE", protocol.bucket_path(bucket))

    async def list_buckets(self) -> list[BucketInfo]:
        data = await self._json("GET", protocol.buckets_path())
        return [BucketInfo(b["name"], b["created_s"], b["versioning"]) for b in data["buckets"]]

    # -- objects -----------------------------------------------------------------------
    async def put(
        self,
        bucket: str,
        key: str,
        source: PutSource,
        *,
        level: Level | None = None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        progress: Progress | None = None,
        fence: Fenced | None = None,
    ) -> PutResult:
        """Store `source` (bytes, a file path, or an async iterable of bytes) as bucket/key.

        With `fence` (a held lock), the gateway commits the object only while that grant's
        fencing token still holds the lock, and raises `FenceStale` otherwise."""
        body = _Body(source, progress)
        headers = _fence_headers(fence)
        if body.size is not None:
            headers["Content-Length"] = str(body.size)
        if level:
            headers[protocol.WRITE_CONSISTENCY_HEADER] = level
        if content_type:
            headers["Content-Type"] = content_type
        for name, value in (metadata or {}).items():
            headers[protocol.META_HEADER_PREFIX + name] = value
        data = await self._json(
            "PUT", protocol.object_path(bucket, key), body=body, headers=headers
        )
        return PutResult(**{f: data[f] for f in PutResult.__dataclass_fields__})

    @contextlib.asynccontextmanager
    async def open(
        self, bucket: str, key: str, *, first: int | None = None, last: int | None = None
    ) -> AsyncIterator[tuple[ObjectInfo, AsyncIterator[bytes]]]:
        """The object's info and an iterator of its bytes (or of a byte range)."""
        headers = {}
        if first is not None or last is not None:
            headers["Range"] = protocol.range_header(first, last)
        response = await self._request("GET", protocol.object_path(bucket, key), headers=headers)
        async with response:
            info = _info(response.headers, response.status)

            async def pieces() -> AsyncIterator[bytes]:
                received = 0
                async for piece in response.content.iter_chunked(PIECE_BYTES):
                    received += len(piece)
                    yield piece
                if received != info.content_length:
                    raise Unavailable(
                        "IncompleteBody",
                        f"got {received} of {info.content_length} bytes of {bucket}/{key}",
                    )

            yield info, pieces()

    async def get(
        self,
        bucket: str,
        key: str,
        *,
        first: int | None = None,
        last: int | None = None,
        progress: Progress | None = None,
    ) -> bytes:
        """The object's bytes (or a range of them) in memory."""
        parts: list[bytes] = []
        async with self.open(bucket, key, first=first, last=last) as (_, body):
            async for piece in body:
                parts.append(piece)
                if progress:
                    progress(len(piece))
        return b"".join(parts)

    async def get_to(
        self,
        bucket: str,
        key: str,
        destination: str | os.PathLike[str] | IO[bytes],
        *,
        first: int | None = None,
        last: int | None = None,
        progress: Progress | None = None,
        on_info: Callable[[ObjectInfo], None] | None = None,
    ) -> ObjectInfo:
        """Stream the object into a file (a path, written whole or not at all, or an open
        binary file)."""
        async with self.open(bucket, key, first=first, last=last) as (info, body):
            if on_info:
                on_info(info)
            if isinstance(destination, str | os.PathLike):
                target = Path(destination)
                temp = target.with_name(f".{target.name}.cairn-partial")
                try:
                    with temp.open("wb") as file:
                        await _copy(body, file, progress)
                    temp.replace(target)
                finally:
                    temp.unlink(missing_ok=True)
            else:
                await _copy(body, destination, progress)
        return info

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        response = await self._request("HEAD", protocol.object_path(bucket, key))
        async with response:
            return _info(response.headers, response.status)

    async def delete(self, bucket: str, key: str, *, fence: Fenced | None = None) -> bool:
        """Delete bucket/key; False if there was nothing to delete. `fence` as in `put`."""
        data = await self._json(
            "DELETE", protocol.object_path(bucket, key), headers=_fence_headers(fence)
        )
        return bool(data["deleted"])

    async def list_page(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        continuation_token: str | None = None,
        max_keys: int = LIST_PAGE_KEYS,
    ) -> ListPage:
        params = {"prefix": prefix, "delimiter": delimiter, "max-keys": str(max_keys)}
        if continuation_token:
            params["continuation-token"] = continuation_token
        data = await self._json("GET", protocol.list_path(bucket), params=params)
        return ListPage(
            [ListedObject(**e) for e in data["entries"]],
            list(data["common_prefixes"]),
            bool(data["is_truncated"]),
            data["next_continuation_token"],
        )

    async def list(
        self, bucket: str, prefix: str = "", delimiter: str = "", page_keys: int = LIST_PAGE_KEYS
    ) -> AsyncIterator[ListedObject | str]:
        """Every object (and, with a delimiter, every common prefix as a str), all pages."""
        token: str | None = None
        while True:
            page = await self.list_page(bucket, prefix, delimiter, token, page_keys)
            for item in page.objects:
                yield item
            for common in page.common_prefixes:
                yield common
            if not page.is_truncated or not page.next_continuation_token:
                return
            token = page.next_continuation_token


async def _copy(body: AsyncIterator[bytes], file: IO[bytes], progress: Progress | None) -> None:
    async for piece in body:
        file.write(piece)
        if progress:
            progress(len(piece))


def _fence_headers(fence: Fenced | None) -> dict[str, str]:
    if fence is None:
        return {}
    return protocol.fence_header(fence.name, fence.token)


async def _raise_for(response: aiohttp.ClientResponse) -> None:
    async with response:
        code = response.headers.get("X-Cairn-Error-Code", "")
        message = response.reason or ""
        if response.method != "HEAD":
            try:
                data = await response.json(content_type=None)
                code = str(data.get("code") or code)
                message = str(data.get("message") or message)
            except (ValueError, aiohttp.ClientError, AttributeError):
                pass
    raise error_for(code or f"HTTP{response.status}", message, response.status)


class SyncCairnClient:
    """The same calls, blocking, on a private event loop (for scripts and notebooks)."""

    def __init__(self, client: CairnClient) -> None:
        self._client = client
        self._loop = asyncio.new_event_loop()

    @classmethod
    def from_cluster_file(cls, path: str | os.PathLike[str] | None = None) -> "SyncCairnClient":
        return cls(CairnClient.from_cluster_file(path))

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(work)

    def close(self) -> None:
        self._run(self._client.close())
        self._loop.close()

    def __enter__(self) -> "SyncCairnClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def make_bucket(self, bucket: str) -> BucketInfo:
        return self._run(self._client.make_bucket(bucket))

    def remove_bucket(self, bucket: str) -> None:
        self._run(self._client.remove_bucket(bucket))

    def list_buckets(self) -> list[BucketInfo]:
        return self._run(self._client.list_buckets())

    def put(
        self, bucket: str, key: str, source: bytes | str | os.PathLike[str], **kw: Any
    ) -> PutResult:
        return self._run(self._client.put(bucket, key, source, **kw))

    def get(self, bucket: str, key: str, **kw: Any) -> bytes:
        return self._run(self._client.get(bucket, key, **kw))

    def head(self, bucket: str, key: str) -> ObjectInfo:
        return self._run(self._client.head(bucket, key))

    def delete(self, bucket: str, key: str, *, fence: Fenced | None = None) -> bool:
        return self._run(self._client.delete(bucket, key, fence=fence))

    def list(self, bucket: str, prefix: str = "", delimiter: str = "") -> list[ListedObject | str]:
        async def collect() -> list[ListedObject | str]:
            return [item async for item in self._client.list(bucket, prefix, delimiter)]

        return self._run(collect())
