"""Ids, errors, limits and checksums shared by every layer. Standard library only
(plus the CRC32C extension), no IO."""

from cairn.base.checksum import crc32c, crc32c_extend
from cairn.base.errors import (
    AuthenticationError,
    CairnError,
    ConfigError,
    DeadlineExceeded,
    FrameError,
    PeerUnavailable,
    RemoteError,
)

__all__ = [
    "AuthenticationError",
    "CairnError",
    "ConfigError",
    "DeadlineExceeded",
    "FrameError",
    "PeerUnavailable",
    "RemoteError",
    "crc32c",
    "crc32c_extend",
]
