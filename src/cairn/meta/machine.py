"""What every replicated state machine of `meta` looks like, and how its bytes are framed.

Theory of operation. A Raft group commits opaque entries; the driver hands each committed
entry to its state machine as `apply(index, data)`, in log order, exactly once per replica.
The machine decodes `data` into a typed command and changes its state deterministically:
every replica that applies the same entries in the same order holds the same state and
returns the same results, so nothing here may read a clock, draw a random number or touch
the disk. Time enters only as fields of commands (the leader stamps `now_s` when it
proposes), identifiers are derived from the log index or from counters in the state.

`StateMachine` (defined in `cairn.raft.statemachine`) is the interface the Raft driver
relies on (the key-value machine `cairn.raft.kv` satisfies it too). `ReplicatedMachine` is
the shared skeleton of the meta machines: `apply` decodes the command through a
`VersionedCodec`, runs `execute`, and turns the machine's typed errors into results
instead of exceptions -- a rejected command (bucket exists, unknown node) is an ordinary,
replicated outcome that the proposer reports to its caller, and it must leave the state
untouched. To make that true,
every `execute` validates fully before it mutates anything.

Framing. A command or snapshot is one format-version byte followed by msgpack
(msgspec, tagged union Structs). A reader rejects a version it does not know with
`CommandFormatError` / `SnapshotFormatError`; a future version 2 adds a decoder and an
explicit upgrade step from 1, never a silent reinterpretation. Raft already checksums and
length-frames its entries and snapshots, so the payload carries no checksum of its own.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from cairn.base.errors import CairnError

COMMAND_FORMAT_V1 = 1
SNAPSHOT_FORMAT_V1 = 1

T = TypeVar("T")
C = TypeVar("C")


class MetaError(CairnError):
    """Root of the errors of the meta machines; `code` is the S3-style machine name."""

    code: ClassVar[str] = "InternalError"


class CommandFormatError(MetaError):
    """A command is in an unknown format version or is not valid msgpack for its type."""

    code = "MalformedCommand"


class SnapshotFormatError(MetaError):
    """A snapshot is in an unknown format version or is malformed."""

    code = "MalformedSnapshot"


class VersionedCodec(Generic[T]):
    """Encode/decode one msgspec type behind a one-byte format version."""

    def __init__(
        self, kind: Any, version: int, error: type[CairnError] = CommandFormatError
    ) -> None:
        """`kind` is a msgspec-decodable type (a Struct or a union of tagged Structs)."""
        assert 0 < version < 256
        self._version = version
        self._error = error
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(kind)
        self._encoder = msgspec.msgpack.Encoder()

    def encode(self, value: T) -> bytes:
        try:
            return bytes([self._version]) + self._encoder.encode(value)
        except (msgspec.EncodeError, UnicodeEncodeError, OverflowError, TypeError) as exc:
            # OverflowError: an int beyond 64 bits; TypeError: a value msgpack cannot hold.
            raise self._error(f"cannot encode: {exc}") from exc

    def decode(self, data: bytes) -> T:
        if not data or data[0] != self._version:
            version = data[0] if data else None
            raise self._error(f"unknown format version {version} (expected {self._version})")
        try:
            return self._decoder.decode(memoryview(data)[1:])
        except (msgspec.DecodeError, ValueError) as exc:
            raise self._error(f"malformed: {exc}") from exc


class ReplicatedMachine(Generic[C]):
    """Skeleton shared by the meta machines: apply = decode, execute, errors as results."""

    commands: ClassVar[VersionedCodec[Any]]

    def __init__(self) -> None:
        self.applied_index = 0

    def apply(self, index: int, data: bytes) -> object:
        """Apply the entry at `index`; a typed error is returned, not raised (see module doc)."""
        assert index > self.applied_index, (index, self.applied_index)
        self.applied_index = index
        try:
            command: C = self.commands.decode(data)
            return self.execute(command)
        except MetaError as exc:
            return exc

    def mark_applied(self, index: int) -> None:
        assert index > self.applied_index, (index, self.applied_index)
        self.applied_index = index

    def execute(self, command: C) -> object:
        """Run one decoded command at `applied_index`; raises the machine's `MetaError`s."""
        raise NotImplementedError
