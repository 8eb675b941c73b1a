"""A process's copy of the cluster map, as a `PlacementView`, kept fresh by polling.

Every node and gateway routes chunk traffic by a local view instead of asking the root
group per request. `refresh` asks the root leader (lease read) for the map, sending the
table epoch it has so that the 4096-entry owner table crosses the wire only when it
changed. A view that could not be refreshed stays in use: chunks are immutable and a
stale owner list is still safe (see `placement_view`). One case is not merely stale but
short: a view taken while the cluster was still forming lists fewer than R owners, and a
write at `quorum` would be satisfied by too few copies; `get` refreshes such a view
before handing it out (concurrent callers share one refresh). In a cluster that really
has fewer than R nodes that costs one lease read per write, which is fine for a test or
development cluster and never happens in a real one.
"""

import asyncio
import logging
from collections.abc import Callable

from cairn.base.errors import CairnError
from cairn.meta.clustermap import AdminState
from cairn.monitor.logs import log_event
from cairn.node.meta_client import MetaClient
from cairn.node.meta_messages import ClusterViewReply
from cairn.node.placement_view import PlacementView
from cairn.placement import PartitionTable

log = logging.getLogger("cairn.node")
REFRESH_SECONDS = 1.0


class ViewCache:
    def __init__(self, meta: MetaClient, interval_s: float = REFRESH_SECONDS) -> None:
        self.meta = meta
        self.interval_s = interval_s
        self._view: PlacementView | None = None
        self._table: PartitionTable | None = None
        self._previous: PartitionTable | None = None
        self._task: asyncio.Task[None] | None = None
        self.reply: ClusterViewReply | None = None
        self._short_table = False
        self._shared_refresh: asyncio.Future[PlacementView] | None = None
        self.listeners: list[Callable[[PlacementView], None]] = []
        """Called with the new view whenever its epoch or live set changes."""

    def current(self) -> PlacementView | None:
        return self._view

    def require(self) -> PlacementView:
        if self._view is None:
            raise LookupError("no cluster view yet")
        return self._view

    async def get(self) -> PlacementView:
        """The current view for routing: fetched if there is none yet, refreshed first if
        its table is short of owners (see the module docstring)."""
        if self._view is None:
            await self.refresh()
        elif self._short_table:
            if self._shared_refresh is None or self._shared_refresh.done():
                self._shared_refresh = asyncio.ensure_future(self.refresh())
            try:
                await asyncio.shield(self._shared_refresh)
            except CairnError as exc:  # keep routing by what we have
                log_event(log, "view.refresh_failed", logging.DEBUG, error=repr(exc))
        return self.require()

    async def refresh(self) -> PlacementView:
        have = self._table.epoch if self._table is not None else -1
        reply = await self.meta.cluster_view(have_table_epoch=have)
        config = reply.config
        if reply.owners is not None or self._table is None or have != reply.table_epoch:
            owners = tuple(tuple(o) for o in (reply.owners or ()))
            self._table = PartitionTable(
                reply.table_epoch, config.partition_count, config.replica_count, owners
            )
            self._short_table = self._table.under_replicated() > 0
        if reply.previous_owners is None:
            self._previous = None
        elif self._previous is None or self._previous.epoch != reply.previous_epoch:
            previous = tuple(tuple(o) for o in reply.previous_owners)
            self._previous = PartitionTable(
                reply.previous_epoch, config.partition_count, config.replica_count, previous
            )
        members = [m for m in reply.members if m.admin != AdminState.OUT]
        live = frozenset(m.id for m in members if m.to_node().serves_data)
        old = self._view
        self._view = PlacementView(
            epoch=reply.epoch,
            table=self._table,
            previous=self._previous,
            addresses={m.id: m.address for m in members},
            live=live,
            names={m.id: m.name for m in reply.members},
        )
        self.reply = reply
        if old is None or old.epoch != reply.epoch or old.live != live:
            log_event(
                log,
                "view.changed",
                epoch=reply.epoch,
                table=reply.table_epoch,
                live=len(live),
                members=len(members),
            )
            for listener in self.listeners:
                listener(self._view)
        return self._view

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # the map is unreachable for now: keep the old view
                log_event(log, "view.refresh_failed", logging.DEBUG, error=repr(exc))
            await asyncio.sleep(self.interval_s)  # the polling period

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
