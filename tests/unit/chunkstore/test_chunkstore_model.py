"""A hypothesis state machine drives the store against a dict model, with restarts
(clean and crash-like), compaction and scrubbing in between."""

import hashlib
import os
import shutil
import tempfile

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cairn.chunkstore import ChunkNotFound, ChunkStore, Compactor, Scrubber, StoreOptions
from cairn.chunkstore.hint import HINT_FILE
from cairn.chunkstore.recovery import rebuild_index

POOL = []
for i in range(8):
    data = hashlib.sha256(str(i).encode()).digest() * (1 + i * 4)
    POOL.append((hashlib.sha256(data).digest(), data))

OPTIONS = StoreOptions(segment_bytes_max=700, fsync="none")  # page cache survives kill -9


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="cairn-model-")
        self.store = ChunkStore.open(self.dir, OPTIONS)
        self.model: dict[bytes, bytes] = {}
        self.logical = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(i=st.integers(0, len(POOL) - 1))
    def put(self, i: int) -> None:
        cid, data = POOL[i]
        assert self.store.put(cid, data) is (cid not in self.model)
        self.model[cid] = data
        self.logical += len(data)

    @rule(i=st.integers(0, len(POOL) - 1))
    def delete(self, i: int) -> None:
        cid, _ = POOL[i]
        assert self.store.delete(cid) is (cid in self.model)
        self.model.pop(cid, None)

    @rule(i=st.integers(0, len(POOL) - 1))
    def get(self, i: int) -> None:
        cid, _ = POOL[i]
        if cid in self.model:
            assert self.store.get(cid) == self.model[cid]
        else:
            try:
                self.store.get(cid)
            except ChunkNotFound:
                pass
            else:
                raise AssertionError("a deleted chunk was served")

    @rule()
    def restart(self) -> None:
        self.store.close()
        self.store = ChunkStore.open(self.dir, OPTIONS)
        assert not self.store.recovery_report.damage

    @rule()
    def crash_restart(self) -> None:
        # Like kill -9 after acknowledgements: descriptors closed, no checkpoint written.
        for seg in self.store._segments.values():
            seg.close()
        os.close(self.store._lock_fd)
        self.store = ChunkStore.open(self.dir, OPTIONS)
        assert not self.store.recovery_report.damage
        self.logical = self.store.usage().logical_bytes  # duplicates since the hint are lost

    @rule()
    def restart_without_hint(self) -> None:
        # A lost or damaged hint: the index is rebuilt from the segments alone.
        self.store.close()
        os.unlink(os.path.join(self.dir, HINT_FILE))
        self.store = ChunkStore.open(self.dir, OPTIONS)
        assert not self.store.recovery_report.hint_used
        assert not self.store.recovery_report.damage
        self.logical = self.store.usage().logical_bytes  # duplicates are not in the log

    @rule(ratio=st.sampled_from([0.0, 0.3, 0.7]))
    def compact(self, ratio: float) -> None:
        Compactor(self.store, garbage_ratio_min=ratio, io_bytes_per_s_max=0).run_once()

    @rule(pick=st.integers(0, 1000), rebuild=st.booleans())
    def compact_one(self, pick: int, rebuild: bool) -> None:
        # Any sealed segment, in any order: correctness must not depend on the policy.
        # Optionally rebuild the index from the segments alone right after, which is
        # where a wrongly dropped tombstone would show (a resurrected chunk).
        sealed = [s.number for s in self.store.segment_stats() if not s.active]
        if sealed:
            compactor = Compactor(self.store, io_bytes_per_s_max=0)
            compactor.compact_segment(sealed[pick % len(sealed)])
        if rebuild:
            self.restart_without_hint()

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def scrub(self) -> None:
        assert Scrubber(self.store, io_bytes_per_s_max=0).run_once().corrupt_ids == []

    @invariant()
    def matches_model(self) -> None:
        assert set(self.store.ids()) == set(self.model)
        assert self.store.has([cid for cid, _ in POOL]) == set(self.model)
        usage = self.store.usage()
        assert usage.live_bytes == sum(len(d) for d in self.model.values())
        assert usage.logical_bytes == self.logical
        assert usage.garbage_bytes >= 0
        assert usage.segment_count == len(self.store.segment_stats())

    @invariant()
    def segments_alone_give_the_same_index(self) -> None:
        # What a start-up without the hint would find: no lost or resurrected chunk.
        rebuilt = rebuild_index(self.dir)
        assert rebuilt.entries == self.store._index.entries


StoreMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50, deadline=None)
TestStoreModel = StoreMachine.TestCase
