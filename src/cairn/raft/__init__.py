"""Consensus: a sans-IO core, the write-ahead log and snapshots, and an asyncio driver."""
