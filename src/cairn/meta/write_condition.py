"""Conditions on an object write that index commands carry: S3's conditional write
(`If-None-Match: *`, `If-Match`) and a lock's fencing token.

Their own module because both `PutObject` (`meta.index`) and `CompleteUpload`
(`meta.uploads`, which `meta.index` imports) carry them.
"""

import msgspec


class WriteCondition(msgspec.Struct, frozen=True):
    """S3's conditional write, checked when the put applies, so it is a compare-and-set:
    of two conditional writes racing for one key, exactly one can win."""

    if_none_match: bool = False
    """`If-None-Match: *`: only if the key has no current object."""
    if_match: str | None = None
    """`If-Match`: only if the current object's ETag is this (no quotes; `*`: any)."""


class Fence(msgspec.Struct, frozen=True, array_like=True):
    """The lock that guards a write and the fencing token its writer holds."""

    name: str
    token: int
