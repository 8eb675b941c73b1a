"""A 3-member ZooKeeper 3.8 ensemble on loopback, for `cairn bench lock`.

Started from Debian's `zookeeper` package (`/usr/share/java/zookeeper.jar`, run with
`QuorumPeerMain`), each member with its own data dir, client port and quorum/election
ports. `tickTime` is 1000 ms so that a 2 s session timeout (the benchmark's TTL) is
allowed (ZooKeeper's minimum is two ticks); ZooKeeper fsyncs its transaction log by
default. Clients use `kazoo` (a dev dependency); without it or without Java and the jar,
`zookeeper_missing()` says why and the benchmark runs without this peer.
"""

import importlib.util
import shutil
import time
from pathlib import Path

from cairn.bench.peers.processes import PeerProcesses
from cairn.localcluster.children import spawn
from cairn.localcluster.harness import free_ports

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
START_WAIT_SECONDS = 60.0
TICK_MS = 1000


def zookeeper_missing() -> str | None:
    """Why the ZooKeeper peer cannot run here, or None when it can."""
    if shutil.which("java") is None or not ZOOKEEPER_JAR.exists():
        return "ZooKeeper is not installed (apt-get install zookeeper)"
    if importlib.util.find_spec("kazoo") is None:
        return "the kazoo client is not installed (pip install -e '.[dev]')"
    return None


class ZooKeeperEnsemble(PeerProcesses):
    def __init__(self, base_dir: Path, members: int = 3) -> None:
        super().__init__()
        missing = zookeeper_missing()
        if missing is not None:
            raise FileNotFoundError(missing)
        java = shutil.which("java")
        assert java is not None
        self.java = java
        self.base_dir = base_dir
        ports = free_ports(members * 3)
        self.members = [
            (i + 1, ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]) for i in range(members)
        ]

    @property
    def hosts(self) -> str:
        """The kazoo connection string."""
        return ",".join(f"127.0.0.1:{client}" for _, client, _, _ in self.members)

    def start(self) -> None:
        servers = "\n".join(
            f"server.{sid}=127.0.0.1:{quorum}:{election}"
            for sid, _, quorum, election in self.members
        )
        for sid, client, _, _ in self.members:
            data_dir = self.base_dir / f"zk-{sid}"
            data_dir.mkdir(parents=True, exist_ok=True)
            (data_dir / "myid").write_text(f"{sid}\n")
            config = data_dir / "zoo.cfg"
            config.write_text(
                f"tickTime={TICK_MS}\ninitLimit=10\nsyncLimit=5\n"
                f"dataDir={data_dir}\nclientPort={client}\nclientPortAddress=127.0.0.1\n"
                "admin.enableServer=false\nmaxClientCnxns=0\n"
                f"{servers}\n"
            )
            argv = [self.java, "-Xmx512m", "-cp", str(ZOOKEEPER_JAR), MAIN_CLASS, str(config)]
            self.processes.append(spawn(argv, {"PATH": "/usr/bin:/bin"}, str(data_dir / "log")))
        self._wait_ready()

    def _wait_ready(self) -> None:
        from kazoo.client import KazooClient  # optional dependency

        deadline = time.monotonic() + START_WAIT_SECONDS
        while True:
            client = KazooClient(hosts=self.hosts, timeout=5)
            try:
                client.start(timeout=5)
                client.ensure_path("/cairn-bench-ready")
                return
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"ZooKeeper not ready after {START_WAIT_SECONDS} s"
                    ) from None
                time.sleep(0.2)  # poll a condition with a deadline
            finally:
                client.stop()
                client.close()
