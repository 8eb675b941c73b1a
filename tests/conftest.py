"""Suite-wide settings: hypothesis profiles (CI runs a fixed, derandomised profile)."""

import asyncio
import os

import pytest
import uvloop
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    """Async tests run on uvloop, the loop production processes use."""
    return uvloop.EventLoopPolicy()
