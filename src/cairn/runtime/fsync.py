"""Durability of directory entries, shared by every layer that creates, renames or
removes files it relies on (WAL segments, snapshots, chunk segments, node state)."""

import os


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make creations, renames and unlinks in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
