"""A tiny seeded generator for strategies that need randomness in tests and simulation.

SplitMix64 (Steele, Lea and Flood, 2014): a 64-bit counter advanced by the golden-ratio
constant and mixed by two multiply-xorshift rounds. It is fast, passes BigCrush, and lets a
pure module draw reproducible numbers without importing `random`. Not for secrets.
"""

_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15


class SplitMix64:
    """Callable: each call returns the next float in [0, 1)."""

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK

    def next_u64(self) -> int:
        self._state = (self._state + _GAMMA) & _MASK
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def __call__(self) -> float:
        return (self.next_u64() >> 11) * 2.0**-53
