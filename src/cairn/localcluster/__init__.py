"""Start, stop, kill and partition local node processes, for `cairn up` and the tests."""

from cairn.localcluster.harness import LocalCluster, NodeHandle, free_ports

__all__ = ["LocalCluster", "NodeHandle", "free_ports"]
