"""The WAL against a tiny model: random appends, overwrites, hard states, compactions,
syncs, clean reopens and crashes (close without sync), on real files."""

import shutil
import tempfile
from dataclasses import dataclass, field, replace

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cairn.raft.wal import HardState, SnapshotMark, Wal, WalEntry

SEGMENT_SIZE_BYTES_MAX = 256


@dataclass
class Model:
    """What Raft would see: a floor, entries floor+1..last, and a hard state."""

    floor: SnapshotMark | None = None
    log: list[WalEntry] = field(default_factory=list)
    hs: HardState = field(default_factory=HardState)

    @property
    def floor_index(self) -> int:
        return 0 if self.floor is None else self.floor.index

    @property
    def last_index(self) -> int:
        return self.floor_index + len(self.log)

    def term_at(self, index: int) -> int:
        if index == self.floor_index:
            return 0 if self.floor is None else self.floor.term
        return self.log[index - self.floor_index - 1].term

    def copy(self) -> "Model":
        return replace(self, log=list(self.log))


class WalMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="wal-model-")
        self.wal, recovered = Wal.open(self.dir, SEGMENT_SIZE_BYTES_MAX)
        assert recovered.entries == []
        self.model = Model()
        self.durable = Model()

    def teardown(self) -> None:
        self.wal.close()
        shutil.rmtree(self.dir)

    @rule(
        back=st.integers(min_value=0, max_value=4),
        count=st.integers(min_value=1, max_value=4),
        bump=st.integers(min_value=0, max_value=1),
        size=st.integers(min_value=0, max_value=90),
    )
    def append(self, back: int, count: int, bump: int, size: int) -> None:
        first = max(self.model.floor_index + 1, self.model.last_index + 1 - back)
        term = self.model.term_at(first - 1) + bump
        batch = [WalEntry(first + i, term, bytes([i]) * size, kind=i) for i in range(count)]
        self.wal.append(batch)
        del self.model.log[first - self.model.floor_index - 1 :]
        self.model.log.extend(batch)

    @rule(
        bump=st.integers(min_value=0, max_value=1),
        vote=st.integers(0, 3),
        commit=st.integers(0, 50),
    )
    def set_hard_state(self, bump: int, vote: int, commit: int) -> None:
        old = self.model.hs
        if bump == 0 and old.vote != 0:
            vote = old.vote  # one vote per term
        hs = HardState(old.term + bump, vote, commit)
        self.wal.set_hard_state(hs)
        self.model.hs = hs

    @precondition(lambda self: self.model.last_index > self.model.floor_index)
    @rule(data=st.data(), matching=st.booleans())
    def compact(self, data: st.DataObject, matching: bool) -> None:
        m = self.model
        index = data.draw(st.integers(m.floor_index + 1, m.last_index + 2))
        if matching and index <= m.last_index:
            term = m.term_at(index)
            m.log = m.log[index - m.floor_index :]
        else:
            term = m.term_at(m.last_index) + 1  # a leader's snapshot from a later term
            m.log = []
        self.wal.compact(index, term)
        m.floor = SnapshotMark(index, term)

    @rule()
    def sync(self) -> None:
        self.wal.sync()
        self.durable = self.model.copy()

    @rule()
    def reopen_clean(self) -> None:
        self.sync()
        self._reopen()

    @rule()
    def crash(self) -> None:
        self.model = self.durable.copy()  # whatever was not synced is gone
        self._reopen()

    def _reopen(self) -> None:
        self.wal.close()
        self.wal, recovered = Wal.open(self.dir, SEGMENT_SIZE_BYTES_MAX)
        assert recovered.torn_tail is None
        assert recovered.hard_state == self.model.hs
        assert recovered.snapshot_mark == self.model.floor
        assert recovered.entries == self.model.log

    @invariant()
    def views_agree(self) -> None:
        assert self.wal.last_index == self.model.last_index
        assert self.wal.first_index == self.model.floor_index + 1
        assert self.wal.durable_last_index == self.durable.last_index
        assert self.wal.durable_hard_state == self.durable.hs
        assert self.wal.hard_state == self.model.hs


TestWalModel = WalMachine.TestCase
TestWalModel.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
