"""RPC front of the replicated KV state machine: what clients and `cairn bench raft` call.

Writes go through the log on the leader. A request that reaches a follower fails with
code `not_leader` and the leader's RPC address as the message (empty when unknown), so
clients go straight there. Reads take a consistency level (`linearizable`, `lease`,
`stale`); only `stale` is served by followers.
"""

import itertools
from typing import Literal

import msgspec

from cairn.base.errors import RemoteError
from cairn.raft.driver import RaftGroup
from cairn.raft.host import RaftHost
from cairn.raft.kv import Cas, Delete, KVError, Put, Request
from cairn.raft.types import NotLeader, ProposalDropped, ProposalTooLarge
from cairn.wire import CallContext, Reply, Router

KV_GROUP_FIRST = 1 << 24
"""Group id of the first key-value group; metadata groups (root 0, index shards 1, 2, ...)
live below it, so both kinds can share one host."""


class KvWrite(msgspec.Struct, frozen=True, tag=True):
    group: int
    op: Literal["put", "delete", "cas"]
    key: bytes
    value: bytes | None = None
    expected: bytes | None = None


class KvRead(msgspec.Struct, frozen=True, tag=True):
    group: int
    key: bytes
    consistency: Literal["linearizable", "lease", "stale"] = "linearizable"


class KvReply(msgspec.Struct, frozen=True, tag=True):
    ok: bool
    value: bytes | None = None


class RaftStatus(msgspec.Struct, frozen=True, tag=True):
    group: int


class RaftStatusReply(msgspec.Struct, frozen=True, tag=True):
    node_id: int
    leader_id: int
    term: int
    role: str
    commit_index: int
    applied_index: int
    snapshot_index: int


class KvService:
    def __init__(self, host: RaftHost) -> None:
        self._host = host
        self._op_ids = itertools.count(1)

    def register(self, router: Router) -> None:
        router.register(KvWrite, self._write)
        router.register(KvRead, self._read)
        router.register(RaftStatus, self._status)

    async def _status(self, request: RaftStatus, _payload: memoryview, _ctx: CallContext) -> Reply:
        group = self._group(request.group)
        node = group.node
        return RaftStatusReply(
            node_id=node.id,
            leader_id=node.leader_id,
            term=node.term,
            role=node.role.name.lower(),
            commit_index=node.commit_index,
            applied_index=group.machine.applied_index,
            snapshot_index=group.snapshot_index,
        )

    def _group(self, group_id: int) -> RaftGroup:
        group = self._host.groups.get(group_id)
        if group is None:
            raise RemoteError("no_such_group", f"group {group_id} is not hosted here")
        return group

    def _not_leader(self, group_id: int) -> RemoteError:
        return RemoteError("not_leader", self._host.leader_address(group_id))

    async def _write(self, request: KvWrite, _payload: memoryview, _ctx: CallContext) -> Reply:
        group = self._group(request.group)
        if request.op == "put":
            if request.value is None:
                raise RemoteError("bad_request", "put needs a value")
            command: Put | Delete | Cas = Put(request.key, request.value)
        elif request.op == "delete":
            command = Delete(request.key)
        else:
            command = Cas(request.key, request.expected, request.value)
        try:
            result = await group.propose(Request(next(self._op_ids), command))
        except NotLeader:
            raise self._not_leader(request.group) from None
        except ProposalTooLarge as exc:
            raise RemoteError("too_large", str(exc)) from None
        except ProposalDropped as exc:
            raise RemoteError("dropped", str(exc)) from None
        except KVError as exc:
            raise RemoteError("bad_request", str(exc)) from None
        return KvReply(result.ok, result.value)

    async def _read(self, request: KvRead, _payload: memoryview, _ctx: CallContext) -> Reply:
        group = self._group(request.group)
        try:
            value = await group.read(request.key, request.consistency)
        except NotLeader:
            raise self._not_leader(request.group) from None
        except ProposalDropped as exc:
            raise RemoteError("dropped", str(exc)) from None
        return KvReply(value is not None, value)
