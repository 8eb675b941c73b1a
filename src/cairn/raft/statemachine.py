"""The interface between a Raft group and the state machine it replicates.

The driver hands every committed entry to `apply(index, data)` in log order, exactly once
per replica, and returns whatever `apply` returns to the proposer of that entry. The
machine must be deterministic (no clock, no randomness, no IO): replicas that apply the
same entries hold the same state and produce the same snapshot bytes. The key-value
machine of `raft.kv` and the metadata machines of `cairn.meta` implement it.
"""

from typing import Protocol, runtime_checkable


@runtime_checkable
class StateMachine(Protocol):
    """What the Raft driver needs from the machine of a group."""

    applied_index: int

    def apply(self, index: int, data: bytes) -> object:
        """Apply the committed entry at `index` (> `applied_index`); returns its result."""
        ...

    def mark_applied(self, index: int) -> None:
        """A committed entry without a command (no-op, membership change) at `index`."""
        ...

    def snapshot(self) -> bytes:
        """The whole state, framed; identical on every replica at the same index."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a `snapshot()`."""
        ...
