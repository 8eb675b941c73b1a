"""The linearizability checker accepts linearizable histories and rejects the rest."""

from cairn.sim.linearizability import (
    INFINITY,
    UNKNOWN,
    Operation,
    OpKind,
    Verdict,
    check_history,
    check_key,
)

K = b"k"


def put(c: int, call: int, ret: int, v: bytes) -> Operation:
    return Operation(c, K, OpKind.PUT, call, ret, value=v, output=None)


def get(c: int, call: int, ret: int, out: object) -> Operation:
    return Operation(c, K, OpKind.GET, call, ret, output=out)  # type: ignore[arg-type]


def cas(c: int, call: int, ret: int, exp: bytes | None, new: bytes, ok: object) -> Operation:
    return Operation(c, K, OpKind.CAS, call, ret, value=new, expected=exp, output=ok)  # type: ignore[arg-type]


def test_sequential_history_is_linearizable() -> None:
    ops = [
        put(1, 0, 1, b"a"),
        get(2, 2, 3, b"a"),
        cas(1, 4, 5, b"a", b"b", True),
        get(2, 6, 7, b"b"),
    ]
    assert check_key(ops) == Verdict.OK


def test_concurrent_reads_may_see_either_value() -> None:
    ops = [put(1, 0, 10, b"a"), get(2, 1, 2, None), get(3, 3, 4, b"a")]
    assert check_key(ops) == Verdict.OK


def test_stale_read_after_a_completed_write_is_rejected() -> None:
    ops = [put(1, 0, 1, b"a"), put(1, 2, 3, b"b"), get(2, 4, 5, b"a")]
    assert check_key(ops) == Verdict.VIOLATION


def test_reads_going_back_in_time_are_rejected() -> None:
    """Two sequential reads during one long write: new then old is not linearizable."""
    ops = [put(1, 0, 1, b"a"), put(1, 2, 100, b"b"), get(2, 3, 4, b"b"), get(3, 5, 6, b"a")]
    assert check_key(ops) == Verdict.VIOLATION


def test_two_successful_cas_from_the_same_value_are_rejected() -> None:
    ops = [put(1, 0, 1, b"a"), cas(2, 2, 10, b"a", b"x", True), cas(3, 2, 10, b"a", b"y", True)]
    assert check_key(ops) == Verdict.VIOLATION


def test_an_indeterminate_write_may_or_may_not_have_happened() -> None:
    lost = Operation(1, K, OpKind.PUT, 2, INFINITY, value=b"b", output=UNKNOWN)
    seen = [put(1, 0, 1, b"a"), lost, get(2, 5, 6, b"b"), get(2, 7, 8, b"b")]
    unseen = [put(1, 0, 1, b"a"), lost, get(2, 5, 6, b"a")]
    assert check_key(seen) == Verdict.OK
    assert check_key(unseen) == Verdict.OK
    flip_flop = [put(1, 0, 1, b"a"), lost, get(2, 5, 6, b"b"), get(2, 7, 8, b"a")]
    assert check_key(flip_flop) == Verdict.VIOLATION


def test_histories_are_checked_per_key() -> None:
    other = Operation(9, b"other", OpKind.GET, 0, 1, output=b"never written")
    verdicts = check_history([put(1, 0, 1, b"a"), get(2, 2, 3, b"a"), other])
    assert verdicts == {K: Verdict.OK, b"other": Verdict.VIOLATION}


def test_a_search_that_runs_out_of_budget_says_unknown() -> None:
    ops = [put(i, 0, 100, b"v%d" % i) for i in range(12)] + [get(99, 101, 102, b"zz")]
    assert check_key(ops, max_steps=50) == Verdict.UNKNOWN
