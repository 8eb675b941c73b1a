"""kill -9 during a storm of concurrent writes: every acknowledged chunk survives
intact, acknowledged deletes stay deleted, and nothing torn is ever served.

Each trial starts `kill_writer.py`, reads its acknowledgements, sends SIGKILL after a
seeded random number of them, reads the rest of its output (everything it printed
was acknowledged before it died), reopens the store and checks it. A failure names its
seed; rerun one with `-k "kill9 and 17"`.
"""

import hashlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cairn.chunkstore import ChunkNotFound, ChunkStore, Scrubber

WRITER = Path(__file__).with_name("kill_writer.py")
TRIALS = 50
ACKS_BEFORE_KILL_MAX = 400
READ_LINES_MAX = 100_000


def _run_and_kill(directory: Path, seed: int, rng: random.Random) -> list[str]:
    kill_after = rng.randrange(0, ACKS_BEFORE_KILL_MAX)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3] / "src")}
    err_path = directory.with_name(f"{directory.name}.{seed}.stderr")
    with open(err_path, "w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(directory), str(seed)],
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
            env=env,
        )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        acks = 0
        while acks < kill_after and len(lines) < READ_LINES_MAX:
            line = proc.stdout.readline()
            if not line:
                break  # the writer finished or died by itself
            lines.append(line.strip())
            acks += line[0] in "PD"
        proc.send_signal(signal.SIGKILL)
        # Read through the same buffered reader: lines it already read ahead count too.
        rest = proc.stdout.read()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, err_path.read_text()
    lines.extend(x for x in rest.splitlines() if x)
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(TRIALS))
def test_kill9_during_writes(tmp_path: Path, seed: int) -> None:
    # Odd seeds kill twice: the second writer starts from a crashed store (recovery,
    # then appends after a possibly truncated tail) and is killed in turn.
    rng = random.Random(seed)
    directory = tmp_path / "store"
    lines = []
    for round_ in range(1 + seed % 2):
        lines += _run_and_kill(directory, seed + 10_000 * round_, rng)
    put_acked = {bytes.fromhex(x[2:]) for x in lines if x[0] == "P"}
    delete_intended = {bytes.fromhex(x[2:]) for x in lines if x[0] == "d"}
    delete_acked = {bytes.fromhex(x[2:]) for x in lines if x[0] == "D"}
    with ChunkStore.open(str(directory)) as store:
        report = store.recovery_report
        assert not report.corrupt, f"seed {seed}: corruption in the middle {report.corrupt}"
        for cid in put_acked - delete_intended:
            data = store.get(cid)  # raises if lost or corrupt
            assert hashlib.sha256(data).digest() == cid, f"seed {seed}"
        for cid in delete_acked:
            with pytest.raises(ChunkNotFound):
                store.get(cid)
        # Whatever else is there (unacknowledged but complete writes) is intact.
        for cid in store.ids():
            assert hashlib.sha256(store.get(cid)).digest() == cid, f"seed {seed}"
        assert Scrubber(store, io_bytes_per_s_max=0).run_once().corrupt_ids == []
        assert not store.corrupt_chunks()
