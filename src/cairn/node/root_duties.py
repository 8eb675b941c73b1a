"""Work only the root group's leader does: liveness ticks and bootstrapping the directory.

Ticks: the leader proposes `Tick(now)` every period; the cluster map demotes members whose
last heartbeat is older than the configured times. A leader starts ticking only after it
has led for `down_after_s`: a node that heartbeated to the old leader during an election
could otherwise be marked down by a tick that came before its next heartbeat could commit.

Directory: a new cluster has no index shard until the root leader proposes `Bootstrap`
with the member ids of the nodes that host the metadata groups, once all of them joined.

GC: one mark-and-sweep round every `gc_interval_s` (`gc_coordinator`).

Moves: after a table change the previous table stays in the map (readers fall back to
it, owners that left keep their copies) until every live owner of the new table has
reported, in its heartbeat, that it holds all the data of its partitions at the new
epoch. Then the leader proposes `MovesDone`, and former owners may clean up.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from cairn.base.errors import CairnError
from cairn.meta.clustermap import MovesDone
from cairn.meta.directory import ROOT_GROUP_ID, Bootstrap
from cairn.meta.root import RootMachine, encode_root_command
from cairn.monitor.logs import log_event
from cairn.raft.host import RaftHost
from cairn.raft.types import Role

log = logging.getLogger("cairn.node")


class RootDuties:
    def __init__(
        self,
        host: RaftHost,
        tick: Callable[[], Awaitable[object]],
        interval_s: float,
        down_after_s: float,
        collect_garbage: Callable[[], Awaitable[object]] | None = None,
        gc_interval_s: float = 0.0,
    ) -> None:
        self.host = host
        self._collect_garbage = collect_garbage
        self.gc_interval_s = gc_interval_s
        self._last_gc: float | None = None
        self._tick = tick
        self.interval_s = interval_s
        self.down_after_s = down_after_s
        self._leading_since: float | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def is_leader(self) -> bool:
        group = self.host.groups.get(ROOT_GROUP_ID)
        return group is not None and group.node.role == Role.LEADER

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)  # the tick period
            if not self.is_leader():
                self._leading_since = None
                continue
            now = time.monotonic()
            if self._leading_since is None:
                self._leading_since = now
            try:
                await self._bootstrap_directory()
                await self._settle_moves()
                if now - self._leading_since >= self.down_after_s:
                    await self._tick()
                await self._maybe_collect(now)
            except CairnError as exc:
                log_event(log, "root.duty_failed", logging.DEBUG, error=repr(exc))

    async def _maybe_collect(self, now: float) -> None:
        """A GC round every `gc_interval_s`, counted from when this node began leading."""
        if self._collect_garbage is None or not self.gc_interval_s:
            return
        if self._last_gc is None:
            self._last_gc = now
        if now - self._last_gc >= self.gc_interval_s:
            self._last_gc = now
            await self._collect_garbage()

    async def _settle_moves(self) -> None:
        group = self.host.groups[ROOT_GROUP_ID]
        machine = group.machine
        assert isinstance(machine, RootMachine)
        cluster = machine.cluster
        if cluster.previous_table is None:
            return
        table = cluster.table
        live = cluster.live_node_ids()
        owners = {o for partition in table.owners for o in partition if o in live}
        if all(cluster.node(o).synced_epoch >= table.epoch for o in owners):
            await group.propose_command(encode_root_command(MovesDone(table.epoch)))
            log_event(log, "root.moves_done", table_epoch=table.epoch)

    async def _bootstrap_directory(self) -> None:
        group = self.host.groups[ROOT_GROUP_ID]
        machine = group.machine
        assert isinstance(machine, RootMachine)
        if machine.directory.epoch:
            return
        replicas: list[str] = []
        for address in self.host.members.values():
            member = next((m for m in machine.cluster.members() if m.address == address), None)
            if member is None:
                return  # wait until every metadata node has joined
            replicas.append(member.id)
        await group.propose_command(encode_root_command(Bootstrap(tuple(replicas))))
        log_event(log, "root.directory_bootstrapped", replicas=",".join(replicas))
