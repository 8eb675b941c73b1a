"""The metadata groups on real node processes: nodes join the cluster map, the root leader
bootstraps the shard directory, buckets and object manifests commit through Raft and read
back at every consistency level, and machine errors arrive with their S3 codes."""

import asyncio
import time
from pathlib import Path

import pytest

from cairn.base.errors import RemoteError
from cairn.localcluster import LocalCluster
from cairn.meta.buckets import VersioningState
from cairn.meta.directory import FIRST_SHARD_GROUP_ID
from cairn.meta.manifest import Manifest, etag_of_bytes
from cairn.node.meta_client import MetaClient
from cairn.raft.kv_service import RaftStatus, RaftStatusReply
from cairn.wire import RpcPool, derive_auth_key

pytestmark = pytest.mark.xdist_group("processes")
SECRET = "metadata-service-secret"


async def wait_for_directory(meta: MetaClient, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if (await meta.directory(refresh=True)).shards:
            return
        await asyncio.sleep(0.05)  # polling a condition with a deadline
    raise AssertionError("the directory was never bootstrapped")


async def scenario(cluster: LocalCluster) -> None:
    pool = RpcPool("test", derive_auth_key(SECRET))
    meta = MetaClient(pool, [n.rpc_address for n in cluster.nodes.values()])
    try:
        await wait_for_directory(meta)
        view = await meta.cluster_view()
        assert sorted(m.name for m in view.members) == ["node-1", "node-2", "node-3"]
        assert view.owners is not None and len(view.owners) == view.config.partition_count

        bucket = await meta.create_bucket("photos", "alice")
        assert bucket.owner == "alice"
        with pytest.raises(RemoteError) as info:
            await meta.create_bucket("photos", "bob")
        assert info.value.code == "BucketAlreadyExists"
        with pytest.raises(RemoteError) as info:
            await meta.create_bucket("Bad_Name", "bob")
        assert info.value.code == "InvalidBucketName"

        body = b"hello cairn"
        manifest = Manifest(len(body), etag_of_bytes(body), time.time(), inline=body)
        await meta.put_object("photos", "a/b.txt", manifest, VersioningState.UNVERSIONED)
        for level in ("linearizable", "lease", "stale"):
            if level == "stale":  # a follower may lag: poll it with a deadline
                deadline = time.monotonic() + 10
                while True:
                    try:
                        version = await meta.head_object("photos", "a/b.txt", consistency=level)
                        break
                    except RemoteError:
                        assert time.monotonic() < deadline
                        await asyncio.sleep(0.02)
            else:
                version = await meta.head_object("photos", "a/b.txt", consistency=level)
            assert version.manifest is not None and version.manifest.inline == body
        with pytest.raises(RemoteError) as info:
            await meta.head_object("photos", "missing")
        assert info.value.code == "NoSuchKey"
        page = await meta.list_objects("photos", prefix="a/", delimiter="/")
        assert [e.key for e in page.entries] == ["a/b.txt"]
        assert (await meta.bucket_stats("photos")).objects == 1
        with pytest.raises(RemoteError) as info:
            await meta.delete_bucket("photos", "alice")
        assert info.value.code == "BucketNotEmpty"
        await meta.delete_object("photos", "a/b.txt", VersioningState.UNVERSIONED)
        await meta.delete_bucket("photos", "alice")
        with pytest.raises(RemoteError) as info:
            await meta.get_bucket("photos")
        assert info.value.code == "NoSuchBucket"
    finally:
        await pool.close()


async def read_back_after_restart(cluster: LocalCluster) -> None:
    """The index shard, hosted because the directory named this node, is reopened from
    disk on restart and still holds what was committed."""
    pool = RpcPool("test", derive_auth_key(SECRET))
    meta = MetaClient(pool, [n.rpc_address for n in cluster.nodes.values()])
    try:
        await wait_for_directory(meta)
        version = await meta.head_object("kept", "k", consistency="linearizable")
        assert version.manifest is not None and version.manifest.inline == b"survives"
        for node in cluster.nodes.values():
            status, _ = await pool.call(
                node.rpc_address, RaftStatus(FIRST_SHARD_GROUP_ID), RaftStatusReply
            )
            assert status.applied_index > 0
    finally:
        await pool.close()


async def write_one(cluster: LocalCluster) -> None:
    pool = RpcPool("test", derive_auth_key(SECRET))
    meta = MetaClient(pool, [n.rpc_address for n in cluster.nodes.values()])
    try:
        await wait_for_directory(meta)
        await meta.create_bucket("kept", "alice")
        body = b"survives"
        manifest = Manifest(len(body), etag_of_bytes(body), time.time(), inline=body)
        await meta.put_object("kept", "k", manifest, VersioningState.UNVERSIONED)
    finally:
        await pool.close()


def test_metadata_on_raft(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, 3, secret=SECRET, raft=True) as cluster:
        asyncio.run(scenario(cluster))
        asyncio.run(write_one(cluster))
        for node_id in cluster.nodes:
            cluster.kill(node_id)
        for node_id in cluster.nodes:
            cluster.start_node(node_id)
        cluster.wait_healthy()
        asyncio.run(read_back_after_restart(cluster))
