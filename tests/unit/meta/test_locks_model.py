"""The lock state machine against a tiny model, driven by hypothesis.

Two replicas apply the same encoded commands; now and then the second one is rebuilt from
the first one's snapshot. After every step: both replicas hold identical snapshots and
returned identical results, the result equals the model's, and the grant/release history
seen so far (only from results, not from the state) has at most one exclusive holder and
never exclusive with shared, FIFO grants per name, strictly increasing fencing tokens and
no grant to a session that has ended.
"""

from dataclasses import dataclass, field

import msgspec
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from cairn.meta.locks import (
    EXCLUSIVE,
    SHARED,
    Acquire,
    CheckFence,
    CloseSession,
    Command,
    ExpireSession,
    Grant,
    LockInfo,
    LockStateMachine,
    Mode,
    OpenSession,
    Release,
    Request,
    Result,
    Wait,
    encode_request,
)

NAMES = ("a", "b")  # few names: contention, queues and hand-overs
TTL_MS = 1_000
UNKNOWN_SESSION = 10**6


def error(code: str) -> Result:
    return Result("error", error=code)


@dataclass
class Model:
    """The same rules, written as plainly as possible."""

    sessions: dict[int, int] = field(default_factory=dict)  # id -> last request id
    session_last: int = 0
    token: int = 0
    holders: dict[str, list[Grant]] = field(default_factory=dict)
    queues: dict[str, list[Wait]] = field(default_factory=dict)

    def find(self, sid: int, name: str) -> Grant | Wait | None:
        requests: list[Grant | Wait] = [*self.holders.get(name, []), *self.queues.get(name, [])]
        for request in requests:
            if request.session_id == sid:
                return request
        return None

    def compatible(self, name: str, mode: Mode) -> bool:
        held = self.holders.get(name, [])
        return not held or (mode == SHARED and all(g.mode == SHARED for g in held))

    def grant(self, sid: int, name: str, rid: int, mode: Mode) -> Grant:
        self.token += 1
        grant = Grant(sid, name, rid, mode, self.token)
        self.holders.setdefault(name, []).append(grant)
        return grant

    def advance(self, name: str) -> list[Grant]:
        out = []
        queue = self.queues.get(name, [])
        while queue and self.compatible(name, queue[0].mode):
            w = queue.pop(0)
            out.append(self.grant(w.session_id, name, w.request_id, w.mode))
        return out

    def remove(self, request: Grant | Wait) -> None:
        if isinstance(request, Grant):
            self.holders[request.name].remove(request)
        else:
            self.queues[request.name].remove(request)

    def open(self, sid: int) -> Result:
        if sid in self.sessions:
            return Result("ok")
        if sid <= self.session_last:
            return error("session_exists")
        self.sessions[sid] = 0
        self.session_last = sid
        return Result("ok")

    def end(self, sid: int) -> Result:
        if sid not in self.sessions:
            return error("unknown_session")
        granted: list[Grant] = []
        released: list[Grant] = []
        cancelled: list[Wait] = []
        for name in sorted(NAMES):
            request = self.find(sid, name)
            if request is None:
                continue
            self.remove(request)
            if isinstance(request, Grant):
                released.append(request)
            else:
                cancelled.append(request)
            granted += self.advance(name)
        del self.sessions[sid]
        return Result(
            "ok", granted=tuple(granted), released=tuple(released), cancelled=tuple(cancelled)
        )

    def acquire(self, c: Acquire) -> Result:
        if c.session_id not in self.sessions:
            return error("unknown_session")
        current = self.find(c.session_id, c.name)
        if current is not None:
            if current.request_id != c.request_id or current.mode != c.mode:
                return error("already_held")
            if isinstance(current, Grant):
                return Result("granted", token=current.token)
            return Result("queued")
        if c.request_id <= self.sessions[c.session_id]:
            return error("stale_request")
        self.sessions[c.session_id] = c.request_id
        if not self.queues.get(c.name) and self.compatible(c.name, c.mode):
            return Result(
                "granted", token=self.grant(c.session_id, c.name, c.request_id, c.mode).token
            )
        if not c.wait:
            return Result("refused")
        self.queues.setdefault(c.name, []).append(Wait(c.session_id, c.name, c.request_id, c.mode))
        return Result("queued")

    def release(self, c: Release) -> Result:
        if c.session_id not in self.sessions:
            return error("unknown_session")
        current = self.find(c.session_id, c.name)
        if current is None or current.request_id != c.request_id:
            return error("not_held")
        self.remove(current)
        granted = tuple(self.advance(c.name))
        if isinstance(current, Grant):
            return Result("ok", granted=granted, released=(current,))
        return Result("ok", granted=granted, cancelled=(current,))

    def check_fence(self, c: CheckFence) -> Result:
        return Result("ok", current=any(g.token == c.token for g in self.holders.get(c.name, [])))


class LockMachineTest(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.a = LockStateMachine()
        self.b = LockStateMachine()
        self.model = Model()
        self.index = 0
        self.ever_opened: list[int] = [UNKNOWN_SESSION]
        self.next_session = 1
        self.request_last: dict[int, int] = {}
        # The history, kept only from results.
        self.live: set[int] = set()
        self.held: dict[str, dict[int, Grant]] = {n: {} for n in NAMES}
        self.arrivals: dict[str, list[tuple[int, int]]] = {n: [] for n in NAMES}
        self.token_max = 0
        self.restores = 0

    # -- running a command on everything -------------------------------------------------

    def run(self, command: Command) -> Result:
        self.index += 1
        data = encode_request(Request(self.index, command))
        out_a = self.a.apply(self.index, data)
        out_b = self.b.apply(self.index, data)
        assert out_a is not None and out_b is not None
        assert out_a == out_b
        result = out_a[1]
        expected = self.expected(command)
        assert msgspec.structs.replace(result, message="") == expected, (command, result)
        self.record(command, result)
        return result

    def expected(self, command: Command) -> Result:
        m = self.model
        if isinstance(command, OpenSession):
            return m.open(command.session_id)
        if isinstance(command, CloseSession | ExpireSession):
            return m.end(command.session_id)
        if isinstance(command, Acquire):
            return m.acquire(command)
        if isinstance(command, Release):
            return m.release(command)
        return m.check_fence(command)

    def new_grant(self, grant: Grant) -> None:
        assert grant.token > self.token_max, "fencing tokens must increase"
        self.token_max = grant.token
        assert grant.session_id in self.live, "grant to a session that has ended"
        holders = self.held[grant.name]
        assert grant.session_id not in holders
        if grant.mode == EXCLUSIVE:
            assert not holders, "exclusive grant while held"
        else:
            assert all(g.mode == SHARED for g in holders.values()), "shared with exclusive"
        holders[grant.session_id] = grant

    def record(self, command: Command, result: Result) -> None:
        if isinstance(command, OpenSession) and result.status == "ok":
            self.live.add(command.session_id)
        for grant in result.released:
            assert self.held[grant.name].pop(grant.session_id) == grant
        for wait in result.cancelled:
            self.arrivals[wait.name].remove((wait.session_id, wait.request_id))
        if isinstance(command, Acquire):
            key = (command.session_id, command.request_id)
            holder = self.held[command.name].get(command.session_id)
            if result.status == "granted" and (holder is None or holder.token != result.token):
                self.new_grant(
                    Grant(
                        command.session_id,
                        command.name,
                        command.request_id,
                        command.mode,
                        result.token,
                    )
                )
            if result.status == "queued" and key not in self.arrivals[command.name]:
                self.arrivals[command.name].append(key)
        for grant in result.granted:  # waiters: strictly in arrival order
            arrivals = self.arrivals[grant.name]
            assert arrivals and arrivals[0] == (grant.session_id, grant.request_id), "not FIFO"
            arrivals.pop(0)
            self.new_grant(grant)
        if isinstance(command, CloseSession | ExpireSession) and result.status == "ok":
            self.live.discard(command.session_id)
            assert all(command.session_id not in h for h in self.held.values())

    def pick_session(self, data: st.DataObject) -> int:
        """Mostly a live session; sometimes one that has ended, or was never opened."""
        live = sorted(self.live)
        if live and data.draw(st.integers(0, 9), label="live?") > 0:
            return data.draw(st.sampled_from(live), label="session")
        return data.draw(st.sampled_from(self.ever_opened), label="session")

    # -- rules ---------------------------------------------------------------------------

    @initialize(count=st.integers(2, 4))
    def open_sessions(self, count: int) -> None:
        for _ in range(count):
            self.open_session(reuse=False)

    @precondition(lambda self: len(self.live) < 5)
    @rule(reuse=st.booleans())
    def open_session(self, reuse: bool) -> None:
        if reuse and len(self.ever_opened) > 1:
            sid = self.ever_opened[-1]  # a retry, or an id that has ended: never reused
        else:
            sid = self.next_session
            self.next_session += 1
        self.run(OpenSession(sid, TTL_MS))
        if sid not in self.ever_opened:
            self.ever_opened.append(sid)

    @rule(
        data=st.data(),
        name=st.sampled_from(NAMES),
        mode=st.sampled_from([EXCLUSIVE, SHARED]),
        wait=st.booleans(),
        kind=st.sampled_from(["fresh", "fresh", "fresh", "retry", "stale"]),
    )
    def acquire(self, data: st.DataObject, name: str, mode: Mode, wait: bool, kind: str) -> None:
        sid = self.pick_session(data)
        last = self.request_last.get(sid, 0)
        current = self.model.find(sid, name)
        if kind == "retry" and current is not None:
            rid, mode = current.request_id, current.mode
        elif kind == "stale" and last > 0:
            rid = data.draw(st.integers(1, last))
        else:
            rid = last + 1
        self.request_last[sid] = max(last, rid)
        self.run(Acquire(sid, name, mode, rid, wait))

    @rule(data=st.data(), mode=st.sampled_from([EXCLUSIVE, SHARED, SHARED]))
    def acquire_busy_name(self, data: st.DataObject, mode: Mode) -> None:
        """A fresh waiting request for a name in use: builds queues to hand over."""
        busy = [n for n in NAMES if self.model.holders.get(n)]
        live = sorted(self.live)
        if not busy or not live:
            return
        name = data.draw(st.sampled_from(busy), label="name")
        sid = data.draw(st.sampled_from(live), label="session")
        rid = self.request_last.get(sid, 0) + 1
        self.request_last[sid] = rid
        self.run(Acquire(sid, name, mode, rid, True))

    @rule(data=st.data(), name=st.sampled_from(NAMES), right=st.booleans())
    def release(self, data: st.DataObject, name: str, right: bool) -> None:
        requests: list[Grant | Wait] = []
        for n in NAMES:
            requests += [*self.model.holders.get(n, []), *self.model.queues.get(n, [])]
        if right and requests:  # an existing grant or wait
            request = data.draw(st.sampled_from(requests), label="request")
            self.run(Release(request.session_id, request.name, request.request_id))
        else:
            sid = self.pick_session(data)
            self.run(Release(sid, name, data.draw(st.integers(1, 4), label="request id")))

    @precondition(lambda self: len(self.live) >= 3)
    @rule(data=st.data(), expire=st.booleans())
    def end_session(self, data: st.DataObject, expire: bool) -> None:
        sid = self.pick_session(data)
        self.run(ExpireSession(sid) if expire else CloseSession(sid))

    @rule(data=st.data(), name=st.sampled_from(NAMES))
    def check_fence(self, data: st.DataObject, name: str) -> None:
        token = data.draw(st.integers(0, self.token_max + 1))
        result = self.run(CheckFence(name, token))
        assert result.current == (token in {g.token for g in self.held[name].values()})

    @rule()
    def no_op_entry(self) -> None:
        self.index += 1
        self.a.mark_applied(self.index)
        self.b.mark_applied(self.index)

    @precondition(lambda self: self.index > 0)
    @rule()
    def restore_replica_from_snapshot(self) -> None:
        self.b = LockStateMachine()
        self.b.restore(self.a.snapshot())
        self.restores += 1

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def replicas_are_identical(self) -> None:
        assert self.a.snapshot() == self.b.snapshot()
        assert self.a.applied_index == self.b.applied_index == self.index

    @invariant()
    def state_matches_model_and_history(self) -> None:
        self.a.check_invariants()
        assert self.a.token_last == self.model.token == self.token_max
        for name in NAMES:
            holders = tuple(sorted(self.model.holders.get(name, []), key=lambda g: g.token))
            waiters = tuple(self.model.queues.get(name, []))
            info = self.a.lock_info(name)
            expected = LockInfo(name, holders, waiters) if holders or waiters else None
            assert info == expected
            assert {g.session_id: g for g in holders} == self.held[name]
            assert [(w.session_id, w.request_id) for w in waiters] == self.arrivals[name]
        assert {s.session_id for s in self.a.sessions()} == self.live == set(self.model.sessions)


LockMachineTest.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None
)
test_lock_machine_against_model = LockMachineTest.TestCase
