"""Client of the replicated KV service: finds the leader and follows redirects.

A call goes to the last known leader. `not_leader` answers carry the leader's address
(or nothing during an election); unreachable nodes are skipped. Retries are bounded by
the call's deadline. A write whose outcome is unknown (the connection died after the
request left, or the deadline passed) is retried only when it is idempotent (put and
delete are; compare-and-set is not, and raises instead).
"""

import asyncio
import time
from typing import Literal

from cairn.base.errors import DeadlineExceeded, PeerUnavailable, RemoteError
from cairn.raft.kv_service import KV_GROUP_FIRST, KvRead, KvReply, KvWrite
from cairn.wire import RpcPool, derive_auth_key

RETRY_PAUSE_SECONDS = 0.02


class KvClient:
    def __init__(
        self,
        addresses: list[str],
        secret: str,
        group: int = KV_GROUP_FIRST,
        client_id: str = "kv-client",
    ) -> None:
        if not addresses:
            raise ValueError("KvClient needs at least one address")
        self.addresses = list(addresses)
        self.group = group
        self.pool = RpcPool(client_id, derive_auth_key(secret), backoff_seconds_initial=0.02,
                            backoff_seconds_max=0.5)  # fmt: skip
        self.leader: str | None = None
        self._next = 0
        self.redirects = 0

    async def close(self) -> None:
        await self.pool.close()

    def _candidate(self) -> str:
        if self.leader is not None:
            return self.leader
        address = self.addresses[self._next % len(self.addresses)]
        self._next += 1
        return address

    async def _call(self, request: KvWrite | KvRead, timeout: float, idempotent: bool) -> KvReply:
        deadline = time.monotonic() + timeout
        last_error: Exception = DeadlineExceeded("no attempt made")
        while (remaining := deadline - time.monotonic()) > 0:
            address = self._candidate()
            try:
                reply, _ = await self.pool.call(address, request, KvReply, timeout=remaining)
                self.leader = address
                return reply
            except RemoteError as exc:
                last_error = exc
                if exc.code == "not_leader":
                    self.redirects += 1
                    self.leader = exc.message or None
                    if self.leader is None:
                        await asyncio.sleep(RETRY_PAUSE_SECONDS)  # election under way
                    continue
                if exc.code == "dropped":
                    self.leader = None
                    continue
                if exc.code == "ProposalOutcomeUnknown" and (
                    idempotent or not isinstance(request, KvWrite)
                ):
                    self.leader = None
                    continue  # covered by a snapshot: retried like a timeout
                raise
            except (PeerUnavailable, DeadlineExceeded) as exc:
                last_error = exc
                self.leader = None
                if not idempotent and isinstance(request, KvWrite):
                    raise
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
        raise DeadlineExceeded(f"kv call gave up after {timeout} s: {last_error}")

    async def put(self, key: bytes, value: bytes, timeout: float = 10.0) -> None:
        await self._call(KvWrite(self.group, "put", key, value), timeout, idempotent=True)

    async def delete(self, key: bytes, timeout: float = 10.0) -> bool:
        reply = await self._call(KvWrite(self.group, "delete", key), timeout, idempotent=True)
        return reply.ok

    async def cas(
        self, key: bytes, expected: bytes | None, new: bytes | None, timeout: float = 10.0
    ) -> tuple[bool, bytes | None]:
        request = KvWrite(self.group, "cas", key, new, expected)
        reply = await self._call(request, timeout, idempotent=False)
        return reply.ok, reply.value

    async def get(
        self,
        key: bytes,
        consistency: Literal["linearizable", "lease", "stale"] = "linearizable",
        timeout: float = 10.0,
    ) -> bytes | None:
        reply = await self._call(KvRead(self.group, key, consistency), timeout, idempotent=True)
        return reply.value


__all__ = ["KvClient"]
