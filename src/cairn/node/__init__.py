"""The node server process: hosts Raft groups and the chunkstore, serves RPC and admin HTTP."""
