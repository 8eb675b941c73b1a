"""The `Rng` port: randomness for jitter, nonces and ids."""

import os
import random
from typing import Protocol


class Rng(Protocol):
    def random(self) -> float:
        """A float in [0, 1)."""
        ...

    def randbytes(self, n: int) -> bytes:
        """`n` random bytes. The system adapter returns cryptographically strong bytes."""
        ...


class SystemRng:
    """Real randomness: `os.urandom` for bytes (nonces must be unpredictable)."""

    def __init__(self) -> None:
        self._random = random.Random()

    def random(self) -> float:
        return self._random.random()

    def randbytes(self, n: int) -> bytes:
        return os.urandom(n)
