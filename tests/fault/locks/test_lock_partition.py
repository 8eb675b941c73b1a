"""A lock holder partitioned away (network namespaces) loses the lock after its lease, and
its late write carrying the old fencing token is refused (issue 8, faults).

The holder is a process in its own namespace (`client`); the test process sits in the root
namespace and reaches every node directly. Cutting `client` from the three nodes stops the
holder's keep-alives without touching the cluster, as a real partition would: the leader
expires the session one TTL after the last keep-alive it received and hands the lock to
the waiting client here. The bounds checked:

- not before one TTL after the send time of the holder's last *acknowledged* keep-alive
  (that one surely reached the leader; the leader's deadline counts from its receipt);
- at most TTL + `HANDOVER_SLACK_S` after the cut (no keep-alive can arrive after it).

After the heal the holder, which still believes in its old grant as a paused process
would, writes with its old token: the gateway answers 409 `FenceStale`, and the object
keeps what the new holder wrote. Every process here uses `time.monotonic()`, one clock
for the whole machine (network namespaces do not change it).
"""

import asyncio
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from cairn.client import protocol
from cairn.client.errors import BucketAlreadyExists, Unavailable
from cairn.client.locks import LockClient
from cairn.client.sdk import CairnClient
from cairn.localcluster import LocalCluster, NetnsLab, unavailable_reason

pytestmark = [pytest.mark.netns, pytest.mark.xdist_group("processes")]
SECRET = "lock-partition-secret"
NODES = ["node-1", "node-2", "node-3"]
CLIENT = "client"
BUCKET = "fenced"
KEY = "partitioned"
LOCK = "partitioned-holder"
HOLDER_TTL_S = 2.0
HANDOVER_SLACK_S = 1.0
KEEPALIVES_BEFORE_CUT = 2
STEP_DEADLINE_S = 30.0
READY_DEADLINE_S = 30.0

HOLDER = '''
"""Holds a lock from inside the client namespace; prints one line per event:
"granted TOKEN", "ka SENT" per acknowledged keep-alive, and after a "write" line on
stdin, "put STATUS HELD BODY" for a PUT fenced with the (old) token."""
import asyncio
import sys

import aiohttp

from cairn.client import protocol
from cairn.client.locks import LockClient


def say(*words):
    sys.stdout.write(" ".join(str(w) for w in words) + "\\n")
    sys.stdout.flush()


async def main(cluster_json, name, ttl_s, url, secret):
    client = LockClient.from_cluster_file(cluster_json, ttl_s=ttl_s)
    held = await client.acquire(name)
    say("granted", held.token)
    go = asyncio.ensure_future(asyncio.to_thread(sys.stdin.readline))
    seen = None
    while not go.done():
        if client.last_keepalive_sent != seen:
            seen = client.last_keepalive_sent
            say("ka", seen)
        await asyncio.wait([go], timeout=0.005)  # watching our own attribute
    auth = {"Authorization": protocol.authorization(secret)}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(headers=auth, timeout=timeout) as http:
        async with http.put(url, data=b"late", headers=held.fence_header) as response:
            body = (await response.text()).replace(" ", "_").replace("\\n", "_")
            say("put", response.status, held.held, body)
    await client.close()


asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]))
'''


async def _make_bucket(cluster_json: Path) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    async with CairnClient.from_cluster_file(cluster_json) as client:
        while True:
            try:
                await client.make_bucket(BUCKET)
                return
            except BucketAlreadyExists:
                return
            except Unavailable:
                assert time.monotonic() < deadline, "the gateway never became ready"
                await asyncio.sleep(0.1)  # polling a condition with a deadline


async def _put(url: str, body: bytes, fence: dict[str, str]) -> int:
    """A native PUT from the root namespace, fenced by `fence`."""
    auth = {"Authorization": protocol.authorization(SECRET)}
    async with (
        aiohttp.ClientSession(headers=auth, timeout=aiohttp.ClientTimeout(total=30)) as http,
        http.put(url, data=body, headers=fence) as response,
    ):
        return response.status


async def _line(holder: asyncio.subprocess.Process) -> list[str]:
    assert holder.stdout is not None
    async with asyncio.timeout(STEP_DEADLINE_S):
        line = await holder.stdout.readline()
    assert line, "the holder exited"
    return line.decode().split()


async def scenario(lab: NetnsLab, cluster: LocalCluster, tmp_path: Path) -> None:
    cluster_json = cluster.write_cluster_json()
    await _make_bucket(cluster_json)
    node = cluster.nodes[NODES[0]]
    url = f"http://{node.host}:{node.s3_port}" + protocol.object_path(BUCKET, KEY)
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    holder = await asyncio.create_subprocess_exec(
        *lab.exec_prefix(CLIENT),
        sys.executable,
        str(script),
        str(cluster_json),
        LOCK,
        str(HOLDER_TTL_S),
        url,
        SECRET,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    waiter = LockClient.from_cluster_file(cluster_json, ttl_s=5, label="waiter")
    try:
        first = await _line(holder)
        assert first[0] == "granted", first
        old_token = int(first[1])
        acked: list[float] = []
        while len(acked) < KEEPALIVES_BEFORE_CUT + 1:  # the open counts as the first
            words = await _line(holder)
            assert words[0] == "ka", words
            acked.append(float(words[1]))
        waiting = asyncio.create_task(waiter.acquire(LOCK))

        for other in NODES:
            lab.cut(CLIENT, other)
        cut_at = time.monotonic()

        new = await asyncio.wait_for(waiting, HOLDER_TTL_S + STEP_DEADLINE_S)
        granted_at = time.monotonic()
        assert new.token > old_token
        assert await _put(url, b"new", new.fence_header) == 200

        lab.heal()
        assert holder.stdin is not None
        holder.stdin.write(b"write\n")
        await holder.stdin.drain()
        while (words := await _line(holder))[0] == "ka":
            acked.append(float(words[1]))  # a reply in flight at the cut counts too
        assert words[0] == "put", words
        last_acked = max(acked)
        assert granted_at - last_acked >= HOLDER_TTL_S, granted_at - last_acked
        assert granted_at - cut_at <= HOLDER_TTL_S + HANDOVER_SLACK_S, granted_at - cut_at
        status, held, body = words[1:]
        assert status == "409" and "FenceStale" in body, words
        assert held == "False"  # the holder's own view of its lease ran out too
        async with CairnClient.from_cluster_file(cluster_json) as client:
            assert await client.get(BUCKET, KEY) == b"new"
        await new.release()
        async with asyncio.timeout(STEP_DEADLINE_S):
            assert await holder.wait() == 0
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await waiter.close()


def test_partitioned_holder_loses_lock_and_its_late_write_is_refused(tmp_path: Path) -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with (
        NetnsLab([*NODES, CLIENT]) as lab,
        LocalCluster(tmp_path / "cluster", 3, secret=SECRET, lab=lab, raft=True) as cluster,
    ):
        asyncio.run(scenario(lab, cluster, tmp_path))
