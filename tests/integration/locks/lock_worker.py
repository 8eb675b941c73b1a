"""A client process of the lock tests (run with the test's Python; prints and flushes one
line per event, with `time.monotonic()`, which is one clock for every process here).

    lock_worker.py counter CLUSTER_JSON BUCKET KEY N
        N times: under the lock "counter", read the integer at BUCKET/KEY (absent: 0) and
        write it plus one with the grant's fencing token; prints "inc TOKEN VALUE".
    lock_worker.py hold CLUSTER_JSON NAME TTL_S
        takes NAME, prints "granted TOKEN", then "ka SENT" for each acknowledged
        keep-alive (SENT: when it was sent) until killed.
"""

import asyncio
import sys

import aiohttp

from cairn.client import protocol
from cairn.client.cluster_file import load_cluster_file
from cairn.client.locks import LockClient


def say(*words: object) -> None:
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


async def counter(cluster_json: str, bucket: str, key: str, count: int) -> None:
    cluster = load_cluster_file(cluster_json)
    gateway = cluster.gateways[0]
    url = gateway + protocol.object_path(bucket, key)
    auth = {"Authorization": protocol.authorization(cluster.secret)}
    locks = LockClient.from_cluster_file(cluster_json, ttl_s=5)
    async with locks, aiohttp.ClientSession(headers=auth) as http:
        for _ in range(count):
            async with locks.lock("counter") as held:
                async with http.get(url) as response:
                    if response.status == 404:
                        value = 0
                    else:
                        assert response.status == 200, await response.text()
                        value = int(await response.read())
                headers = {**held.fence_header, "Content-Type": "text/plain"}
                async with http.put(url, data=str(value + 1), headers=headers) as response:
                    assert response.status == 200, await response.text()
                say("inc", held.token, value + 1)


async def hold(cluster_json: str, name: str, ttl_s: float) -> None:
    client = LockClient.from_cluster_file(cluster_json, ttl_s=ttl_s)
    held = await client.acquire(name)
    say("granted", held.token)
    seen = client.last_keepalive_sent
    say("ka", seen)
    while True:
        await asyncio.sleep(0.005)  # watching our own attribute; the parent kills us
        if client.last_keepalive_sent != seen:
            seen = client.last_keepalive_sent
            say("ka", seen)


def main() -> None:
    mode, cluster_json, *rest = sys.argv[1:]
    if mode == "counter":
        asyncio.run(counter(cluster_json, rest[0], rest[1], int(rest[2])))
    elif mode == "hold":
        asyncio.run(hold(cluster_json, rest[0], float(rest[1])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
