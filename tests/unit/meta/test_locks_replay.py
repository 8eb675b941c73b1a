"""Replicas in different processes (different string hash seeds) end in the same state.

Python randomises `str` hashes per process, so any iteration over a set or dict of names
whose order leaks into a result (who is granted first, which token goes where) would make
replicas diverge. Each child process replays the same seeded workload of a few thousand
commands and prints a digest of every result and of the final snapshot.
"""

import os
import subprocess
import sys
import textwrap

REPLAY = textwrap.dedent(
    """
    import hashlib, random
    from cairn.meta.locks import (
        Acquire, CheckFence, CloseSession, ExpireSession, LockStateMachine, OpenSession,
        Release, Request, encode_request,
    )
    rng = random.Random(20261126)
    m = LockStateMachine()
    digest = hashlib.sha256()
    names = [f"lock/{i}" for i in range(12)]
    live, next_sid, next_rid = [], 1, {}
    for index in range(1, 4001):
        roll = rng.random()
        if len(live) < 6 or roll < 0.03:
            command = OpenSession(next_sid, 1_000, f"c{next_sid}")
            live.append(next_sid)
            next_sid += 1
        elif roll < 0.08:
            sid = live.pop(rng.randrange(len(live)))
            command = (CloseSession if rng.random() < 0.5 else ExpireSession)(sid)
        elif roll < 0.6:
            sid = rng.choice(live)
            next_rid[sid] = next_rid.get(sid, 0) + 1
            mode = rng.choice(["exclusive", "shared"])
            command = Acquire(sid, rng.choice(names), mode, next_rid[sid], rng.random() < 0.8)
        elif roll < 0.95:
            sid = rng.choice(live)
            command = Release(sid, rng.choice(names), rng.randint(1, next_rid.get(sid, 1)))
        else:
            command = CheckFence(rng.choice(names), rng.randint(0, m.token_last + 1))
        out = m.apply(index, encode_request(Request(index, command)))
        assert out is not None
        digest.update(encode_request(Request(index, command)) + repr(out[1]).encode())
    m.check_invariants()
    assert m.token_last > 200, m.token_last
    print(digest.hexdigest(), hashlib.sha256(m.snapshot()).hexdigest())
    """
)


def run_replica(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", REPLAY],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_replicas_with_different_hash_seeds_agree() -> None:
    outputs = {seed: run_replica(seed) for seed in ("0", "1", "2", "12345")}
    assert len(set(outputs.values())) == 1, outputs
