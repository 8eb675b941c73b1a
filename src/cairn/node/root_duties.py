"""Work only the root group's leader does: liveness ticks and bootstrapping the directory.

Ticks: the leader proposes `Tick(now)` every period; the cluster map demotes members whose
last heartbeat is older than the configured times. A leader starts ticking only after it
has led for `down_after_s`: a node that heartbeated to the old leader during an election
could otherwise be marked down by a tick that came before its next heartbeat could commit.

Directory: a new cluster has no index shard until the root leader proposes `Bootstrap`
with the member ids of the nodes that host the metadata groups, once all of them joined.

GC: one mark-and-sweep round every `gc_interval_s` (`gc_coordinator`).

Admin credentials: when the node was given `admin_access_key`/`admin_secret_key` (what
`cairn up` writes to cluster.json), the leader makes sure the root group holds an admin
user with that key (`meta.users`), sealed under the cluster secret; once per leadership.

Moves: after a table change the previous table stays in the map (readers fall back to
it, owners that left keep their copies) until every live owner of the new table has
reported, in its heartbeat, that it holds all the data of its partitions at the new
epoch. Then the leader proposes `MovesDone`, and former owners may clean up.
"""

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cairn.base.errors import CairnError
from cairn.meta.clustermap import MovesDone
from cairn.meta.directory import ROOT_GROUP_ID, Bootstrap
from cairn.meta.machine import MetaError
from cairn.meta.root import RootMachine, encode_root_command, encode_user_command
from cairn.meta.users import (
    ADMIN_USER,
    SEAL_NONCE_BYTES,
    CreateKey,
    CreateUser,
    DeleteKey,
    SealedSecretError,
    open_secret,
    seal_secret,
)
from cairn.monitor.logs import log_event
from cairn.raft.driver import RaftGroup
from cairn.raft.host import RaftHost
from cairn.raft.types import Role

log = logging.getLogger("cairn.node")


@dataclass(frozen=True)
class AdminCredentials:
    """The bootstrap S3 credentials the leader installs as the admin user."""

    access_key: str
    secret_key: str
    cluster_secret: str


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
        self.admin_credentials: AdminCredentials | None = None
        """Set before `start` to have the leader install them (see the module doc)."""
        self._admin_installed = False

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
                self._admin_installed = False
                continue
            now = time.monotonic()
            if self._leading_since is None:
                self._leading_since = now
            try:
                await self._bootstrap_directory()
                await self._install_admin()
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

    async def _install_admin(self) -> None:
        """Make the admin user and its key exist as configured (idempotent)."""
        creds = self.admin_credentials
        if creds is None or self._admin_installed:
            return
        group = self.host.groups[ROOT_GROUP_ID]
        machine = group.machine
        assert isinstance(machine, RootMachine)
        users = machine.users
        try:
            key = users.key(creds.access_key)
        except MetaError:
            key = None
        if key is not None:
            try:
                same = open_secret(creds.cluster_secret, key.access_key, key.sealed_secret)
            except SealedSecretError:
                same = None
            if same == creds.secret_key and key.user == ADMIN_USER:
                self._admin_installed = True
                return
            await self._propose_users(group, encode_user_command(DeleteKey(creds.access_key)))
        now = time.time()
        if ADMIN_USER not in {u.name for u in users.users()}:
            await self._propose_users(group, encode_user_command(CreateUser(ADMIN_USER, now, True)))
        sealed = seal_secret(
            creds.cluster_secret,
            creds.access_key,
            creds.secret_key,
            secrets.token_bytes(SEAL_NONCE_BYTES),
        )
        command = CreateKey(creds.access_key, ADMIN_USER, now, sealed)
        await self._propose_users(group, encode_user_command(command))
        self._admin_installed = True
        log_event(log, "root.admin_installed", access_key=creds.access_key)

    @staticmethod
    async def _propose_users(group: RaftGroup, data: bytes) -> None:
        result = await group.propose_command(data)
        if isinstance(result, MetaError):
            raise result
