"""One node's chunk storage engine: segments, index, fsync policy, compaction, scrubbing."""
