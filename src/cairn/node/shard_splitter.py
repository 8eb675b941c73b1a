"""Splitting index shards by size and load, and spreading their leaders; root leader only.

Theory of operation. The root group's leader runs a round (`run_once`) every
`heartbeat_interval_s`, and at once whenever its directory shows a split pending:

1. **Finish the pending split, if there is one.** A split is three steps in three places,
   and the directory remembers that it is pending (`ShardInfo.parent`) until the last
   one, so a new root leader picks up whatever the old one left half done:
   a. `SplitShard(at)` in the root group: `[at, end)` now belongs to a new group, which
      has the old group's replicas (done by `split`, or by an operator's `cairn shard
      split`);
   b. `ShrinkRange(at, seed_group)` in the old group: it cuts the range off and keeps it
      as the new group's seed, at one log index on every replica (`meta.index`); each
      node then starts its replica of the new group from that seed (`ShardHosting`);
   c. once a majority of the new group's replicas host it, the old group's leader
      stands for election in it (no election timeout to wait out); once every replica
      does, `DropSeed` in the old group and `SplitDone` in the root group.
   Every step is idempotent, so a round that dies anywhere is simply run again. Between
   (a) and (b) the old group still owns its whole range; readers that follow the new
   directory get `no_such_group` from the new group, or `WrongShard` from a listing that
   names the range it expects, and retry until (b) is applied: a few milliseconds when
   the leader runs all three in one round.
2. **Otherwise, split a shard that is too big or too busy.** The round reads every
   shard's key count and applied log index from its leader; a shard with more than
   `keys_max` keys, or whose applied index grew faster than `ops_per_s_max` per second
   for `LOAD_ROUNDS` rounds in a row, is split at its middle key.
3. **Spread the leaders.** When one metadata voter leads at least two more index shards
   than another, one of its shards hands leadership to the voter leading the fewest.
   The replicas of every shard are the same voters today, so this is what moves a busy
   shard's load (the leader does the proposing, the fsync that counts, and every lease
   read) onto another machine.

A split picks the middle key by count, not by load: a shard hot on a few keys splits
into a hot half and a cold half, and the hot half splits again on the next rounds.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cairn.base.errors import CairnError, RemoteError
from cairn.meta.directory import ROOT_GROUP_ID, ShardInfo, SplitDone, SplitShard
from cairn.meta.index import DropSeed, ShrinkRange, ShrinkResult
from cairn.meta.machine import MetaError
from cairn.meta.root import RootMachine, encode_root_command
from cairn.monitor.logs import log_event
from cairn.node.meta_client import MetaClient
from cairn.node.meta_messages import (
    ShardBounds,
    ShardLeaderTransfer,
    ShardLeaderTransferReply,
    ShardSplitPoint,
    ShardSplitPointReply,
    ShardStatsQuery,
    ShardStatsReply,
)
from cairn.raft.host import RaftHost
from cairn.raft.types import Role
from cairn.wire import RpcPool

log = logging.getLogger("cairn.node.split")

LOAD_ROUNDS = 3
"""Rounds in a row a shard must be over the load threshold before it is split."""
HOSTED_WAIT_S = 3.0
"""How long one round waits for every replica to start a new group before it gives up
until the next round (a replica that is down keeps the split pending until it is back)."""
HOSTED_POLL_S = 0.01
PROBE_TIMEOUT_S = 2.0
LEADER_SKEW_MAX = 1
"""Leaderships one voter may hold beyond another before one is handed over."""


@dataclass(frozen=True)
class SplitPolicy:
    keys_max: int = 50_000
    """Split a shard holding more keys than this; 0: never split by size."""
    ops_per_s_max: float = 0.0
    """Split a shard applying more commands per second than this; 0: never by load."""
    balance_leaders: bool = True


@dataclass
class _Load:
    applied_index: int
    at: float
    hot_rounds: int = 0


@dataclass
class SplitterStats:
    splits_started: int = 0
    splits_finished: int = 0
    leader_transfers: int = 0
    loads: dict[int, float] = field(default_factory=dict)
    """Commands per second each shard applied over the last round."""


class ShardSplitter:
    def __init__(
        self,
        host: RaftHost,
        meta: MetaClient,
        pool: RpcPool,
        policy: SplitPolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.meta = meta
        self.pool = pool
        self.policy = policy
        self._clock = clock
        self._loads: dict[int, _Load] = {}
        self.stats = SplitterStats()
        self._task: asyncio.Task[None] | None = None

    def start(self, interval_s: float) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(interval_s))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self, interval_s: float) -> None:
        last_round = float("-inf")
        while True:
            # A round every `interval_s`, and at once when a split is pending (an
            # operator's, or one a killed leader left): part of the key space waits for it.
            await asyncio.sleep(HOSTED_POLL_S)  # watching the local directory
            root = self.host.groups.get(ROOT_GROUP_ID)
            if root is None or root.node.role != Role.LEADER:
                self._loads.clear()  # a new leader starts measuring afresh
                continue
            machine = root.machine
            pending = isinstance(machine, RootMachine) and machine.directory.split_pending
            now = self._clock()
            if not pending and now - last_round < interval_s:
                continue
            last_round = now
            try:
                await self.run_once()
            except CairnError as exc:  # unreachable shards, elections: the next round
                log_event(log, "split.round_failed", logging.INFO, error=repr(exc))
            except Exception:  # a bug here must not stop splitting for good
                log.exception("split.round_crashed")

    def _root(self) -> RootMachine:
        machine = self.host.groups[ROOT_GROUP_ID].machine
        assert isinstance(machine, RootMachine)
        return machine

    async def _propose_root(self, command: SplitShard | SplitDone) -> ShardInfo:
        result = await self.host.groups[ROOT_GROUP_ID].propose_command(encode_root_command(command))
        if isinstance(result, MetaError):
            raise result
        assert isinstance(result, ShardInfo)
        return result

    async def run_once(self) -> None:
        """One round (see the module docstring); only on the root leader."""
        directory = self._root().directory
        if not directory.epoch:
            return
        pending = directory.pending_splits()
        if pending:
            await self.finish(pending[0])
            return
        replies = await self._survey(directory.shards())
        candidate = self._candidate(directory.shards(), replies)
        if candidate is not None:
            await self.split_shard(candidate)
        elif self.policy.balance_leaders:
            await self._balance_leaders(directory.shards(), replies)

    # -- deciding ------------------------------------------------------------------------
    async def _survey(self, shards: list[ShardInfo]) -> dict[int, ShardStatsReply]:
        """Each shard's figures from its leader, and its load since the last round."""
        replies: dict[int, ShardStatsReply] = {}
        now = self._clock()
        for shard in shards:
            query = ShardStatsQuery(shard.group_id, None, "lease", ShardBounds.of(shard))
            try:
                reply, _ = await self.meta.call(shard.group_id, query, ShardStatsReply, timeout=5)
            except CairnError as exc:
                log_event(
                    log, "split.survey_failed", logging.DEBUG, group=shard.group_id, error=str(exc)
                )
                continue
            replies[shard.group_id] = reply
            load = self._loads.get(shard.group_id)
            if load is None or now <= load.at:
                self._loads[shard.group_id] = _Load(reply.applied_index, now)
                continue
            rate = max(0, reply.applied_index - load.applied_index) / (now - load.at)
            self.stats.loads[shard.group_id] = rate
            hot = 0 < self.policy.ops_per_s_max < rate
            load.hot_rounds = load.hot_rounds + 1 if hot else 0
            load.applied_index, load.at = reply.applied_index, now
        for gone in set(self._loads) - {s.group_id for s in shards}:
            del self._loads[gone]
            self.stats.loads.pop(gone, None)
        return replies

    def _candidate(
        self, shards: list[ShardInfo], replies: dict[int, ShardStatsReply]
    ) -> ShardInfo | None:
        """The shard most over a threshold, if any."""
        keys_max = self.policy.keys_max
        big = [
            s
            for s in shards
            if keys_max and s.group_id in replies and replies[s.group_id].key_count > keys_max
        ]
        if big:
            return max(big, key=lambda s: replies[s.group_id].key_count)
        hot = [
            s
            for s in shards
            if s.group_id in replies
            and replies[s.group_id].key_count >= 2
            and self._loads[s.group_id].hot_rounds >= LOAD_ROUNDS
        ]
        if hot:
            return max(hot, key=lambda s: self.stats.loads.get(s.group_id, 0.0))
        return None

    # -- splitting -----------------------------------------------------------------------
    async def split_shard(self, shard: ShardInfo) -> ShardInfo | None:
        """Split `shard` at its middle key and carry the split out; the new group."""
        reply, _ = await self.meta.call(
            shard.group_id, ShardSplitPoint(shard.group_id), ShardSplitPointReply
        )
        if reply.at is None or reply.at <= shard.start:
            return None
        return await self.split(reply.at)

    async def split(self, at: bytes) -> ShardInfo:
        """Give `[at, end)` of the shard holding `at` to a new group, and carry it out."""
        child = await self._propose_root(SplitShard(at))
        self.stats.splits_started += 1
        self._loads.pop(child.parent, None)  # the parent's load is half what it was
        log_event(log, "split.started", group=child.group_id, parent=child.parent, at=at.hex())
        await self.finish(child)
        return child

    async def finish(self, child: ShardInfo) -> bool:
        """Carry out steps (b) and (c) of a pending split; True once it is done."""
        parent = child.parent
        cut = ShrinkRange(child.start, seed_group=child.group_id)
        shrunk = await self.meta.propose_shard(parent, cut, ShrinkResult)
        if not await self._hosted_everywhere(child):
            return False
        dropped = await self.meta.propose_shard(parent, DropSeed(child.group_id), bool)
        await self._propose_root(SplitDone(child.group_id))
        self.stats.splits_finished += 1
        log_event(
            log,
            "split.done",
            group=child.group_id,
            parent=parent,
            moved_keys=shrunk.dropped_keys,
            seed_dropped=dropped,
        )
        return True

    async def _hosted_everywhere(self, child: ShardInfo) -> bool:
        """Wait (a bounded time) until every replica of `child` answers for it. Once a
        majority does, the parent's leader among them, the group's first leader is
        elected at once (its keys wait for it; the other replicas catch up after)."""
        members = {m.id: m.address for m in self._root().cluster.members()}
        replicas = {members.get(r, "") for r in child.replicas}
        if "" in replicas:
            return False
        waiting = set(replicas)
        elected = False
        deadline = self._clock() + HOSTED_WAIT_S
        while waiting:
            for address in sorted(waiting):
                query = ShardStatsQuery(child.group_id, None, "stale")
                try:
                    await self.pool.call(address, query, ShardStatsReply, timeout=PROBE_TIMEOUT_S)
                except CairnError:
                    continue
                waiting.discard(address)
            hosted = replicas - waiting
            if not elected and len(hosted) > len(replicas) // 2:
                elected = await self._elect_first_leader(child, hosted)
            if waiting:
                if self._clock() >= deadline:
                    log_event(
                        log,
                        "split.waiting_for_replicas",
                        group=child.group_id,
                        waiting=",".join(sorted(waiting)),
                    )
                    return False
                await asyncio.sleep(HOSTED_POLL_S)  # replicas start it within a reconcile
        return True

    async def _elect_first_leader(self, child: ShardInfo, hosted: set[str]) -> bool:
        """Have the parent's leader stand for election in the new group, once it hosts
        it, instead of the group waiting out an election timeout; True once asked (best
        effort: the timeout still elects someone)."""
        address = self.host.leader_address(child.parent)
        if address not in hosted:
            return False  # not yet (or no leader known): try again on the next pass
        try:
            await self.pool.call(
                address,
                ShardLeaderTransfer(child.group_id, address),
                ShardLeaderTransferReply,
                timeout=PROBE_TIMEOUT_S,
            )
        except CairnError as exc:
            log_event(log, "split.campaign_failed", logging.DEBUG, error=str(exc))
        return True

    # -- leaders -------------------------------------------------------------------------
    async def _balance_leaders(
        self, shards: list[ShardInfo], replies: dict[int, ShardStatsReply]
    ) -> None:
        """Hand one leadership from the busiest voter to the idlest (module doc, 3)."""
        voters = sorted(self.host.members.values())
        led: dict[str, list[int]] = {address: [] for address in voters}
        for shard in shards:
            reply = replies.get(shard.group_id)
            if reply is None or reply.leader_address not in led:
                return  # an election or an unreachable shard: look again next round
            led[reply.leader_address].append(shard.group_id)
        busiest = max(voters, key=lambda a: (len(led[a]), a))
        idlest = min(voters, key=lambda a: (len(led[a]), a))
        if len(led[busiest]) - len(led[idlest]) <= LEADER_SKEW_MAX:
            return
        group = max(led[busiest], key=lambda g: (self.stats.loads.get(g, 0.0), g))
        try:
            await self.pool.call(
                busiest,
                ShardLeaderTransfer(group, idlest),
                ShardLeaderTransferReply,
                timeout=PROBE_TIMEOUT_S,
            )
        except RemoteError as exc:
            log_event(log, "split.transfer_refused", logging.DEBUG, group=group, error=str(exc))
            return
        self.stats.leader_transfers += 1
        log_event(log, "split.leader_moved", group=group, frm=busiest, to=idlest)
