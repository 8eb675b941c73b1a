"""Start, stop, kill and partition local node processes, for `cairn up` and the tests."""

from cairn.localcluster.harness import LocalCluster, NodeHandle, free_ports
from cairn.localcluster.netns import NetnsLab, unavailable_reason

__all__ = ["LocalCluster", "NetnsLab", "NodeHandle", "free_ports", "unavailable_reason"]
