"""Child processes that cannot outlive their parent.

Each node is started with PR_SET_PDEATHSIG=SIGKILL (Linux), so if the harness process
dies for any reason, even by kill -9, the kernel kills its nodes: no orphans are left
holding ports and data directories. `atexit` covers normal interpreter exit as well.
"""

import atexit
import ctypes
import ctypes.util
import os
import signal
import subprocess
import weakref
from collections.abc import Callable, Sequence

PR_SET_PDEATHSIG = 1
_live: "weakref.WeakSet[subprocess.Popen[bytes]]" = weakref.WeakSet()


def _die_with_parent() -> Callable[[], None] | None:
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    libc = ctypes.CDLL(library, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def spawn(argv: Sequence[str], env: dict[str, str], log_path: str) -> "subprocess.Popen[bytes]":
    """Start `argv` with stdout/stderr appended to `log_path`; it dies with us."""
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            list(argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent(),  # noqa: PLW1509 - only prctl, no locks taken
        )
    _live.add(process)
    return process


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_live):
        if process.poll() is None:
            process.kill()
            process.wait()
