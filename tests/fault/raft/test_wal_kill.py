"""kill -9 a process that writes the WAL or saves snapshots, at seeded random points, and
check that everything it acknowledged is there and intact after recovery.

The child prints a line only after `sync()` (or `save()`) returned, so every line the
parent reads, including lines still in the pipe when the child died, is an acknowledged
write. Each test reuses one directory across its trials: every trial recovers the state
the previous kill left, so recovery after recovery is exercised too.
"""

import importlib.util
import os
import random
import selectors
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from cairn.raft.snapshot_store import SnapshotStore
from cairn.raft.wal import Wal

CHILD = Path(__file__).with_name("child_writer.py")
SEED = int(os.environ.get("CAIRN_FAULT_SEED", "20261126"))
WAL_TRIALS = 24
SNAPSHOT_TRIALS = 12
LINE_DEADLINE_S = 20.0

pytestmark = pytest.mark.slow


def load_child() -> ModuleType:
    """The child's module, for its deterministic payload functions."""
    spec = importlib.util.spec_from_file_location("cairn_fault_child_writer", CHILD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def start(mode: str, directory: Path, seed: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), mode, str(directory), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_lines(proc: subprocess.Popen[str], count: int) -> list[str]:
    """Read `count` lines, failing (not hanging) if the child stalls or dies."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + LINE_DEADLINE_S
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while len(lines) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "child wrote nothing for too long"
            if not sel.select(remaining):
                continue
            line = proc.stdout.readline()
            if not line:
                assert proc.stderr is not None
                pytest.fail(f"child exited early: {proc.wait()} {proc.stderr.read()}")
            lines.append(line)
    return lines


def kill_and_drain(proc: subprocess.Popen[str], delay_s: float) -> list[str]:
    """SIGKILL after `delay_s`; return the acknowledged lines still in the pipe."""
    time.sleep(delay_s)  # a random kill point, not synchronisation
    proc.kill()
    out, _ = proc.communicate(timeout=LINE_DEADLINE_S)
    return out.splitlines()


def test_kill_9_never_loses_an_acknowledged_wal_entry(tmp_path: Path) -> None:
    payload = load_child().payload
    rng = random.Random(SEED)
    directory = tmp_path / "wal"
    acked: dict[int, int] = {}  # index -> term
    hs_term_acked = 0
    for trial in range(WAL_TRIALS):
        seed = rng.randrange(2**32)
        proc = start("wal", directory, seed)
        lines = read_lines(proc, rng.randint(1, 30))
        lines += kill_and_drain(proc, rng.uniform(0, 0.004))
        for line in lines:
            first, last, term, hs_term = map(int, line.split())
            for index in range(first, last + 1):
                acked[index] = term
            hs_term_acked = max(hs_term_acked, hs_term)
        wal, recovered = Wal.open(directory)
        wal.close()
        context = f"seed {SEED} trial {trial} child seed {seed}"
        floor = 0 if recovered.snapshot_mark is None else recovered.snapshot_mark.index
        held = {entry.index: entry for entry in recovered.entries}
        assert recovered.hard_state.term >= hs_term_acked, context
        for index, term in acked.items():
            if index <= floor:
                continue  # compacted into a snapshot by the child
            entry = held.get(index)
            assert entry is not None, f"acknowledged entry {index} lost ({context})"
            assert entry.term == term, context
            assert entry.data == payload(index, term), context
    assert len(acked) > WAL_TRIALS
    assert floor > 0, "the child never compacted: the test lost half its coverage"
    assert len(list(directory.glob("*.wal"))) > 1, "the child never rolled a segment"


def test_kill_9_during_snapshot_save_leaves_a_readable_snapshot(tmp_path: Path) -> None:
    snapshot_chunks = load_child().snapshot_chunks
    rng = random.Random(SEED + 1)
    directory = tmp_path / "snap"
    saved = 0
    for trial in range(SNAPSHOT_TRIALS):
        seed = rng.randrange(2**32)
        proc = start("snap", directory, seed)
        lines = read_lines(proc, rng.randint(1, 4))
        lines += kill_and_drain(proc, rng.uniform(0, 0.01))
        saved = max([saved, *map(int, lines)])
        store = SnapshotStore(directory)
        latest = store.load_latest()
        context = f"seed {SEED} trial {trial} child seed {seed}"
        assert latest is not None, context
        assert latest.skipped == (), context
        assert latest.index >= saved, context
        assert latest.data == b"".join(snapshot_chunks(latest.index)), context
        assert len(store.paths()) <= 2, context
        assert not list(directory.glob("*.tmp")), context
