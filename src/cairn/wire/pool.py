"""Connection pool: one multiplexed, authenticated connection per peer address.

Concurrent callers that need the same peer share one connect attempt. After a failed
connect the peer is in backoff (exponential with jitter, capped): calls during that
window fail fast with `PeerUnavailable` instead of piling up on a dead address, and the
first call after it tries again. A connection that dies is dropped and re-made on the
next call.
"""

import asyncio
import ssl
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from cairn.base.checksum import Buffer
from cairn.base.errors import PeerUnavailable
from cairn.config.model import parse_hostport
from cairn.runtime.clock import Clock, SystemClock
from cairn.runtime.rng import Rng, SystemRng
from cairn.wire.client import RpcConnection
from cairn.wire.local import call_local, notify_local
from cairn.wire.server import Router

T = TypeVar("T")

BACKOFF_SECONDS_INITIAL = 0.05
BACKOFF_SECONDS_MAX = 5.0


@dataclass
class _Backoff:
    delay: float
    retry_at: float


class RpcPool:
    def __init__(
        self,
        node_id: str,
        auth_key: bytes,
        *,
        ssl_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
        rng: Rng | None = None,
        backoff_seconds_initial: float = BACKOFF_SECONDS_INITIAL,
        backoff_seconds_max: float = BACKOFF_SECONDS_MAX,
    ) -> None:
        self.node_id = node_id
        self._auth_key = auth_key
        self._ssl = ssl_context
        self._clock = clock or SystemClock()
        self._rng = rng or SystemRng()
        self._backoff_initial = backoff_seconds_initial
        self._backoff_max = backoff_seconds_max
        self._connections: dict[str, RpcConnection] = {}
        self._connecting: dict[str, asyncio.Task[RpcConnection]] = {}
        self._backoff: dict[str, _Backoff] = {}
        self._local: dict[str, Router] = {}

    def serve_locally(self, address: str, router: Router) -> None:
        """Calls to `address` (this process's own RPC address) go straight to `router`'s
        handlers, without a socket (see `wire.local`)."""
        self._local[address] = router

    async def connection(self, address: str) -> RpcConnection:
        existing = self._connections.get(address)
        if existing is not None and not existing.closed:
            return existing
        pending = self._connecting.get(address)
        if pending is None:
            backoff = self._backoff.get(address)
            now = self._clock.monotonic()
            if backoff is not None and now < backoff.retry_at:
                raise PeerUnavailable(
                    f"{address} unreachable; next attempt in {backoff.retry_at - now:.2f} s"
                )
            pending = asyncio.get_running_loop().create_task(self._connect(address))
            self._connecting[address] = pending
        return await asyncio.shield(pending)

    async def _connect(self, address: str) -> RpcConnection:
        host, port = parse_hostport(address)
        try:
            connection = await RpcConnection.open(
                host, port, node_id=self.node_id, auth_key=self._auth_key, ssl_context=self._ssl
            )
        except PeerUnavailable:
            previous = self._backoff.get(address)
            delay = self._backoff_initial if previous is None else previous.delay * 2
            delay = min(delay, self._backoff_max)
            jittered = delay * (0.5 + self._rng.random())
            self._backoff[address] = _Backoff(delay, self._clock.monotonic() + jittered)
            raise
        finally:
            self._connecting.pop(address, None)
        self._backoff.pop(address, None)
        self._connections[address] = connection
        return connection

    async def call(
        self,
        address: str,
        request: msgspec.Struct,
        response_type: type[T],
        payload: Buffer = b"",
        timeout: float | None = 30.0,
    ) -> tuple[T, memoryview]:
        router = self._local.get(address)
        if router is not None:
            return await call_local(router, self.node_id, request, response_type, payload, timeout)
        connection = await self.connection(address)
        return await connection.call(request, response_type, payload, timeout)

    def writable_connection(self, address: str) -> RpcConnection | None:
        """The open connection to `address` if a one-way send on it would not wait."""
        existing = self._connections.get(address)
        if existing is not None and existing.writable:
            return existing
        return None

    async def notify(self, address: str, message: msgspec.Struct, payload: Buffer = b"") -> None:
        """Send a one-way `message` to `address` (see `RpcConnection.notify`)."""
        router = self._local.get(address)
        if router is not None:
            notify_local(router, self.node_id, message, payload)
            return
        connection = await self.connection(address)
        await connection.notify(message, payload)

    async def close(self) -> None:
        for task in self._connecting.values():
            task.cancel()
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
