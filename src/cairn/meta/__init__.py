"""State machines on Raft: cluster map, buckets, credentials, locks, shard directory, index."""

from cairn.meta.buckets import BucketTable
from cairn.meta.clustermap import ClusterMap
from cairn.meta.directory import ShardDirectory
from cairn.meta.index import IndexShard
from cairn.meta.machine import MetaError
from cairn.meta.manifest import Manifest
from cairn.raft.statemachine import StateMachine

__all__ = [
    "BucketTable",
    "ClusterMap",
    "IndexShard",
    "Manifest",
    "MetaError",
    "ShardDirectory",
    "StateMachine",
]
