"""State machines on Raft: cluster map, buckets, credentials, locks, shard directory, index."""
