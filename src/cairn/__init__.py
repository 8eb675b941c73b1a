"""Cairn: a distributed object store with its own Raft, content-defined dedup and an S3 API.

The package is layered; imports point down the list in docs/architecture.md and CI
checks that with import-linter.
"""

__version__ = "0.1.0"
