"""Choose the event loop: uvloop when it is installed, the standard loop otherwise."""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from cairn.runtime.memory import tune_allocator

T = TypeVar("T")


def install_event_loop_policy() -> str:
    """Make new event loops uvloop loops if possible; return the name of the loop in use.

    Also tunes the allocator for large buffers (see `cairn.runtime.memory`): every
    process that runs Cairn's event loop moves chunk-sized buffers.
    """
    tune_allocator()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on the best available loop."""
    install_event_loop_policy()
    return asyncio.run(main)
