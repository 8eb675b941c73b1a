"""A replicated key-value state machine: put, get, delete, compare-and-set, snapshot/restore.

Commands are msgspec Structs, encoded as msgpack behind a one-byte format version, so
that a log written today can be read after the format changes (decode goes through the
version byte). `apply` is deterministic: every replica that applies the same commands in
the same order holds the same map and returns the same results. `Get` through the log is
a linearizable read (it is ordered with the writes); `read` serves ReadIndex/lease reads
locally once `applied_index` has reached the read index.
"""

from __future__ import annotations

import msgspec

from cairn.base.errors import CairnError

COMMAND_FORMAT_V1 = 1
SNAPSHOT_FORMAT_V1 = 1
MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 64 * 1024


class KVError(CairnError):
    """A command or snapshot could not be encoded or decoded."""


class Put(msgspec.Struct, tag="put", frozen=True):
    key: bytes
    value: bytes


class Get(msgspec.Struct, tag="get", frozen=True):
    key: bytes


class Delete(msgspec.Struct, tag="del", frozen=True):
    key: bytes


class Cas(msgspec.Struct, tag="cas", frozen=True):
    """Set `key` to `new` (None deletes) iff its value is `expected` (None: absent)."""

    key: bytes
    expected: bytes | None
    new: bytes | None


Command = Put | Get | Delete | Cas


class Request(msgspec.Struct, frozen=True):
    """A command and the id its client uses to match the result."""

    op_id: int
    command: Command


class Result(msgspec.Struct, frozen=True):
    ok: bool
    value: bytes | None = None


class _SnapshotV1(msgspec.Struct, frozen=True):
    applied_index: int
    items: list[tuple[bytes, bytes]]


_request_decoder = msgspec.msgpack.Decoder(Request)
_snapshot_decoder = msgspec.msgpack.Decoder(_SnapshotV1)
_encoder = msgspec.msgpack.Encoder()


def encode_request(request: Request) -> bytes:
    key = request.command.key
    if len(key) > MAX_KEY_BYTES:
        raise KVError(f"key of {len(key)} bytes exceeds {MAX_KEY_BYTES}")
    value = getattr(request.command, "value", None) or getattr(request.command, "new", None)
    if value is not None and len(value) > MAX_VALUE_BYTES:
        raise KVError(f"value of {len(value)} bytes exceeds {MAX_VALUE_BYTES}")
    return bytes([COMMAND_FORMAT_V1]) + _encoder.encode(request)


def decode_request(data: bytes) -> Request:
    if not data or data[0] != COMMAND_FORMAT_V1:
        raise KVError("unknown command format")
    try:
        return _request_decoder.decode(data[1:])
    except msgspec.DecodeError as exc:
        raise KVError(f"malformed command: {exc}") from exc


class KVStateMachine:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.applied_index = 0

    def apply(self, index: int, data: bytes) -> tuple[Request, Result] | None:
        """Apply the command of the committed entry at `index` (None for a malformed one)."""
        assert index > self.applied_index, (index, self.applied_index)
        self.applied_index = index
        try:
            request = decode_request(data)
        except KVError:
            return None
        return request, self.execute(request.command)

    def execute(self, command: Command) -> Result:
        if isinstance(command, Put):
            self.data[command.key] = command.value
            return Result(True)
        if isinstance(command, Get):
            return Result(True, self.data.get(command.key))
        if isinstance(command, Delete):
            existed = self.data.pop(command.key, None) is not None
            return Result(existed)
        current = self.data.get(command.key)
        if current != command.expected:
            return Result(False, current)
        if command.new is None:
            self.data.pop(command.key, None)
        else:
            self.data[command.key] = command.new
        return Result(True, command.new)

    def read(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def mark_applied(self, index: int) -> None:
        """A committed entry with no command (no-op, membership change) at `index`."""
        assert index > self.applied_index
        self.applied_index = index

    def snapshot(self) -> bytes:
        items = sorted(self.data.items())
        return bytes([SNAPSHOT_FORMAT_V1]) + _encoder.encode(_SnapshotV1(self.applied_index, items))

    def restore(self, data: bytes) -> None:
        if not data or data[0] != SNAPSHOT_FORMAT_V1:
            raise KVError("unknown snapshot format")
        try:
            snap = _snapshot_decoder.decode(data[1:])
        except msgspec.DecodeError as exc:
            raise KVError(f"malformed snapshot: {exc}") from exc
        self.data = dict(snap.items)
        self.applied_index = snap.applied_index
