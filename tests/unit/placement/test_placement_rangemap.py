"""Range map: split, merge and lookup against a model (a sorted list of range starts)."""

from bisect import bisect_right

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cairn.placement import RangeMap, encode_object_key

_KEYS = st.binary(max_size=4)
_BUCKETS = st.text(alphabet="abc.-0", min_size=1, max_size=5)


class RangeMapMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.map = RangeMap.single(1)
        self.model: list[tuple[bytes, int]] = [(b"", 1)]  # (range start, shard), sorted
        self.next_shard = 2

    def _model_lookup(self, key: bytes) -> int:
        starts = [start for start, _ in self.model]
        return self.model[bisect_right(starts, key) - 1][1]

    @rule(at=_KEYS)
    def split(self, at: bytes) -> None:
        starts = [start for start, _ in self.model]
        if at in starts:
            with pytest.raises(ValueError):
                self.map.split(at, self.next_shard)
            return
        epoch = self.map.epoch
        self.map = self.map.split(at, self.next_shard)
        self.model.insert(bisect_right(starts, at), (at, self.next_shard))
        self.next_shard += 1
        assert self.map.epoch == epoch + 1

    @precondition(lambda self: len(self.model) > 1)
    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.model) - 2))
        self.map = self.map.merge(index)
        del self.model[index + 1]

    @rule(key=_KEYS)
    def lookup(self, key: bytes) -> None:
        assert self.map.lookup(key) == self._model_lookup(key)
        low, high = self.map.bounds(self.map.index_of(key))
        assert low <= key and (high is None or key < high)

    @invariant()
    def same_ranges(self) -> None:
        assert list(self.map.splits) == [start for start, _ in self.model[1:]]
        assert list(self.map.shards) == [shard for _, shard in self.model]


TestRangeMap = RangeMapMachine.TestCase
TestRangeMap.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


@given(_BUCKETS, st.text(max_size=8), _BUCKETS, st.text(max_size=8))
def test_encoded_keys_sort_like_bucket_key_pairs(b1: str, k1: str, b2: str, k2: str) -> None:
    assert ((b1, k1) < (b2, k2)) == (encode_object_key(b1, k1) < encode_object_key(b2, k2))


def test_invalid_operations_are_refused() -> None:
    one = RangeMap.single(1).split(b"m", 2)
    with pytest.raises(ValueError):
        one.split(b"x", 2)  # shard already owns a range
    with pytest.raises(ValueError):
        one.merge(1)
    with pytest.raises(ValueError):
        RangeMap.single(1).split(b"", 2)
    with pytest.raises(ValueError):
        encode_object_key("bad\x00bucket", "key")
