"""The lock service over HTTP (`/_cairn/v1/locks`), and fencing of native-API writes.

Why HTTP as well as the RPC the SDK uses: operators and programs in other languages
(curl, a shell script, a Go service) can list locks, and hold them, with nothing but the
native API's bearer token. Each route is one call to the root leader's lock service
(`node.lock_service`) through the node's `MetaClient` (leader tracking, redirects).

Routes (under `/_cairn/v1/locks`; JSON bodies and answers; `Authorization: Cairn <token>`):

| method | path | body / query | answer |
|---|---|---|---|
| GET | / | `prefix`, `limit`, `sessions=1` | `{"locks": [...], "sessions": [...]}` |
| GET | /names/{name} | | one lock, or 404 `NoSuchLock` |
| POST | /sessions | `{"ttl_ms", "label"}` | `{"session_id", "ttl_ms"}` |
| POST | /sessions/{id}/keepalive | | `{"ttl_ms"}` |
| DELETE | /sessions/{id} | | `{"released", "cancelled"}` |
| POST | /acquire | `{"session_id", "name", "request_id", ...}` (*) | `{"status", "token"}` |
| POST | /release | `{"session_id", "name", "request_id"}` | `{"released", "token"}` |
| GET | /fence | `name`, `token` | `{"current"}` |

(*) also `mode`, `wait`, `wait_ms` and `cancel_on_timeout`. An acquire waits at most
`HTTP_WAIT_MS_MAX` per call (a long poll that fits in one metadata attempt): with
`cancel_on_timeout: false` it answers "queued" and the caller calls again with the same
request id; with true (the default) the wait is cancelled.

Lock-service errors keep their codes (`invalid_name`, `unknown_session`, `not_held`, ...)
with status 400, 404 (`unknown_session`) or 409 (`already_held`, `stale_request`).

Fencing. A native PUT or DELETE of an object may carry `X-Cairn-Fence: name:token`. The
middleware installed by `mount_locks` parses it into a context variable for the request;
`FencedMeta`, wrapped around the metadata client the object service uses, asks the lock
service (`LockFence`, a ReadIndex read on the root leader) right before the index commit,
and refuses the write with 409 `FenceStale` unless `token` is still held on `name`. So a
holder that was paused past its lease, and whose lock has since passed on, cannot write.
The check and the commit are two groups' operations, so the write also carries the fence
into the index command: the shard refuses it (409 `FenceStale` again) if it has already
accepted a higher token of that lock. A holder that loses its lock in the milliseconds
between check and commit can therefore not overwrite anything its successor wrote
through that shard; its write lands before the successor's, in token order. S3's
CompleteMultipartUpload gets the same two checks (`check_fence` is handed to the
multipart handlers).
"""

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from cairn.base.errors import RemoteError
from cairn.gateway.errors import ApiError
from cairn.gateway.keys import authorization_matches
from cairn.gateway.native_http import PREFIX, error_response
from cairn.meta.buckets import Bucket, StoragePolicy, VersioningState
from cairn.meta.directory import ROOT_GROUP_ID
from cairn.meta.index import (
    DeleteResult,
    ListPage,
    ObjectVersion,
    PutResult,
)
from cairn.meta.locks import LockInfo, lock_name_problem
from cairn.meta.manifest import Manifest
from cairn.meta.write_condition import Fence, WriteCondition
from cairn.node.lock_messages import (
    LIST_LIMIT_MAX,
    LockAcquire,
    LockAcquireReply,
    LockClose,
    LockCloseReply,
    LockFence,
    LockFenceReply,
    LockKeepAlive,
    LockKeepAliveReply,
    LockList,
    LockListReply,
    LockOpen,
    LockOpenReply,
    LockRelease,
    LockReleaseReply,
)
from cairn.node.meta_client import MetaClient

LOCKS_PREFIX = f"{PREFIX}/locks"
CALL_TIMEOUT_S = 10.0
FENCE_HEADER = "X-Cairn-Fence"
BODY_BYTES_MAX = 64 * 1024
HTTP_WAIT_MS_MAX = 2_500
"""One HTTP acquire's wait: under the metadata client's 3 s attempt cap."""
_CLIENT = web.AppKey("lock_client", MetaClient)
_FENCE: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar(
    "cairn_fence", default=None
)
_STATUS_OF_LOCK_CODE = {"unknown_session": 404, "already_held": 409, "stale_request": 409}
_UNAVAILABLE = frozenset({"not_leader", "dropped", "no_such_group", "deadline_exceeded"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_fence(value: str) -> tuple[str, int]:
    """`name:token` (the name may itself hold colons) -> (name, token)."""
    name, sep, token = value.rpartition(":")
    if not sep or not name or not token.isdigit() or len(token) > 19:
        raise ApiError("InvalidArgument", f"{FENCE_HEADER} must be name:token, got {value!r}")
    if lock_name_problem(name) is not None:
        raise ApiError("InvalidArgument", f"{FENCE_HEADER} lock name is too long")
    return name, int(token)


# -- fencing ---------------------------------------------------------------------------


@web.middleware
async def fence_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Parse `X-Cairn-Fence` on writes into the request's context (see the module doc)."""
    value = request.headers.get(FENCE_HEADER)
    if value is None or request.method not in ("PUT", "DELETE", "POST"):
        return await handler(request)
    try:
        fence = parse_fence(value)
    except ApiError as exc:
        return error_response(exc)
    marker = _FENCE.set(fence)
    try:
        return await handler(request)
    finally:
        _FENCE.reset(marker)


class FencedMeta:
    """The object service's metadata port, checking the request's fence before commits."""

    def __init__(self, meta: MetaClient) -> None:
        self.meta = meta

    async def check_fence(self) -> Fence | None:
        """The request's fence, once the lock service says its token is still held."""
        fence = _FENCE.get()
        if fence is None:
            return None
        name, token = fence
        try:
            reply, _ = await self.meta.call(ROOT_GROUP_ID, LockFence(name, token), LockFenceReply)
        except RemoteError as exc:
            if exc.code == "invalid_name":
                raise ApiError("InvalidArgument", exc.message) from None
            raise
        if not reply.current:
            raise ApiError(
                "FenceStale", f"fencing token {token} no longer holds lock {name!r}", 409
            )
        return Fence(name, token)

    async def create_bucket(
        self, name: str, owner: str, policy: StoragePolicy | None = None
    ) -> Bucket:
        return await self.meta.create_bucket(name, owner, policy)

    async def get_bucket(self, name: str) -> Bucket:
        return await self.meta.get_bucket(name)

    async def list_buckets(self, owner: str | None = None) -> list[Bucket]:
        return await self.meta.list_buckets(owner)

    async def delete_bucket(self, name: str, owner: str, settle_seconds: float = 0.0) -> None:
        await self.meta.delete_bucket(name, owner, settle_seconds)

    async def put_object(
        self,
        bucket: str,
        key: str,
        manifest: Manifest,
        versioning: VersioningState,
        condition: WriteCondition | None = None,
    ) -> PutResult:
        fence = await self.check_fence()
        return await self.meta.put_object(bucket, key, manifest, versioning, condition, fence)

    async def delete_object(
        self,
        bucket: str,
        key: str,
        versioning: VersioningState,
        version_id: str | None = None,
    ) -> DeleteResult:
        fence = await self.check_fence()
        return await self.meta.delete_object(bucket, key, versioning, version_id, fence)

    async def head_object(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> ObjectVersion:
        return await self.meta.head_object(bucket, key, version_id)

    async def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        continuation_token: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage:
        return await self.meta.list_objects(
            bucket, prefix, delimiter, start_after, continuation_token, max_keys
        )


# -- the lock routes -------------------------------------------------------------------


def _lock_json(info: LockInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "holders": [msgspec.structs.asdict(g) for g in info.holders],
        "waiters": [msgspec.structs.asdict(w) for w in info.waiters],
    }


def lock_app(meta: MetaClient, token: str) -> web.Application:
    """The lock routes as an aiohttp sub-application; mount it at `LOCKS_PREFIX`."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not authorization_matches(request.headers.get("Authorization"), token):
            return error_response(ApiError("AccessDenied", "missing or wrong Cairn token"))
        try:
            return await handler(request)
        except web.HTTPException as exc:
            code = "MethodNotAllowed" if exc.status == 405 else "InvalidRequest"
            return error_response(ApiError(code, exc.reason, exc.status))
        except ApiError as exc:
            return error_response(exc)
        except RemoteError as exc:
            if exc.code in _UNAVAILABLE:
                return error_response(ApiError("ServiceUnavailable", str(exc)))
            status = _STATUS_OF_LOCK_CODE.get(exc.code, 400)
            return error_response(ApiError(exc.code, exc.message, status))
        except Exception as exc:
            return error_response(ApiError("ServiceUnavailable", f"{type(exc).__name__}: {exc}"))

    app = web.Application(middlewares=[guard], client_max_size=BODY_BYTES_MAX)
    app[_CLIENT] = meta
    app.add_routes(
        [
            web.get("", _list),
            web.get("/", _list),
            web.get("/names/{name:.+}", _one),
            web.post("/sessions", _open),
            web.post("/sessions/{session_id}/keepalive", _keep_alive),
            web.delete("/sessions/{session_id}", _close),
            web.post("/acquire", _acquire),
            web.post("/release", _release),
            web.get("/fence", _fence),
        ]
    )
    return app


def mount_locks(app: web.Application, meta: MetaClient, token: str) -> None:
    """Mount the lock routes and install the fence middleware on the gateway's app."""
    app.middlewares.append(fence_middleware)
    app.add_subapp(LOCKS_PREFIX, lock_app(meta, token))


async def _call(request: web.Request, message: msgspec.Struct, reply_type: type[Any]) -> Any:
    reply, _ = await request.config_dict[_CLIENT].call(
        ROOT_GROUP_ID, message, reply_type, timeout=CALL_TIMEOUT_S
    )
    return reply


async def _body(request: web.Request, cls: type[Any]) -> Any:
    raw = await request.read()
    try:
        return msgspec.json.decode(raw or b"{}", type=cls)
    except msgspec.DecodeError as exc:
        raise ApiError("InvalidArgument", f"bad JSON body: {exc}") from None


def _int(text: str | None, what: str, default: int | None = None) -> int:
    if text is None or text == "":
        if default is None:
            raise ApiError("InvalidArgument", f"{what} is required")
        return default
    if not text.isdigit() or len(text) > 19:
        raise ApiError("InvalidArgument", f"{what} must be a non-negative integer: {text!r}")
    return int(text)


class _OpenBody(msgspec.Struct, frozen=True):
    ttl_ms: int
    label: str = ""


class _AcquireBody(msgspec.Struct, frozen=True):
    session_id: int
    name: str
    request_id: int
    mode: str = "exclusive"
    wait: bool = True
    wait_ms: int = HTTP_WAIT_MS_MAX
    cancel_on_timeout: bool = True


class _ReleaseBody(msgspec.Struct, frozen=True):
    session_id: int
    name: str
    request_id: int


async def _list(request: web.Request) -> web.Response:
    limit = _int(request.query.get("limit"), "limit", 1000)
    if limit > LIST_LIMIT_MAX:
        raise ApiError("InvalidArgument", f"limit is at most {LIST_LIMIT_MAX}")
    message = LockList(
        request.query.get("prefix", ""), limit, sessions=request.query.get("sessions") == "1"
    )
    reply: LockListReply = await _call(request, message, LockListReply)
    return web.json_response(
        {
            "locks": [_lock_json(info) for info in reply.locks],
            "sessions": [msgspec.structs.asdict(s) for s in reply.sessions],
        }
    )


async def _one(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    reply: LockListReply = await _call(request, LockList(name, LIST_LIMIT_MAX), LockListReply)
    for info in reply.locks:
        if info.name == name:
            return web.json_response(_lock_json(info))
    raise ApiError("NoSuchLock", f"no holder or waiter for {name!r}", 404)


async def _open(request: web.Request) -> web.Response:
    body: _OpenBody = await _body(request, _OpenBody)
    reply: LockOpenReply = await _call(request, LockOpen(body.ttl_ms, body.label), LockOpenReply)
    return web.json_response({"session_id": reply.session_id, "ttl_ms": reply.ttl_ms})


async def _keep_alive(request: web.Request) -> web.Response:
    session_id = _int(request.match_info["session_id"], "session id")
    reply: LockKeepAliveReply = await _call(request, LockKeepAlive(session_id), LockKeepAliveReply)
    return web.json_response({"ttl_ms": reply.ttl_ms})


async def _close(request: web.Request) -> web.Response:
    session_id = _int(request.match_info["session_id"], "session id")
    reply: LockCloseReply = await _call(request, LockClose(session_id), LockCloseReply)
    return web.json_response({"released": reply.released, "cancelled": reply.cancelled})


async def _acquire(request: web.Request) -> web.Response:
    body: _AcquireBody = await _body(request, _AcquireBody)
    if body.mode not in ("exclusive", "shared"):
        raise ApiError("InvalidArgument", "mode must be exclusive or shared")
    if not 0 <= body.wait_ms <= HTTP_WAIT_MS_MAX:
        raise ApiError("InvalidArgument", f"wait_ms must be in [0, {HTTP_WAIT_MS_MAX}]")
    message = LockAcquire(
        body.session_id,
        body.name,
        "shared" if body.mode == "shared" else "exclusive",
        body.request_id,
        body.wait,
        body.wait_ms,
        body.cancel_on_timeout,
    )
    reply: LockAcquireReply = await _call(request, message, LockAcquireReply)
    return web.json_response({"status": reply.status, "token": reply.token})


async def _release(request: web.Request) -> web.Response:
    body: _ReleaseBody = await _body(request, _ReleaseBody)
    message = LockRelease(body.session_id, body.name, body.request_id)
    reply: LockReleaseReply = await _call(request, message, LockReleaseReply)
    return web.json_response({"released": reply.released, "token": reply.token})


async def _fence(request: web.Request) -> web.Response:
    name = request.query.get("name", "")
    token = _int(request.query.get("token"), "token")
    reply: LockFenceReply = await _call(request, LockFence(name, token), LockFenceReply)
    return web.json_response({"current": reply.current})
