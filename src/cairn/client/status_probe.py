"""What `cairn status` shows: one probe of a running cluster, gathered into typed values.

Theory of operation. A cluster is described by its `cluster.json` (`ClusterFile`). The
probe asks, concurrently and each with a short deadline:

- every node's admin `/health` (HTTP), so a node that is down shows as down;
- the root group, through `MetaClient`, for the cluster map (members, liveness, admin
  state, heartbeat figures, partition owners) and the shard directory;
- every metadata voter for `RaftStatus` of the root group and of each index shard, which
  gives each group's leader and term as the voters themselves see them;
- every storage node for `ChunkStats`, and the index shards for the logical bytes of all
  objects, which together give the dedup ratio;
- every storage node's repair/rebalance worker (`RepairStatus`) for its progress, and
  the cluster map for the partitions that still have data to move.

A part that cannot be reached is recorded as missing (None, "down", or a line in
`errors`), never raised: status is what an operator runs when things are broken.

The figures that are pure arithmetic over the map (`partition_balance`,
`dedup_ratio`) are plain functions, so they can be checked without processes.
"""

import asyncio
import http.client
import json
from collections.abc import Sequence
from typing import Any

import msgspec

from cairn.base.errors import CairnError
from cairn.client.cluster_file import ClusterFile
from cairn.meta.clustermap import Member
from cairn.meta.directory import FIRST_SHARD_GROUP_ID, ROOT_GROUP_ID
from cairn.node.chunk_messages import ChunkStats, ChunkStatsReply
from cairn.node.meta_client import MetaClient
from cairn.node.meta_messages import ClusterViewReply, DirectoryReply
from cairn.node.repair import RepairProgress, RepairStatus
from cairn.placement import NodeState
from cairn.raft.kv_service import RaftStatus, RaftStatusReply
from cairn.wire import RpcPool, derive_auth_key

PROBE_TIMEOUT_SECONDS = 2.0
"""Deadline of each question; a node slower than this counts as unreachable."""
META_TIMEOUT_SECONDS = 5.0
"""Budget of a metadata call, which may retry across voters during an election."""


def health(host: str, port: int, timeout: float = 2.0) -> tuple[int, dict[str, Any]] | None:
    """(status, body) of GET /health on an admin port, or None if nothing answers."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        connection.close()


# -- the result ------------------------------------------------------------------------


class NodeStatus(msgspec.Struct, frozen=True):
    """One node, as the cluster file and the cluster map know it (either may lack it)."""

    name: str
    member_id: str | None
    address: str
    health: str
    """`ok`, `unhealthy`, `down` (no answer) or `n/a` (no admin address known)."""
    admin: str | None = None
    liveness: str | None = None
    capacity_bytes: int = 0
    used_bytes: int = 0
    load: float = 0.0
    weight: float = 0.0
    partitions: int = 0
    raft_id: int = 0
    pid: int | None = None
    zone: str = ""
    rack: str = ""
    host: str = ""


class ReplicaStatus(msgspec.Struct, frozen=True):
    node: str
    role: str
    term: int
    leader: str | None
    commit_index: int
    applied_index: int


class GroupStatus(msgspec.Struct, frozen=True):
    """One metadata Raft group (`root`, or an index shard)."""

    group_id: int
    kind: str
    leader: str | None
    """Node name of the leader the highest-term replica names; None during an election."""
    term: int
    replicas: list[ReplicaStatus]
    unreachable: list[str]


class Balance(msgspec.Struct, frozen=True):
    partition_count: int
    replica_count: int
    per_member: dict[str, int]
    """Partition replicas owned by each member that holds placements (`holds_placements`):
    member id -> count."""
    min: int
    max: int
    mean: float
    under_replicated: int
    """Partitions with fewer than `replica_count` live owners."""


class Storage(msgspec.Struct, frozen=True):
    capacity_bytes: int | None
    """Sum over the members that hold placements (None: the map did not answer)."""
    used_bytes: int | None
    objects: int | None
    logical_bytes: int | None
    """Sum of the sizes of every object version (None: the index shards did not answer)."""
    stored_bytes: int | None
    """Chunk bytes on disk over every node, all replicas (None: no complete answer)."""
    dedup_ratio: float | None
    """logical bytes / (stored bytes / replica count); None when not computable."""


class RepairSummary(msgspec.Struct, frozen=True):
    """The repair/rebalance workers of every storage node that answered, summed."""

    nodes_asked: int
    nodes_reporting: int
    nodes_synced: int
    """Nodes whose last complete pass was at the current partition table (or later)."""
    passes_running: int
    partitions_total: int
    partitions_done: int
    chunks_missing: int
    bytes_remaining: int
    chunks_copied: int
    bytes_copied: int
    chunks_pushed: int
    chunks_dropped: int
    last_errors: dict[str, str]
    """Node name -> its worker's last error, for the nodes that have one."""


class ClusterStatus(msgspec.Struct, frozen=True):
    nodes: list[NodeStatus]
    groups: list[GroupStatus]
    map_epoch: int | None
    table_epoch: int | None
    balance: Balance | None
    storage: Storage
    directory_bootstrapped: bool | None
    """None: the root group did not answer."""
    rebalance_moving: int | None
    """Partitions with data to move from the previous table's owners (`moving_partitions`);
    the rebalancer drops the previous table when it is done."""
    repair: RepairSummary | None
    """None when no storage node answered `RepairStatus`."""
    errors: list[str]


# -- pure figures ----------------------------------------------------------------------


def owner_is_live(member: Member | None) -> bool:
    """Whether the member's copy counts, as placement sees it (up or draining)."""
    return member is not None and member.to_node().serves_data


def holds_placements(member: Member) -> bool:
    """Active and not given up on (a node that is merely down keeps its placements)."""
    return member.placement_state in (NodeState.UP, NodeState.DOWN)


def partition_balance(
    members: Sequence[Member], owners: Sequence[Sequence[str]], replica_count: int
) -> Balance:
    by_id = {m.id: m for m in members}
    counts = {m.id: 0 for m in members if holds_placements(m)}
    under = 0
    for replicas in owners:
        live = 0
        for owner in replicas:
            if owner in counts:
                counts[owner] += 1
            live += owner_is_live(by_id.get(owner))
        under += live < replica_count
    values = list(counts.values()) or [0]
    return Balance(
        partition_count=len(owners),
        replica_count=replica_count,
        per_member=counts,
        min=min(values),
        max=max(values),
        mean=sum(values) / len(values),
        under_replicated=under,
    )


def dedup_ratio(logical_bytes: int | None, stored_bytes: int | None, replicas: int) -> float | None:
    """Logical object bytes per stored byte of one copy (dedup and compression together)."""
    if logical_bytes is None or not stored_bytes or replicas < 1:
        return None
    return logical_bytes / (stored_bytes / replicas)


def moving_partitions(view: ClusterViewReply) -> int:
    """Partitions that have data to move: their previous table had owners and the current
    one names a different set. (A partition that had no owner before -- a new cluster
    filling up as nodes join -- has nothing to copy.)"""
    if view.owners is None or view.previous_owners is None:
        return 0
    pairs = zip(view.owners, view.previous_owners, strict=False)
    return sum(1 for new, old in pairs if old and set(new) != set(old))


# -- repair and rebalance workers -------------------------------------------------------


async def _repair_status(pool: RpcPool, address: str) -> RepairProgress | None:
    try:
        reply, _ = await pool.call(
            address, RepairStatus(), RepairProgress, timeout=PROBE_TIMEOUT_SECONDS
        )
    except (CairnError, OSError, TimeoutError):
        return None
    return reply


async def repair_progress(
    pool: RpcPool, addresses: Sequence[str], table_epoch: int
) -> RepairSummary | None:
    """Progress of the repair and rebalance workers (`RepairStatus` on each node), summed;
    None when no node answered."""
    answers = await asyncio.gather(*(_repair_status(pool, a) for a in addresses))
    reports = [a for a in answers if a is not None]
    if not reports:
        return None
    return RepairSummary(
        nodes_asked=len(addresses),
        nodes_reporting=len(reports),
        nodes_synced=sum(r.synced_epoch >= table_epoch for r in reports),
        passes_running=sum(r.running for r in reports),
        partitions_total=sum(r.partitions_total for r in reports),
        partitions_done=sum(r.partitions_done for r in reports),
        chunks_missing=sum(r.chunks_missing for r in reports),
        bytes_remaining=sum(r.bytes_remaining for r in reports),
        chunks_copied=sum(r.chunks_copied for r in reports),
        bytes_copied=sum(r.bytes_copied for r in reports),
        chunks_pushed=sum(r.chunks_pushed for r in reports),
        chunks_dropped=sum(r.chunks_dropped for r in reports),
        last_errors={r.node: r.last_error for r in reports if r.last_error},
    )


# -- probing ---------------------------------------------------------------------------


async def _health_of(admin_url: str) -> str:
    if not admin_url:
        return "n/a"
    hostport = admin_url.removeprefix("http://").removeprefix("https://").rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return "n/a"
    answer = await asyncio.to_thread(health, host, int(port), PROBE_TIMEOUT_SECONDS)
    if answer is None:
        return "down"
    return "ok" if answer[0] == 200 else "unhealthy"


async def _raft_status(pool: RpcPool, address: str, group: int) -> RaftStatusReply | None:
    try:
        reply, _ = await pool.call(
            address, RaftStatus(group), RaftStatusReply, timeout=PROBE_TIMEOUT_SECONDS
        )
    except (CairnError, OSError, TimeoutError):
        return None
    return reply


async def _chunk_stats(pool: RpcPool, address: str) -> ChunkStatsReply | None:
    try:
        reply, _ = await pool.call(
            address, ChunkStats(), ChunkStatsReply, timeout=PROBE_TIMEOUT_SECONDS
        )
    except (CairnError, OSError, TimeoutError):
        return None
    return reply


async def _group_statuses(
    pool: RpcPool, cluster: ClusterFile, group_ids: Sequence[int]
) -> list[GroupStatus]:
    voters = [n for n in cluster.nodes if n.raft_id] or list(cluster.nodes)
    by_raft_id = {n.raft_id: n.node_id for n in voters if n.raft_id}
    questions = [(g, n) for g in group_ids for n in voters]
    answers = await asyncio.gather(*(_raft_status(pool, n.rpc, g) for g, n in questions))
    groups: list[GroupStatus] = []
    for group in group_ids:
        replicas: list[ReplicaStatus] = []
        unreachable: list[str] = []
        for (g, node), reply in zip(questions, answers, strict=True):
            if g != group:
                continue
            if reply is None:
                unreachable.append(node.node_id)
                continue
            leader = by_raft_id.get(reply.leader_id, f"raft id {reply.leader_id}")
            replicas.append(
                ReplicaStatus(
                    node=node.node_id,
                    role=reply.role,
                    term=reply.term,
                    leader=leader if reply.leader_id else None,
                    commit_index=reply.commit_index,
                    applied_index=reply.applied_index,
                )
            )
        newest = max(replicas, key=lambda r: r.term, default=None)
        groups.append(
            GroupStatus(
                group_id=group,
                kind="root" if group == ROOT_GROUP_ID else "index shard",
                leader=newest.leader if newest is not None else None,
                term=newest.term if newest is not None else 0,
                replicas=replicas,
                unreachable=unreachable,
            )
        )
    return groups


def _node_statuses(
    cluster: ClusterFile,
    healths: dict[str, str],
    view: ClusterViewReply | None,
    balance: Balance | None,
) -> list[NodeStatus]:
    members = {m.name: m for m in view.members} if view is not None else {}
    partitions = balance.per_member if balance is not None else {}
    nodes: list[NodeStatus] = []
    for entry in cluster.nodes:
        member = members.pop(entry.node_id, None)
        nodes.append(
            _node_status(
                entry.node_id,
                member,
                entry.rpc,
                healths.get(entry.node_id, "n/a"),
                partitions,
                raft_id=entry.raft_id,
                pid=entry.pid,
            )
        )
    for member in members.values():  # in the map but not in the file (joined elsewhere)
        nodes.append(_node_status(member.name, member, member.address, "n/a", partitions))
    return nodes


def _node_status(
    name: str,
    member: Member | None,
    address: str,
    health_text: str,
    partitions: dict[str, int],
    *,
    raft_id: int = 0,
    pid: int | None = None,
) -> NodeStatus:
    if member is None:
        return NodeStatus(name, None, address, health_text, raft_id=raft_id, pid=pid)
    return NodeStatus(
        name=name,
        member_id=member.id,
        address=member.address or address,
        health=health_text,
        admin=str(member.admin),
        liveness=str(member.liveness),
        capacity_bytes=member.capacity_bytes,
        used_bytes=member.used_bytes,
        load=member.load,
        weight=member.weight,
        partitions=partitions.get(member.id, 0),
        raft_id=raft_id,
        pid=pid,
        zone=member.zone,
        rack=member.rack,
        host=member.host,
    )


async def _view_and_directory(
    meta: MetaClient, errors: list[str]
) -> tuple[ClusterViewReply | None, DirectoryReply | None]:
    view: ClusterViewReply | None = None
    directory: DirectoryReply | None = None
    try:
        view = await meta.cluster_view()
    except CairnError as exc:
        errors.append(f"cluster map unavailable: {exc}")
        return None, None
    try:
        directory = await meta.directory(refresh=True)
    except CairnError as exc:
        errors.append(f"shard directory unavailable: {exc}")
    return view, directory


async def _storage(
    meta: MetaClient,
    pool: RpcPool,
    view: ClusterViewReply | None,
    directory: DirectoryReply | None,
    errors: list[str],
) -> Storage:
    # Every member that holds chunks: up, down (its copies still count once it is back)
    # or draining. A lost or decommissioned one no longer holds any that count.
    serving = [m for m in view.members if holds_placements(m) or owner_is_live(m)] if view else []
    capacity = sum(m.capacity_bytes for m in serving) if view else None
    used = sum(m.used_bytes for m in serving) if view else None
    objects = logical = None
    if directory is not None and directory.shards:
        try:
            stats = await meta.bucket_stats(None)
        except CairnError as exc:
            errors.append(f"object statistics unavailable: {exc}")
        else:
            objects, logical = stats.objects, stats.bytes
    stored: int | None = None
    if serving:
        answers = await asyncio.gather(*(_chunk_stats(pool, m.address) for m in serving))
        if all(a is not None for a in answers):
            stored = sum(a.live_bytes for a in answers if a is not None)
    replicas = view.config.replica_count if view is not None else 0
    ratio = dedup_ratio(logical, stored, min(replicas, len(serving)))
    return Storage(capacity, used, objects, logical, stored, ratio)


async def probe_cluster(cluster: ClusterFile) -> ClusterStatus:
    """Everything `cairn status` shows, asked of the running cluster now."""
    pool = RpcPool("cli-status", derive_auth_key(cluster.secret))
    meta = MetaClient(pool, cluster.meta_addresses, timeout=META_TIMEOUT_SECONDS)
    errors: list[str] = []
    try:
        health_answers, (view, directory) = await asyncio.gather(
            asyncio.gather(*(_health_of(n.admin) for n in cluster.nodes)),
            _view_and_directory(meta, errors),
        )
        healths = {n.node_id: h for n, h in zip(cluster.nodes, health_answers, strict=True)}
        shard_ids = {s.group_id for s in directory.shards} if directory else set()
        group_ids = [ROOT_GROUP_ID, *sorted(shard_ids or {FIRST_SHARD_GROUP_ID})]
        groups = await _group_statuses(pool, cluster, group_ids)
        balance = None
        if view is not None and view.owners is not None:
            balance = partition_balance(view.members, view.owners, view.config.replica_count)
        storage = await _storage(meta, pool, view, directory, errors)
        repair = None
        if view is not None:
            holders = [m.address for m in view.members if holds_placements(m) or owner_is_live(m)]
            repair = await repair_progress(pool, holders, view.table_epoch)
    finally:
        await pool.close()
    return ClusterStatus(
        nodes=_node_statuses(cluster, healths, view, balance),
        groups=groups,
        map_epoch=view.epoch if view else None,
        table_epoch=view.table_epoch if view else None,
        balance=balance,
        storage=storage,
        directory_bootstrapped=None if directory is None else bool(directory.shards),
        rebalance_moving=moving_partitions(view) if view else None,
        repair=repair,
        errors=errors,
    )
