"""A linearizability checker for key-value histories (Wing & Gong, with Lowe's memoisation).

A history is a list of operations, each with the (virtual) time its client called it and
the time the client saw the result. An operation whose client timed out has no result
(`output is UNKNOWN`) and returns "at infinity": it may have taken effect at any point
after its call, or never (linearising it last is the same as never, for everyone else).

The search (Lowe, "Testing for linearizability", 2017; the algorithm of Porcupine):
walk the call/return events in time order; at a call, try to linearise that operation
now (the model accepts its output); at a return whose operation is not yet linearised,
backtrack. A cache of (set of linearised operations, model state) prunes states already
explored. Histories are checked per key (linearizability is compositional, Herlihy & Wing
1990), which keeps each search small. A step budget bounds the work; a history that runs
out of budget is reported as unknown, never as linearizable.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass
from typing import Final


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()
INFINITY: Final = 1 << 62


class OpKind(enum.Enum):
    PUT = "put"
    GET = "get"
    DELETE = "delete"
    CAS = "cas"


Output = bool | bytes | None | _Unknown


@dataclass(frozen=True, slots=True)
class Operation:
    client: int
    key: bytes
    kind: OpKind
    call: int
    ret: int
    """Return time; `INFINITY` for an operation whose outcome is unknown."""
    value: bytes | None = None
    """PUT: the value; CAS: the new value (None deletes)."""
    expected: bytes | None = None
    """CAS: the value compared against (None: absent)."""
    output: Output = UNKNOWN
    """GET: the value read; CAS/DELETE: whether it took effect; PUT: None."""


class Verdict(enum.Enum):
    OK = "ok"
    VIOLATION = "violation"
    UNKNOWN = "unknown"


def step(state: bytes | None, op: Operation) -> tuple[bool, bytes | None]:
    """The sequential model of one key: (is `op.output` possible here, state after)."""
    unknown = op.output is UNKNOWN
    if op.kind == OpKind.PUT:
        return True, op.value
    if op.kind == OpKind.GET:
        return unknown or op.output == state, state
    if op.kind == OpKind.DELETE:
        return unknown or op.output == (state is not None), None
    swapped = state == op.expected
    if not unknown and op.output != swapped:
        return False, state
    return True, (op.value if swapped else state)


class _Node:
    __slots__ = ("is_call", "match", "next", "op", "op_id", "prev")

    def __init__(self, op_id: int, op: Operation | None, is_call: bool) -> None:
        self.op_id = op_id
        self.op = op
        self.is_call = is_call
        self.match: _Node | None = None
        self.prev: _Node | None = None
        self.next: _Node | None = None


def _build(ops: list[Operation]) -> _Node:
    events: list[tuple[int, int, int]] = []
    for i, op in enumerate(ops):
        assert op.call <= op.ret, op
        events.append((op.call, 0, i))
        events.append((op.ret, 1, i))
    # At equal times calls sort first: treating touching operations as concurrent only
    # allows more orders, so it can never report a false violation.
    events.sort()
    head = _Node(-1, None, False)
    prev = head
    calls: dict[int, _Node] = {}
    for _, is_ret, i in events:
        node = _Node(i, ops[i], not is_ret)
        if is_ret:
            calls[i].match = node
        else:
            calls[i] = node
        prev.next = node
        node.prev = prev
        prev = node
    return head


def _lift(call: _Node) -> None:
    assert call.prev is not None and call.match is not None and call.match.prev is not None
    call.prev.next = call.next
    if call.next is not None:
        call.next.prev = call.prev
    ret = call.match
    ret.prev.next = ret.next  # type: ignore[union-attr]
    if ret.next is not None:
        ret.next.prev = ret.prev


def _unlift(call: _Node) -> None:
    ret = call.match
    assert ret is not None and ret.prev is not None and call.prev is not None
    ret.prev.next = ret
    if ret.next is not None:
        ret.next.prev = ret
    call.prev.next = call
    if call.next is not None:
        call.next.prev = call


def check_key(
    ops: list[Operation], initial: bytes | None = None, max_steps: int = 2_000_000
) -> Verdict:
    """Is this single-key history linearizable?"""
    if not ops:
        return Verdict.OK
    head = _build(ops)
    state = initial
    linearized = 0
    cache: set[tuple[int, bytes | None]] = set()
    stack: list[tuple[_Node, bytes | None]] = []
    entry = head.next
    steps = 0
    while head.next is not None:
        steps += 1
        if steps > max_steps:
            return Verdict.UNKNOWN
        assert entry is not None
        if entry.is_call:
            assert entry.op is not None
            ok, new_state = step(state, entry.op)
            if ok:
                new_linearized = linearized | (1 << entry.op_id)
                key = (new_linearized, new_state)
                if key not in cache:
                    cache.add(key)
                    stack.append((entry, state))
                    state = new_state
                    linearized = new_linearized
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if not stack:
                return Verdict.VIOLATION
            call, state = stack.pop()
            linearized &= ~(1 << call.op_id)
            _unlift(call)
            entry = call.next
    return Verdict.OK


def check_history(ops: list[Operation], max_steps_per_key: int = 2_000_000) -> dict[bytes, Verdict]:
    """Check each key's sub-history; returns the verdict per key."""
    by_key: dict[bytes, list[Operation]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    return {
        key: check_key(key_ops, None, max_steps_per_key) for key, key_ops in sorted(by_key.items())
    }
