"""Which index shard groups this node hosts: the ones the shard directory gives it.

Theory of operation. The root group's directory maps key ranges to shard groups and names
each group's replicas (member ids). Every metadata voter runs this reconciler: it reads
its own replica of the directory (a stale read is enough: hosting a new group a moment
late only delays that group's first election) and starts a Raft replica of every group
that names this node and is not hosted yet, with the group's replicas as voters and an
`IndexShard` for the group's range. A new cluster gets its first shard this way, from
the directory's `Bootstrap`, like any later one.

A group made by a split that is still pending (`ShardInfo.parent`) does not start empty:
its state is the *seed* its parent cut off (`IndexShard.seed`, see `meta.index`), and
each node starts it from the seed in its own replica of the parent, once that replica has
applied the cut. Every replica's seed is the same, so the new group's replicas start
from the same state, as a Raft group must; the bootstrap snapshot made of it is on disk
before the group is started, so a restart finds it. The split stays pending until every
replica has started the group (`node.shard_splitter`), so a node never has to start a
split-off group whose seed is gone; one that would (its disk was replaced) is refused and
logged, never started empty. The first shard starts empty, covering every key, on every
node, however late one joins: its log holds writes to the whole range and then the cuts.

On restart, the groups already on disk are reopened before anything else (`reopen`), so
a node serves its shards without waiting for the root group to replay its log.

Replicas are metadata voters: a member id maps to a Raft id through its address in
`raft_peers`. A shard naming a member that is not a voter is logged and left alone.
"""

import asyncio
import logging
import re
from collections.abc import Callable
from pathlib import Path

from cairn.meta.directory import FIRST_SHARD_GROUP_ID, ROOT_GROUP_ID, ShardInfo
from cairn.meta.index import IndexShard
from cairn.meta.root import RootMachine
from cairn.monitor.logs import log_event
from cairn.raft.driver import NoGroupState
from cairn.raft.host import RaftHost
from cairn.raft.kv_service import KV_GROUP_FIRST

log = logging.getLogger("cairn.node")
RECONCILE_SECONDS = 0.2
SEED_WATCH_SECONDS = 0.01
"""How often a node looks for a seed in its shards for a group it does not host yet: part
of the key space waits for that group, so it is started at once, not at the next period."""
_GROUP_DIR = re.compile(r"group-(\d+)")


class ShardHosting:
    def __init__(
        self,
        host: RaftHost,
        member_id: Callable[[], str | None],
        interval_s: float = RECONCILE_SECONDS,
    ) -> None:
        self.host = host
        self._member_id = member_id
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._refused: set[int] = set()

    def reopen(self, directory: Path) -> list[int]:
        """Reopen every shard group found on disk (before the host starts)."""
        reopened = []
        for path in sorted(directory.glob("group-*")):
            match = _GROUP_DIR.fullmatch(path.name)
            if match is None:
                continue
            group_id = int(match.group(1))
            if not FIRST_SHARD_GROUP_ID <= group_id < KV_GROUP_FIRST:
                continue
            try:  # the range comes back with the shard's snapshot
                self.host.add_group(group_id, set(), IndexShard(group_id))
            except NoGroupState:
                continue  # created but never bootstrapped: the reconciler will do it
            reopened.append(group_id)
        return reopened

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self.reconcile()
            deadline = asyncio.get_running_loop().time() + self.interval_s
            # Polled: the seed appears when the shard applies a command, and the pure
            # machine has no way to signal it. Always one pause first: a seed can wait
            # here for the directory to list its group, and must not spin the loop.
            await asyncio.sleep(SEED_WATCH_SECONDS)
            while asyncio.get_running_loop().time() < deadline and not self._seed_waiting():  # noqa: ASYNC110
                await asyncio.sleep(SEED_WATCH_SECONDS)

    def _seed_waiting(self) -> bool:
        """Whether a shard here keeps the seed of a group not started here yet."""
        groups = self.host.groups
        return any(
            child not in groups and child not in self._refused
            for group in list(groups.values())
            if isinstance(group.machine, IndexShard)
            for child in group.machine.seed_groups()
        )

    async def reconcile(self) -> list[int]:
        """Start every group the directory gives this node; the ids of those started."""
        me = self._member_id()
        root = self.host.groups.get(ROOT_GROUP_ID)
        if me is None or root is None:
            return []
        machine = root.machine
        assert isinstance(machine, RootMachine)
        if not machine.directory.epoch:
            return []
        started = []
        for shard in machine.directory.shards():
            if me in shard.replicas and shard.group_id not in self.host.groups:
                voters = self._voters(machine, shard)
                if voters is None:
                    continue
                initial = await self._initial_state(shard)
                if initial is None or shard.group_id in self.host.groups:
                    continue  # the parent here has not cut the range off yet
                state, seed = initial
                group = self.host.add_group(shard.group_id, voters, state, seed)
                group.start()
                started.append(shard.group_id)
                log_event(
                    log,
                    "shard.hosted",
                    group=shard.group_id,
                    voters=len(voters),
                    parent=shard.parent,
                    keys=state.key_count,
                )
        return started

    async def _initial_state(self, shard: ShardInfo) -> tuple[IndexShard, bytes | None] | None:
        """The state a replica of `shard` starts from, the same on every node: for the
        first shard an empty one covering every key (the range it was created with, not
        the one it has now: the log it replays holds writes to the whole range, then the
        cuts), for a split-off group the seed its parent keeps here, with the seed's bytes
        (the group's bootstrap snapshot is made of them). None while that seed is not
        here yet, or when it is gone (see the module docstring)."""
        if shard.group_id == FIRST_SHARD_GROUP_ID and not shard.parent:
            return IndexShard(shard.group_id), None
        if not shard.parent:
            self._refuse(shard.group_id, "a group split off earlier that was never started here")
            return None
        parent = self.host.groups.get(shard.parent)
        machine = parent.machine if parent is not None else None
        if not isinstance(machine, IndexShard) or shard.group_id not in machine.seed_groups():
            return None
        state = IndexShard(shard.group_id)

        def build() -> bytes | None:
            # Encoding and decoding a big seed take a while (0.2 s and 0.25 s for 25,000
            # keys): in a thread, so the event loop keeps serving and ticking meanwhile.
            data = machine.seed(shard.group_id)
            if data is not None:
                state.restore(data)
            return data

        seed = await asyncio.to_thread(build)
        if seed is None:
            return None  # dropped meanwhile: this node hosts it already, or never will
        if (state.start, state.end) != (shard.start, shard.end):
            self._refuse(shard.group_id, "the seed covers another range than the directory says")
            return None
        return state, seed

    def _refuse(self, group_id: int, reason: str) -> None:
        if group_id not in self._refused:
            self._refused.add(group_id)
            log_event(log, "shard.not_hosted", logging.ERROR, group=group_id, reason=reason)

    def _voters(self, machine: RootMachine, shard: ShardInfo) -> set[int] | None:
        addresses = {m.id: m.address for m in machine.cluster.members()}
        raft_ids = {address: rid for rid, address in self.host.members.items()}
        voters = {raft_ids.get(addresses.get(r, ""), 0) for r in shard.replicas}
        if 0 in voters:
            if shard.group_id not in self._refused:
                self._refused.add(shard.group_id)
                log_event(
                    log,
                    "shard.not_hosted",
                    logging.WARNING,
                    group=shard.group_id,
                    reason="a replica is not a metadata voter",
                )
            return None
        return voters
