"""The node server process: hosts Raft groups and the chunkstore, serves RPC and admin HTTP."""

from cairn.node.server import NodeServer, run_node

__all__ = ["NodeServer", "run_node"]
