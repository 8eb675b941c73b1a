"""Ports for nondeterminism: time and randomness, with their real adapters.

Pure cores never read the clock or draw random numbers themselves; they are handed a
`Clock` and an `Rng`, so the simulator (`cairn.sim`) can substitute virtual time and a
seeded generator and replay a run exactly.
"""

from cairn.runtime.clock import Clock, SystemClock
from cairn.runtime.event_loop import install_event_loop_policy
from cairn.runtime.rng import Rng, SystemRng

__all__ = ["Clock", "Rng", "SystemClock", "SystemRng", "install_event_loop_policy"]
