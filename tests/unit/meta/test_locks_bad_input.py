"""Bad input to the lock state machine: a typed error, deterministically, and no state change."""

from typing import Any

import pytest

from cairn.base.errors import CairnError
from cairn.meta import locks
from cairn.meta.locks import (
    ERRORS_BY_CODE,
    LOCK_NAME_BYTES_MAX,
    REQUEST_ID_MAX,
    SESSION_ID_MAX,
    SESSION_LABEL_BYTES_MAX,
    SESSION_TTL_MS_MAX,
    SESSION_TTL_MS_MIN,
    Acquire,
    CheckFence,
    CloseSession,
    Command,
    ExpireSession,
    InvalidArgument,
    InvalidLockName,
    InvalidTtl,
    LockError,
    LockStateMachine,
    NotHeld,
    OpenSession,
    Release,
    Request,
    SessionExists,
    UnknownSession,
    encode_request,
    error_of,
)

LONG_NAME = "x" * (LOCK_NAME_BYTES_MAX + 1)
LONG_UTF8_NAME = "é" * (LOCK_NAME_BYTES_MAX // 2 + 1)  # few characters, too many bytes
NOT_AN_INT: Any = "3"
NOT_A_BOOL: Any = 1
BAD_MODE: Any = "upgrade"

# (command, error class) against a machine with session 1 holding "held" and session 2 open.
CASES: list[tuple[str, Command, type[LockError]]] = [
    ("empty name", Acquire(1, "", "exclusive", 9), InvalidLockName),
    ("oversized name", Acquire(1, LONG_NAME, "exclusive", 9), InvalidLockName),
    ("oversized utf-8 name", Acquire(1, LONG_UTF8_NAME, "shared", 9), InvalidLockName),
    ("release empty name", Release(1, "", 1), InvalidLockName),
    ("fence empty name", CheckFence("", 1), InvalidLockName),
    ("fence oversized name", CheckFence(LONG_NAME, 1), InvalidLockName),
    ("acquire unknown session", Acquire(77, "n", "shared", 1), UnknownSession),
    ("release unknown session", Release(77, "held", 1), UnknownSession),
    ("close unknown session", CloseSession(77), UnknownSession),
    ("expire unknown session", ExpireSession(77), UnknownSession),
    ("release not held", Release(2, "held", 1), NotHeld),
    ("release unused name", Release(1, "free", 1), NotHeld),
    ("release wrong request", Release(1, "held", 2), NotHeld),
    ("bad mode", Acquire(1, "n", BAD_MODE, 9), InvalidArgument),
    ("request id zero", Acquire(1, "n", "shared", 0), InvalidArgument),
    ("request id negative", Acquire(1, "n", "shared", -1), InvalidArgument),
    ("request id too big", Acquire(1, "n", "shared", REQUEST_ID_MAX + 1), InvalidArgument),
    ("request id not int", Acquire(1, "n", "shared", NOT_AN_INT), InvalidArgument),
    ("wait not bool", Acquire(1, "n", "shared", 9, NOT_A_BOOL), InvalidArgument),
    ("release request id zero", Release(1, "held", 0), InvalidArgument),
    ("ttl too short", OpenSession(3, SESSION_TTL_MS_MIN - 1), InvalidTtl),
    ("ttl too long", OpenSession(3, SESSION_TTL_MS_MAX + 1), InvalidTtl),
    ("ttl zero", OpenSession(3, 0), InvalidTtl),
    ("ttl not int", OpenSession(3, NOT_AN_INT), InvalidTtl),
    ("session id zero", OpenSession(0, 1_000), InvalidArgument),
    ("session id too big", OpenSession(SESSION_ID_MAX + 1, 1_000), InvalidArgument),
    ("label too long", OpenSession(3, 1_000, "l" * (SESSION_LABEL_BYTES_MAX + 1)), InvalidArgument),
    ("session id reused", OpenSession(1, 5_000), SessionExists),
    ("live session, other label", OpenSession(2, 1_000, "other"), SessionExists),
]


def fresh() -> LockStateMachine:
    m = LockStateMachine()
    assert m.execute(OpenSession(1, 1_000)).status == "ok"
    assert m.execute(OpenSession(2, 1_000)).status == "ok"
    assert m.execute(Acquire(1, "held", "exclusive", 1)).status == "granted"
    return m


@pytest.mark.parametrize(("command", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_a_typed_error_and_changes_nothing(
    command: Command, error: type[LockError]
) -> None:
    m = fresh()
    before = m.snapshot()
    result = m.execute(command)
    assert result.status == "error" and result.error == error.code and result.message
    raised = error_of(result)
    assert type(raised) is error and isinstance(raised, CairnError)
    assert m.snapshot() == before
    assert fresh().execute(command) == result  # deterministic
    m.check_invariants()


def test_error_codes_are_unique_and_complete() -> None:
    subclasses = {
        c for c in vars(locks).values() if isinstance(c, type) and issubclass(c, LockError)
    }
    assert set(ERRORS_BY_CODE.values()) == subclasses - {LockError}
    assert all(code == cls.code for code, cls in ERRORS_BY_CODE.items())


def test_bad_input_through_the_log_gives_the_same_error() -> None:
    m = fresh()
    index = 1
    applied = 0
    for _, command, error in CASES:
        try:
            data = encode_request(Request(index, command))
        except LockError:
            continue  # not encodable at all (an int beyond 64 bits)
        out = m.apply(index, data)
        index += 1
        if out is None:
            continue  # msgspec's type check refused it on decode (wrong type)
        assert out[1].error == error.code, command
        applied += 1
    assert applied >= len(CASES) - 6
    m.check_invariants()
