"""A cluster of real node processes on 127.0.0.1, for `cairn up` and the tests.

Ports are chosen up front (asking the kernel for free ones) so that every node knows the
others' addresses as seeds and a restarted node comes back on the same ports. `stop`
sends SIGTERM and escalates to SIGKILL; `kill` is SIGKILL alone, the crash that
durability tests need.

Readiness has two steps, each polled with a deadline. A node is *healthy* when its
`/health` answers 200. With `raft=True` every initial node is a voter of the metadata
groups, and the cluster is *ready* (`wait_ready`) only when the root group has a leader,
every node has joined the cluster map, the shard directory is bootstrapped and the S3
credentials of cluster.json are installed: before that, a client's first bucket or
object call would fail. Nodes added later (`add_node`)
are storage members of the map, not voters.

`cluster.json` (`describe`) is what a client needs: the cluster secret, each node's
addresses, member id, Raft id and pid, the S3 endpoint, and S3 credentials. The
credentials are made once per base directory (`credentials.json`, mode 0600) and reused
when the cluster is started again on the same directory, so clients keep working.
"""

import asyncio
import concurrent.futures
import json
import logging
import os
import random
import secrets
import signal
import socket
import string
import subprocess
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from cairn.base.errors import CairnError
from cairn.client.status_probe import health
from cairn.config.model import DEV_SECRET
from cairn.localcluster.children import spawn
from cairn.localcluster.netns import NetnsLab
from cairn.node.meta_client import MetaClient
from cairn.node.user_client import UserClient
from cairn.wire import RpcPool, derive_auth_key

__all__ = [
    "FAST_FAILURE_DETECTION",
    "HEALTH_WAIT_SECONDS",
    "READY_WAIT_SECONDS",
    "STOP_WAIT_SECONDS",
    "ClusterError",
    "LocalCluster",
    "NodeHandle",
    "free_ports",
    "health",
    "load_credentials",
]

T = TypeVar("T")
HEALTH_WAIT_SECONDS = 30.0
READY_WAIT_SECONDS = 30.0
STOP_WAIT_SECONDS = 10.0
POLL_SECONDS = 0.05
"""Interval between two looks at a condition that has a deadline."""
READY_CALL_SECONDS = 2.0
"""Budget of one metadata call while waiting for readiness."""
CREDENTIALS_FILE = "credentials.json"
ACCESS_KEY_CHARS = 20
SECRET_KEY_CHARS = 40

FAST_FAILURE_DETECTION: dict[str, str] = {
    "heartbeat_interval_s": "0.2",
    "suspect_after_s": "0.6",
    "down_after_s": "1.5",
    "repair_after_s": "1.0",
}
"""`settings` for tests that kill nodes: suspect in under a second, down in 1.5 s,
repair soon after (the defaults are 5, 15 and 30 s). The root leader also ticks and
bootstraps on the heartbeat period, so readiness comes sooner too."""


class ClusterError(CairnError):
    """A local node failed to start, become healthy or stop."""


EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
PORT_FLOOR = 10_000
log = logging.getLogger(__name__)
PORT_PICK_ATTEMPTS_MAX = 10_000
PORT_RACE_ATTEMPTS_MAX = 3
PORT_TAKEN_MARK = "address already in use"


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
    raft_id: int = 0
    """This node's id as a voter of the metadata groups; 0: not a voter."""
    member_id: str = ""
    """Its id in the cluster map (`n1`, ...), once it has joined (see `wait_ready`)."""

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


def load_credentials(base_dir: Path) -> tuple[str, str]:
    """(access key, secret key) of the cluster under `base_dir`, made on first use.

    AWS-shaped: a 20-character upper-case access key id and a 40-character secret, drawn
    with `secrets`. Stored mode 0600 beside cluster.json; created exclusively, so two
    processes starting on one directory agree on the pair.
    """
    path = base_dir / CREDENTIALS_FILE
    if not path.exists():
        base_dir.mkdir(parents=True, exist_ok=True)
        upper = string.ascii_uppercase + string.digits
        secret_alphabet = string.ascii_letters + string.digits + "/+"
        data = {
            "access_key": "".join(secrets.choice(upper) for _ in range(ACCESS_KEY_CHARS)),
            "secret_key": "".join(secrets.choice(secret_alphabet) for _ in range(SECRET_KEY_CHARS)),
        }
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made them first: use theirs
        else:
            with os.fdopen(fd, "w") as file:
                json.dump(data, file, indent=2)
                file.flush()
                os.fsync(file.fileno())
    try:
        data = json.loads(path.read_text())
        return str(data["access_key"]), str(data["secret_key"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClusterError(f"cannot read {path} ({exc!r}); delete it to make new keys") from None


def _run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to completion from synchronous code, even inside a running loop
    (async tests): then on a fresh loop in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(asyncio.run, coroutine).result()


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
        """`raft=True` makes every node a voter of the metadata groups (root, index
        shards) and of the replicated KV group, and `start` waits for `wait_ready`."""
        if nodes < 1:
            raise ClusterError("a cluster needs at least one node")
        self.base_dir = base_dir
        self.secret = secret
        self.settings = settings or {}
        self.raft = raft
        self.host = host
        self.lab = lab
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
                raft_id=i + 1 if raft else 0,
            )

    # -- lifecycle ---------------------------------------------------------------------
    def raft_id(self, node_id: str) -> int:
        return self.nodes[node_id].raft_id

    @property
    def voters(self) -> list[NodeHandle]:
        return [n for n in self.nodes.values() if n.raft_id]

    def argv(self, node: NodeHandle) -> list[str]:
        seeds = ",".join(n.rpc_address for n in self.nodes.values() if n is not node)
        raft_args: list[str] = []
        if self.raft:
            # Every node knows the voters: voters host the groups, the others join the
            # cluster map through them.
            peers = ",".join(f"{n.raft_id}={n.rpc_address}" for n in self.voters)
            raft_args = ["--set", f"raft_peers={peers}"]
            if node.raft_id:
                raft_args += ["--set", f"raft_id={node.raft_id}"]
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
        # The S3 credentials of cluster.json: the root leader installs them as the admin
        # user (environment, not argv, so `ps` does not show the secret).
        access_key, secret_key = load_credentials(self.base_dir)
        env["CAIRN_ADMIN_ACCESS_KEY"] = access_key
        env["CAIRN_ADMIN_SECRET_KEY"] = secret_key
        return env

    def start_node(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.running:
            raise ClusterError(f"{node_id} is already running")
        node.data_dir.mkdir(parents=True, exist_ok=True)
        node.process = spawn(self.argv(node), self._env(), str(node.log_path))

    def start(self, wait_seconds: float = HEALTH_WAIT_SECONDS) -> None:
        """Start every node; return once all are healthy (and, with Raft, ready).

        A node that could not bind a port (another process took it between
        `free_ports` and the bind: another test's cluster drawing the same random port)
        makes the whole cluster stop and start again on newly drawn ports, at most
        `PORT_RACE_ATTEMPTS_MAX` times; the nodes re-join the cluster map at their new
        addresses as on any restart, so nothing already stored is lost."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, PORT_RACE_ATTEMPTS_MAX + 1):
            try:
                self._start_all(wait_seconds)
                break
            except ClusterError:
                lost_race = self.lab is None and any(
                    PORT_TAKEN_MARK in self.tail_log(node_id).lower() for node_id in self.nodes
                )
                if not lost_race or attempt == PORT_RACE_ATTEMPTS_MAX:
                    raise
                log.warning("localcluster.port_taken attempt=%d: drawing new ports", attempt)
                ports = free_ports(len(self.nodes) * 3, self.host)
                for i, node in enumerate(self.nodes.values()):
                    node.rpc_port, node.admin_port, node.s3_port = ports[3 * i : 3 * i + 3]
        self.write_cluster_json()

    def _start_all(self, wait_seconds: float) -> None:
        try:
            for node_id in self.nodes:
                self.start_node(node_id)
            self.wait_healthy(wait_seconds=wait_seconds)
            if self.raft:
                self.wait_ready(wait_seconds=max(wait_seconds, READY_WAIT_SECONDS))
        except BaseException:
            self.stop()
            raise

    def add_node(
        self,
        node_id: str | None = None,
        *,
        settings: dict[str, str] | None = None,
        wait_seconds: float = HEALTH_WAIT_SECONDS,
    ) -> NodeHandle:
        """Start one more node, a storage member of the cluster map but not a voter of the
        metadata groups (raft_id 0); return once it is healthy and (with Raft) has joined
        the map. `settings` apply to this node only, after the cluster's (e.g. `zone`)."""
        if self.lab is not None:
            raise ClusterError("add_node does not work in a netns lab: its hosts are fixed")
        if node_id is None:
            number = len(self.nodes) + 1
            while f"node-{number}" in self.nodes:
                number += 1
            node_id = f"node-{number}"
        if node_id in self.nodes:
            raise ClusterError(f"{node_id} is already part of the cluster")
        used = {p for n in self.nodes.values() for p in (n.rpc_port, n.admin_port, n.s3_port)}
        ports = [p for p in free_ports(3 + len(used), self.host) if p not in used][:3]
        extra: list[str] = []
        for name, value in (settings or {}).items():
            extra += ["--set", f"{name}={value}"]
        node = NodeHandle(
            node_id=node_id,
            host=self.host,
            rpc_port=ports[0],
            admin_port=ports[1],
            s3_port=ports[2],
            data_dir=self.base_dir / node_id,
            extra_args=extra,
        )
        self.nodes[node_id] = node
        try:
            self.start_node(node_id)
            self.wait_healthy([node_id], wait_seconds=wait_seconds)
            if self.raft:
                self.wait_ready([node_id], wait_seconds=max(wait_seconds, READY_WAIT_SECONDS))
        except BaseException:
            self.stop_node(node_id)
            del self.nodes[node_id]
            raise
        self.write_cluster_json()
        return node

    def wait_ready(
        self, node_ids: list[str] | None = None, wait_seconds: float = READY_WAIT_SECONDS
    ) -> None:
        """Return when the root group has a leader, every named node (default: all) has
        joined the cluster map at its current address (recording its member id) and the
        shard directory is bootstrapped; raise ClusterError on timeout or if one of the
        named nodes exits meanwhile."""
        if not self.voters:
            raise ClusterError("wait_ready needs a cluster started with raft=True")
        names = list(node_ids or self.nodes)
        _run_sync(self._wait_ready(names, time.monotonic() + wait_seconds, wait_seconds))

    async def _wait_ready(self, names: list[str], deadline: float, wait_seconds: float) -> None:
        pool = RpcPool("localcluster", derive_auth_key(self.secret))
        meta = MetaClient(pool, [n.rpc_address for n in self.voters], timeout=READY_CALL_SECONDS)
        waiting_for = "a root group leader"
        try:
            while True:
                self._check_running(names)
                try:
                    view = await meta.cluster_view()
                    directory = await meta.directory(refresh=True)
                except CairnError as exc:
                    waiting_for = f"a root group leader ({exc})"
                else:
                    # Joined *at its current address*: on a restart the map still holds
                    # the previous run's record until the node joins again.
                    joined = {
                        m.name: m.id
                        for m in view.members
                        if m.name in names and m.address == self.nodes[m.name].rpc_address
                    }
                    missing = sorted(set(names) - set(joined))
                    if not missing and directory.shards and await self._admin_installed(meta):
                        for name in names:
                            self.nodes[name].member_id = joined[name]
                        return
                    waiting_for = (
                        f"nodes to join the cluster map: {missing}"
                        if missing
                        else "the shard directory to be bootstrapped"
                        if not directory.shards
                        else "the admin S3 credentials to be installed"
                    )
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"not ready after {wait_seconds} s: waiting for {waiting_for}"
                    )
                await asyncio.sleep(POLL_SECONDS)  # poll a condition with a deadline
        finally:
            await pool.close()

    async def _admin_installed(self, meta: MetaClient) -> bool:
        """Whether the root group holds the S3 access key of cluster.json (the root
        leader installs it, see `node.root_duties`)."""
        access_key, _ = load_credentials(self.base_dir)
        try:
            await UserClient(meta, self.secret).lookup(access_key)
        except CairnError:  # not installed yet (InvalidAccessKeyId), or no leader yet
            return False
        return True

    def _check_running(self, node_ids: list[str]) -> None:
        for node_id in node_ids:
            node = self.nodes[node_id]
            if node.process is not None and node.process.poll() is not None:
                raise ClusterError(
                    f"{node_id} exited with {node.process.returncode}; "
                    f"last log lines:\n{self.tail_log(node_id)}"
                )

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
                time.sleep(POLL_SECONDS)  # poll a condition with a deadline

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
        """What cluster.json holds (read back by `cairn.client.cluster_file`)."""
        access_key, secret_key = load_credentials(self.base_dir)
        first = next(iter(self.nodes.values()))
        return {
            "cluster_secret": self.secret,
            "s3_endpoint": f"http://{first.host}:{first.s3_port}",
            "access_key": access_key,
            "secret_key": secret_key,
            "nodes": [
                {
                    "node_id": n.node_id,
                    "member_id": n.member_id or None,
                    "raft_id": n.raft_id,
                    "pid": n.process.pid if n.process else None,
                    "rpc": n.rpc_address,
                    "admin": f"http://{n.admin_address}",
                    "metrics": f"http://{n.admin_address}/metrics",
                    "s3": f"http://{n.host}:{n.s3_port}",
                    "data_dir": str(n.data_dir),
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
