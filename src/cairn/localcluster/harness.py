"""A cluster of real node processes on 127.0.0.1, for `cairn up` and the tests.

Ports are chosen up front (asking the kernel for free ones) so that every node knows the
others' addresses as seeds and a restarted node comes back on the same ports. Readiness
is `/health` answering 200, polled with a deadline. `stop` sends SIGTERM and escalates to
SIGKILL; `kill` is SIGKILL alone, the crash that durability tests need.
"""

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from cairn.base.errors import CairnError
from cairn.config.model import DEV_SECRET
from cairn.localcluster.children import spawn
from cairn.localcluster.netns import NetnsLab

HEALTH_WAIT_SECONDS = 30.0
STOP_WAIT_SECONDS = 10.0


class ClusterError(CairnError):
    """A local node failed to start, become healthy or stop."""


EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
PORT_FLOOR = 10_000
PORT_PICK_ATTEMPTS_MAX = 10_000


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(part) for part in Path(EPHEMERAL_RANGE_FILE).read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


def _candidate_ports() -> range:
    """Ports the kernel never hands out on its own (outside the ephemeral range)."""
    low, high = _ephemeral_range()
    if low - PORT_FLOOR >= 1000:
        return range(PORT_FLOOR, low)
    return range(high + 1, 65536)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports that can be bound on `host` now, chosen at random outside
    the kernel's ephemeral range.

    Asking the kernel for port 0 would return an ephemeral port, and the kernel hands out
    the same range for the source ports of outgoing connections: between releasing the
    port and the node binding it, any connection (tests make thousands) could take it.
    Outside that range only another deliberate bind can collide, and the random choice
    over thousands of ports makes that unlikely; each port is checked bindable as well.
    """
    candidates = _candidate_ports()
    rng = random.Random()
    chosen: list[int] = []
    for _ in range(PORT_PICK_ATTEMPTS_MAX):
        if len(chosen) == count:
            return chosen
        port = rng.choice(candidates)
        if port in chosen:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
        chosen.append(port)
    if len(chosen) == count:
        return chosen
    raise ClusterError(f"could not find {count} free ports on {host}")


@dataclass
class NodeHandle:
    node_id: str
    host: str
    rpc_port: int
    admin_port: int
    s3_port: int
    data_dir: Path
    process: "subprocess.Popen[bytes] | None" = None
    extra_args: list[str] = field(default_factory=list)
    argv_prefix: list[str] = field(default_factory=list)  # e.g. ["ip", "netns", "exec", ns]

    @property
    def rpc_address(self) -> str:
        return f"{self.host}:{self.rpc_port}"

    @property
    def admin_address(self) -> str:
        return f"{self.host}:{self.admin_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "node.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def health(host: str, port: int, timeout: float = 2.0) -> tuple[int, dict[str, Any]] | None:
    """(status, body) of GET /health, or None if nothing answers."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        connection.close()


class LocalCluster:
    def __init__(
        self,
        base_dir: Path,
        nodes: int = 3,
        *,
        secret: str = DEV_SECRET,
        host: str = "127.0.0.1",
        settings: dict[str, str] | None = None,
        lab: NetnsLab | None = None,
        raft: bool = False,
    ) -> None:
        """`raft=True` makes every node a member of the replicated KV group (issue 3)."""
        if nodes < 1:
            raise ClusterError("a cluster needs at least one node")
        self.base_dir = base_dir
        self.secret = secret
        self.settings = settings or {}
        self.raft = raft
        # In a netns lab every node has its own address, so fixed ports do; on loopback
        # the nodes share 127.0.0.1 and get ports the kernel says are free.
        ports = free_ports(nodes * 3, host) if lab is None else [7400, 7480, 9000] * nodes
        self.nodes: dict[str, NodeHandle] = {}
        for i in range(nodes):
            node_id = f"node-{i + 1}"
            self.nodes[node_id] = NodeHandle(
                node_id=node_id,
                host=host if lab is None else lab.address(node_id),
                rpc_port=ports[3 * i],
                admin_port=ports[3 * i + 1],
                s3_port=ports[3 * i + 2],
                data_dir=base_dir / node_id,
                argv_prefix=[] if lab is None else lab.exec_prefix(node_id),
            )

    # -- lifecycle ---------------------------------------------------------------------
    def raft_id(self, node_id: str) -> int:
        return list(self.nodes).index(node_id) + 1

    def argv(self, node: NodeHandle) -> list[str]:
        seeds = ",".join(n.rpc_address for n in self.nodes.values() if n is not node)
        raft_args: list[str] = []
        if self.raft:
            peers = ",".join(
                f"{self.raft_id(n.node_id)}={n.rpc_address}" for n in self.nodes.values()
            )
            raft_args = [
                "--set",
                f"raft_id={self.raft_id(node.node_id)}",
                "--set",
                f"raft_peers={peers}",
            ]
        argv = [
            *node.argv_prefix,
            sys.executable,
            "-m",
            "cairn",
            "server",
            "--node-id",
            node.node_id,
            "--data-dir",
            str(node.data_dir),
            "--rpc-listen",
            node.rpc_address,
            "--admin-listen",
            node.admin_address,
            "--s3-listen",
            f"{node.host}:{node.s3_port}",
            "--set",
            f"seeds={seeds}",
        ]
        argv += raft_args
        for name, value in self.settings.items():
            argv += ["--set", f"{name}={value}"]
        return argv + node.extra_args

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        env["CAIRN_CLUSTER_SECRET"] = self.secret
        return env

    def start_node(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.running:
            raise ClusterError(f"{node_id} is already running")
        node.data_dir.mkdir(parents=True, exist_ok=True)
        node.process = spawn(self.argv(node), self._env(), str(node.log_path))

    def start(self, wait_seconds: float = HEALTH_WAIT_SECONDS) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        try:
            for node_id in self.nodes:
                self.start_node(node_id)
            self.wait_healthy(wait_seconds=wait_seconds)
        except BaseException:
            self.stop()
            raise
        self.write_cluster_json()

    def wait_healthy(
        self, node_ids: list[str] | None = None, wait_seconds: float = HEALTH_WAIT_SECONDS
    ) -> None:
        """Return when every named node answers /health with 200; raise on timeout or exit."""
        pending = set(node_ids or self.nodes)
        deadline = time.monotonic() + wait_seconds
        while pending:
            for node_id in sorted(pending):
                node = self.nodes[node_id]
                if node.process is not None and node.process.poll() is not None:
                    raise ClusterError(
                        f"{node_id} exited with {node.process.returncode}; "
                        f"last log lines:\n{self.tail_log(node_id)}"
                    )
                answer = health(node.host, node.admin_port, timeout=1.0)
                if answer is not None and answer[0] == 200:
                    pending.discard(node_id)
            if pending and time.monotonic() > deadline:
                raise ClusterError(f"not healthy after {wait_seconds} s: {sorted(pending)}")
            if pending:
                time.sleep(0.05)  # poll interval of a condition with a deadline

    def kill(self, node_id: str) -> None:
        """SIGKILL: the node gets no chance to flush or clean up."""
        node = self.nodes[node_id]
        if node.process is not None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait()

    def restart(self, node_id: str, wait_seconds: float = HEALTH_WAIT_SECONDS) -> None:
        if self.nodes[node_id].running:
            self.kill(node_id)
        self.start_node(node_id)
        self.wait_healthy([node_id], wait_seconds=wait_seconds)

    def stop_node(self, node_id: str, wait_seconds: float = STOP_WAIT_SECONDS) -> int | None:
        node = self.nodes[node_id]
        process = node.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=wait_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise ClusterError(f"{node_id} ignored SIGTERM for {wait_seconds} s") from None

    def stop(self) -> None:
        """Stop every node: SIGTERM to all, then wait, escalating to SIGKILL."""
        for node in self.nodes.values():
            if node.running:
                assert node.process is not None
                node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        for node in self.nodes.values():
            if node.process is None:
                continue
            try:
                node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()

    def __enter__(self) -> "LocalCluster":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- information -------------------------------------------------------------------
    def tail_log(self, node_id: str, lines: int = 20) -> str:
        path = self.nodes[node_id].log_path
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def describe(self) -> dict[str, Any]:
        return {
            "cluster_secret": self.secret,
            "nodes": [
                {
                    "node_id": n.node_id,
                    "rpc": n.rpc_address,
                    "admin": f"http://{n.admin_address}",
                    "metrics": f"http://{n.admin_address}/metrics",
                    "s3": f"http://{n.host}:{n.s3_port}",
                    "data_dir": str(n.data_dir),
                    "pid": n.process.pid if n.process else None,
                }
                for n in self.nodes.values()
            ],
        }

    def write_cluster_json(self) -> Path:
        path = self.base_dir / "cluster.json"
        temp = path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the secret
        with os.fdopen(fd, "w") as file:
            json.dump(self.describe(), file, indent=2)
        os.replace(temp, path)
        return path
