"""A node's membership in the cluster map: join once, then heartbeat for as long as it runs.

The join names the node by its configured `node_id` and gives its RPC address, capacity
and failure domains; the root leader assigns (or, on a restart, finds again) its member id.
Heartbeats carry capacity, used bytes and load; the leader stamps them with its clock and
its `Tick`s demote nodes whose heartbeats stop (alive -> suspect -> down). A heartbeat that
fails is simply tried again next period: missing a few is exactly what liveness tolerates.
"""

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cairn.base.errors import CairnError
from cairn.monitor.logs import log_event
from cairn.node.meta_client import MetaClient

log = logging.getLogger("cairn.node")
JOIN_RETRY_SECONDS = 0.2


@dataclass(frozen=True)
class NodeIdentity:
    name: str
    address: str
    capacity_bytes: int
    zone: str = ""
    rack: str = ""
    host: str = ""


class Membership:
    def __init__(
        self,
        meta: MetaClient,
        identity: NodeIdentity,
        used_bytes: Callable[[], Awaitable[int]],
        interval_s: float,
    ) -> None:
        """`synced_epoch` (settable) is reported with each heartbeat; the repair worker
        raises it once this node holds every chunk of its partitions at that epoch."""
        self.synced_epoch = 0
        self.meta = meta
        self.identity = identity
        self._used_bytes = used_bytes
        self.interval_s = interval_s
        self.member_id: str | None = None
        self.joined = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _join(self) -> None:
        i = self.identity
        while self.member_id is None:
            try:
                member = await self.meta.join(
                    i.name, i.address, i.capacity_bytes, i.zone, i.rack, i.host
                )
            except CairnError as exc:
                log_event(log, "node.join_retry", logging.DEBUG, error=repr(exc))
                await asyncio.sleep(JOIN_RETRY_SECONDS)  # the root group is not up yet
                continue
            self.member_id = member.id
            self.joined.set()
            log_event(log, "node.joined", member=member.id, name=i.name)

    async def _run(self) -> None:
        await self._join()
        assert self.member_id is not None
        while True:
            await asyncio.sleep(self.interval_s)  # the heartbeat period
            try:
                used = await self._used_bytes()
                load = os.getloadavg()[0]
                await self.meta.heartbeat(
                    self.member_id, self.identity.capacity_bytes, used, load, self.synced_epoch
                )
            except CairnError as exc:
                log_event(log, "node.heartbeat_failed", logging.DEBUG, error=repr(exc))
