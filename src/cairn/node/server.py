"""The node server: what `cairn server` runs.

A node opens its data directory, serves authenticated RPC and the admin HTTP port
(`/metrics`, `/health`), and stops cleanly on SIGTERM or SIGINT. With `raft_peers` set it
is part of a cluster:

- a node whose `raft_id` is among the peers hosts a replica of the root group (cluster
  map, buckets, shard directory) and of the index shard groups, serves metadata RPCs and,
  while it leads the root group, does the leader's duties (liveness ticks, bootstrap);
- every node joins the cluster map, heartbeats, keeps a placement view, and stores the
  chunks of the partitions it owns.

The gateway role runs in the same process but is composed above this layer
(`cairn.gateway.process`), since the gateway imports the node's clients.
"""

import asyncio
import logging
import os
import shutil
import signal
from pathlib import Path

from cairn import __version__
from cairn.chunkstore import AsyncChunkStore, StoreOptions
from cairn.config import CairnConfig, parse_hostport
from cairn.meta.clustermap import ClusterConfig
from cairn.meta.directory import ROOT_GROUP_ID
from cairn.meta.root import RootMachine
from cairn.monitor.admin_http import AdminServer
from cairn.monitor.logs import bind_node, configure_logging, log_event
from cairn.node.chunk_service import ChunkService
from cairn.node.datadir import DataDir
from cairn.node.gc_coordinator import GcReport, collect_garbage
from cairn.node.hints import HandoffLoop, HintStore
from cairn.node.lock_service import LockService
from cairn.node.membership import Membership, NodeIdentity
from cairn.node.meta_client import MetaClient
from cairn.node.meta_service import MetaService
from cairn.node.placement_view import PlacementView
from cairn.node.repair import RepairWorker
from cairn.node.root_duties import RootDuties
from cairn.node.shard_hosting import ShardHosting
from cairn.node.shard_splitter import ShardSplitter, SplitPolicy
from cairn.node.upload_service import UploadService
from cairn.node.view_cache import ViewCache
from cairn.raft.driver import GroupSettings
from cairn.raft.host import RaftHost
from cairn.raft.kv_service import KV_GROUP_FIRST, KvService
from cairn.runtime.event_loop import run
from cairn.wire import CertFiles, Ping, Router, RpcPool, RpcServer, derive_auth_key, ping_handler
from cairn.wire.tls import server_context

log = logging.getLogger("cairn.node")

FATAL_EXIT_CODE = 70  # EX_SOFTWARE


class NodeServer:
    def __init__(self, config: CairnConfig) -> None:
        self.config = config
        self.data_dir = DataDir(Path(config.data_dir))
        self.router = Router()
        self.router.register(Ping, ping_handler(config.node_id))
        ssl_context = None
        if config.tls.enabled:
            files = CertFiles(
                Path(config.tls.ca_file), Path(config.tls.cert_file), Path(config.tls.key_file)
            )
            ssl_context = server_context(files)
        self.rpc = RpcServer(
            self.router,
            node_id=config.node_id,
            auth_key=derive_auth_key(config.cluster_secret),
            ssl_context=ssl_context,
        )
        admin_host, admin_port = parse_hostport(config.admin_listen)
        self.admin = AdminServer(admin_host, admin_port)
        self.admin.checks["rpc"] = self._rpc_health
        self._stopped = asyncio.Event()
        self.pool = RpcPool(config.node_id, derive_auth_key(config.cluster_secret))
        # Calls this process makes to its own address skip the socket (`wire.local`).
        self.pool.serve_locally(config.rpc_listen, self.router)
        self.raft: RaftHost | None = None
        self.lock_service: LockService | None = None  # issue 8: locks on the root group
        self.uploads: UploadService | None = None  # issue 7: multipart reads and expiry
        if config.raft_id:
            self.raft = RaftHost(
                config.raft_id,
                config.raft_members(),
                Path(config.data_dir) / "raft",
                self.pool,
                GroupSettings(
                    tick_seconds=config.raft_tick_ms / 1000,
                    election_timeout_ticks=config.raft_election_ticks,
                    snapshot_every_entries=config.raft_snapshot_entries,
                ),
                on_fatal=self._fatal,
            )
            self.raft.register(self.router)
            KvService(self.raft).register(self.router)
            self.meta_service = MetaService(self.raft)
            self.meta_service.register(self.router)
            self.uploads = UploadService(self.raft, config.multipart_expiry_s)
            self.uploads.register(self.router)
            election_timeout_ms = config.raft_tick_ms * config.raft_election_ticks
            self.lock_service = LockService(self.raft, election_timeout_ms)
            self.lock_service.register(self.router)
        self.meta: MetaClient | None = None
        self.view: ViewCache | None = None
        self.membership: Membership | None = None
        self.root_duties: RootDuties | None = None
        if config.raft_peers:
            self.meta = MetaClient(
                self.pool, list(config.raft_members().values()), consistency=config.read_consistency
            )
            self.view = ViewCache(self.meta)
            identity = NodeIdentity(
                name=config.node_id,
                address=config.rpc_listen,
                capacity_bytes=config.capacity_bytes or _disk_size(Path(config.data_dir)),
                zone=config.zone,
                rack=config.rack,
                host=config.host,
            )
            self.membership = Membership(
                self.meta, identity, self._used_bytes, config.heartbeat_interval_s
            )
        if self.raft is not None:
            self.root_duties = RootDuties(
                self.raft,
                self.meta_service.tick,
                config.heartbeat_interval_s,
                config.down_after_s,
                self.collect_garbage if self.meta is not None else None,
                config.gc_interval_s,
            )
        self.shard_hosting: ShardHosting | None = None
        self.splitter: ShardSplitter | None = None
        if self.raft is not None and self.membership is not None and self.meta is not None:
            membership = self.membership
            self.shard_hosting = ShardHosting(self.raft, lambda: membership.member_id)
            policy = SplitPolicy(
                config.index_split_keys,
                config.index_split_ops_per_s,
                config.index_balance_leaders,
            )
            self.splitter = ShardSplitter(self.raft, self.meta, self.pool, policy)
        self.store: AsyncChunkStore | None = None
        self.chunk_service: ChunkService | None = None
        self.handoff: HandoffLoop | None = None
        self.repair: RepairWorker | None = None

    async def collect_garbage(self, dry_run: bool = False) -> GcReport:
        assert self.meta is not None
        return await collect_garbage(
            self.pool,
            self.meta,
            self.config.gc_grace_s,
            dry_run=dry_run,
            label=f"gc on {self.config.node_id}",
        )

    async def _used_bytes(self) -> int:
        if self.store is None:
            return 0
        return (await self.store.usage()).stored_bytes

    async def _open_storage(self) -> None:
        """The chunkstore, the hint store and the chunk RPCs; with a cluster, also hint
        handoff and the repair worker (registered before the RPC server starts)."""
        root = Path(self.config.data_dir)
        options = StoreOptions(
            fsync=self.config.fsync, cache_behind_bytes=self.config.chunk_cache_behind_mib << 20
        )
        self.store = await AsyncChunkStore.open(str(root / "chunks"), options)
        hints = await asyncio.to_thread(HintStore.open, root / "hints")
        self.chunk_service = ChunkService(self.store, hints, self.config.node_id)
        self.chunk_service.register(self.router)
        if self.view is None or self.membership is None:
            return
        self.handoff = HandoffLoop(hints, self.pool, self.view.current)
        membership = self.membership

        def synced(epoch: int) -> None:
            membership.synced_epoch = epoch

        self.repair = RepairWorker(
            self.chunk_service,
            self.pool,
            self.view,
            lambda: membership.member_id,
            synced,
            bytes_per_s=self.config.repair_bytes_per_s,
        )
        self.repair.register(self.router)
        self.view.listeners.append(self._view_changed)

    def _view_changed(self, _view: PlacementView) -> None:
        if self.repair is not None:
            self.repair.poke()
        if self.handoff is not None:
            self.handoff.wake()

    def _fatal(self, error: BaseException) -> None:
        """A broken invariant in a Raft group: exit at once (crash-only). Everything this
        node acknowledged is already durable; a restart recovers from disk."""
        log_event(log, "node.fatal", logging.CRITICAL, error=repr(error))
        logging.shutdown()
        os._exit(FATAL_EXIT_CODE)

    async def _rpc_health(self) -> str | None:
        return None if self.rpc.port else "rpc server not listening"

    async def start(self) -> None:
        self.data_dir.acquire()
        if self.raft is not None:
            voters = set(self.raft.members)
            for group_id in range(KV_GROUP_FIRST, KV_GROUP_FIRST + self.config.raft_kv_groups):
                self.raft.add_group(group_id, voters)
            self.raft.add_group(ROOT_GROUP_ID, voters, RootMachine(self._cluster_config()))
            # Index shards are hosted where the directory says (the first one once the
            # root leader bootstraps the directory); those on disk are reopened now.
            if self.shard_hosting is not None:
                self.shard_hosting.reopen(self.raft.directory)
        if "storage" in self.config.roles:
            await self._open_storage()
        rpc_host, rpc_port = parse_hostport(self.config.rpc_listen)
        await self.rpc.start(rpc_host, rpc_port)
        await self.admin.start()
        if self.raft is not None:
            self.raft.start()
        if self.view is not None and self.membership is not None:
            self.view.start()
            self.membership.start()
        if self.root_duties is not None:
            self.root_duties.start()
        if self.shard_hosting is not None:
            self.shard_hosting.start()
        if self.splitter is not None:
            self.splitter.start(self.config.heartbeat_interval_s)
        if self.lock_service is not None:
            self.lock_service.start()
        if self.uploads is not None:
            self.uploads.start()
        for worker in (self.handoff, self.repair):
            if worker is not None:
                worker.start()
        self.admin.identity.update(
            node_id=self.config.node_id,
            version=__version__,
            rpc=f"{rpc_host}:{self.rpc.port}",
            admin=f"{self.admin.host}:{self.admin.bound_port}",
            roles=",".join(self.config.roles),
        )
        self.data_dir.write_json("node.json", dict(self.admin.identity))
        log_event(log, "node.started", **self.admin.identity)

    def request_stop(self) -> None:
        self._stopped.set()

    def _cluster_config(self) -> ClusterConfig:
        return ClusterConfig(
            partition_count=self.config.partition_count,
            replica_count=self.config.replication_factor,
            suspect_after_s=self.config.suspect_after_s,
            down_after_s=self.config.down_after_s,
            lost_after_s=self.config.down_after_s + self.config.repair_after_s,
        )

    async def stop(self) -> None:
        workers = (
            self.repair,
            self.handoff,
            self.splitter,
            self.shard_hosting,
            self.root_duties,
            self.membership,
            self.view,
        )
        for worker in workers:
            if worker is not None:
                await worker.stop()
        if self.lock_service is not None:
            await self.lock_service.stop()
        if self.uploads is not None:
            await self.uploads.stop()
        await self.admin.stop()
        await self.rpc.stop()
        if self.raft is not None:
            await self.raft.stop()
        if self.store is not None:
            await self.store.close()
        await self.pool.close()
        self.data_dir.release()
        log_event(log, "node.stopped")

    async def serve(self) -> None:
        """Start, run until SIGTERM/SIGINT, stop."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        await self.start()
        try:
            await self._stopped.wait()
        finally:
            await self.stop()


def _disk_size(path: Path) -> int:
    path.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(path).total


def run_node(config: CairnConfig) -> None:
    """Run a node in the foreground (blocking)."""
    configure_logging(config.log_format, config.log_level)
    bind_node(config.node_id)
    run(NodeServer(config).serve())
