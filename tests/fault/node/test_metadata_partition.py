"""A metadata leader partitioned away from its group (network namespaces) can neither
serve stale metadata at `linearizable` or `lease` nor accept a write that is later lost.

The test client sits in the root namespace and still reaches every node; only the links
between the old leader and the other nodes are cut, so the test can ask the old leader
directly what it would answer its own clients.
"""

import asyncio
import time
from pathlib import Path

import pytest

from cairn.base.errors import CairnError, RemoteError
from cairn.localcluster import LocalCluster, NetnsLab, unavailable_reason
from cairn.meta.buckets import VersioningState
from cairn.meta.directory import FIRST_SHARD_GROUP_ID
from cairn.meta.index import PutObject, encode_command
from cairn.meta.manifest import Manifest, etag_of_bytes
from cairn.node.meta_client import MetaClient
from cairn.node.meta_messages import MetaPropose, MetaResult, ObjectHead, ObjectHeadReply
from cairn.raft.kv_service import RaftStatus, RaftStatusReply
from cairn.wire import RpcPool, derive_auth_key

pytestmark = [pytest.mark.netns, pytest.mark.xdist_group("processes")]
SECRET = "metadata-partition-secret"
SHARD = FIRST_SHARD_GROUP_ID
HOSTS = ["node-1", "node-2", "node-3"]


def manifest(body: bytes) -> Manifest:
    return Manifest(len(body), etag_of_bytes(body), time.time(), inline=body)


async def shard_leader(pool: RpcPool, cluster: LocalCluster, deadline_s: float = 20) -> str:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for node_id, node in cluster.nodes.items():
            try:
                status, _ = await pool.call(
                    node.rpc_address, RaftStatus(SHARD), RaftStatusReply, timeout=1
                )
            except CairnError:
                continue
            if status.role == "leader":
                return node_id
        await asyncio.sleep(0.05)  # polling a condition with a deadline
    raise AssertionError("no shard leader")


async def scenario(lab: NetnsLab, cluster: LocalCluster) -> None:
    pool = RpcPool("test", derive_auth_key(SECRET))
    meta = MetaClient(pool, [n.rpc_address for n in cluster.nodes.values()], timeout=30)
    try:
        deadline = time.monotonic() + 30
        while not (await meta.directory(refresh=True)).shards:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)  # polling a condition with a deadline
        await meta.create_bucket("notes", "alice")
        await meta.put_object("notes", "k", manifest(b"v1"), VersioningState.UNVERSIONED)

        old = await shard_leader(pool, cluster)
        old_address = cluster.nodes[old].rpc_address
        for other in HOSTS:
            if other != old:
                lab.cut(old, other)

        # The majority elects a new leader and commits v2 (the client skips the old one).
        await meta.put_object("notes", "k", manifest(b"v2"), VersioningState.UNVERSIONED)

        # The old leader must not answer v1 at linearizable or lease, now or later.
        for level in ("linearizable", "lease"):
            for _ in range(3):
                try:
                    reply, _ = await pool.call(
                        old_address,
                        ObjectHead(SHARD, "notes", "k", None, level),
                        ObjectHeadReply,
                        timeout=1.5,
                    )
                except CairnError:
                    continue  # not_leader or no answer: both are correct
                assert reply.version.manifest is not None
                assert reply.version.manifest.inline == b"v2", f"stale {level} read"

        # A write sent to the old leader is not acknowledged ...
        lost = encode_command(PutObject("notes", "k", manifest(b"v3"), VersioningState.UNVERSIONED))
        with pytest.raises(CairnError) as info:
            await pool.call(old_address, MetaPropose(SHARD, lost), MetaResult, timeout=2)
        if isinstance(info.value, RemoteError):
            assert info.value.code in ("not_leader", "dropped")

        # ... and after healing, the acknowledged v2 is what everyone reads.
        lab.heal()
        deadline = time.monotonic() + 20
        while True:
            version = await meta.head_object("notes", "k", consistency="linearizable")
            assert version.manifest is not None and version.manifest.inline == b"v2"
            try:
                reply, _ = await pool.call(
                    old_address,
                    ObjectHead(SHARD, "notes", "k", None, "stale"),
                    ObjectHeadReply,
                    timeout=1,
                )
                if reply.version.manifest is not None and reply.version.manifest.inline == b"v2":
                    break  # the old leader caught up: its log holds v2 and not v3
            except CairnError:
                pass
            assert time.monotonic() < deadline, "the old leader never caught up"
            await asyncio.sleep(0.05)  # polling a condition with a deadline
    finally:
        await pool.close()


def test_partitioned_leader_serves_no_stale_reads_and_loses_no_writes(tmp_path: Path) -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with (
        NetnsLab(HOSTS) as lab,
        LocalCluster(tmp_path, 3, secret=SECRET, lab=lab, raft=True) as cluster,
    ):
        asyncio.run(scenario(lab, cluster))
