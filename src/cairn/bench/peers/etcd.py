"""A 3-member etcd 3.4 cluster on loopback, for `cairn bench raft --peer etcd`.

Started from Debian's `etcd-server` package (`/usr/bin/etcd`), each member with its own
data dir and client/peer ports, fsync on (etcd always fsyncs its WAL). The benchmark
talks to it through etcd's HTTP JSON gateway (`/v3/kv/put`, `/v3/kv/range`; byte fields
are base64), the way ../shared/PEERS.md measured it, from the same load generator that
drives Cairn.
"""

import base64
import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from cairn.bench.peers.processes import PeerProcesses
from cairn.localcluster.children import spawn
from cairn.localcluster.harness import free_ports

ETCD_BINARY = "etcd"
START_WAIT_SECONDS = 30.0


def etcd_path() -> str | None:
    """Path of the etcd binary, or None when Debian's etcd-server is not installed."""
    return shutil.which(ETCD_BINARY)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class EtcdCluster(PeerProcesses):
    def __init__(self, base_dir: Path, members: int = 3) -> None:
        super().__init__()
        binary = etcd_path()
        if binary is None:
            raise FileNotFoundError("etcd is not installed (apt-get install etcd-server)")
        self.binary = binary
        self.base_dir = base_dir
        ports = free_ports(members * 2)
        self.members = [(f"etcd-{i + 1}", ports[2 * i], ports[2 * i + 1]) for i in range(members)]

    @property
    def client_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{client}" for _, client, _ in self.members]

    def start(self) -> None:
        initial = ",".join(f"{name}=http://127.0.0.1:{peer}" for name, _, peer in self.members)
        for name, client, peer in self.members:
            data_dir = self.base_dir / name
            data_dir.mkdir(parents=True, exist_ok=True)
            argv = [
                self.binary,
                "--name", name,
                "--data-dir", str(data_dir),
                "--listen-client-urls", f"http://127.0.0.1:{client}",
                "--advertise-client-urls", f"http://127.0.0.1:{client}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-cluster", initial,
                "--initial-cluster-state", "new",
                "--initial-cluster-token", f"cairn-bench-{self.base_dir.name}",
                "--log-level", "error",
            ]  # fmt: skip
            self.processes.append(spawn(argv, {"PATH": "/usr/bin:/bin"}, str(data_dir / "log")))
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_WAIT_SECONDS
        url = self.client_urls[0] + "/v3/kv/put"
        body = json.dumps({"key": b64(b"cairn-bench-ready"), "value": b64(b"1")}).encode()
        while True:
            try:
                request = urllib.request.Request(url, data=body, method="POST")
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"etcd not ready after {START_WAIT_SECONDS} s")
            time.sleep(0.1)  # poll a condition with a deadline
