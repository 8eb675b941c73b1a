"""What `cairn server` runs: a node, and on gateway nodes the gateway, on one event loop.

Composition. The node (`node.NodeServer`) owns the RPC server, the metadata clients, the
placement view and the chunk storage. The gateway is built on top of the node's parts and
adds nothing that lives on disk:

- `ReplicatedChunks` over the node's authenticated `RpcPool`, routed by the node's
  `ViewCache`;
- an `ObjectService` over the node's `MetaClient` and those chunks, with the codec key
  derived from the cluster secret;
- the native RPC handlers, registered on the node's `Router` *before* the node's RPC server
  starts (the router builds its decoder lazily, so registering earlier is all it needs);
- an aiohttp application on `s3_listen` with the native HTTP API mounted under
  `/_cairn/v1` and the S3 API (`gateway.s3`) on every other path; S3 users and keys are
  looked up in the root group through a `UserClient`.

`serve` also hands the node's root duties the bootstrap admin credentials of the config
(`admin_access_key`/`admin_secret_key`, which `cairn up` sets), so whichever voter leads
the root group installs them as the `admin` S3 user.

Start order: node first (RPC, Raft, view), then the gateway's HTTP port, so a client that
can connect finds a node behind it. Stop order is the reverse: stop accepting HTTP, let
chunk writes still running in the background finish, then stop the node. SIGTERM and
SIGINT trigger the stop.
"""

import asyncio
import logging
import signal

from aiohttp import web

from cairn.config import CairnConfig, parse_hostport
from cairn.gateway.keys import cluster_key, native_token
from cairn.gateway.lock_http import FencedMeta, mount_locks
from cairn.gateway.native_http import mount
from cairn.gateway.native_rpc import NativeRpc
from cairn.gateway.objects import ObjectService
from cairn.gateway.s3 import S3App
from cairn.gateway.s3.multipart import register_multipart
from cairn.meta.buckets import StoragePolicy
from cairn.monitor.logs import bind_node, configure_logging, log_event
from cairn.node import NodeServer
from cairn.node.chunk_client import ReplicatedChunks
from cairn.node.root_duties import AdminCredentials
from cairn.node.upload_client import UploadClient
from cairn.node.user_client import UserClient
from cairn.runtime.event_loop import run

log = logging.getLogger("cairn.gateway")

DRAIN_SECONDS_MAX = 10.0
"""How long a stopping gateway waits for background chunk writes (hints) to finish."""


class Gateway:
    """The gateway role of one node process (see the module doc)."""

    def __init__(self, node: NodeServer) -> None:
        config = node.config
        if node.meta is None or node.view is None:
            raise ValueError("the gateway needs a clustered node (raft_peers set)")
        self.config = config
        view = node.view
        self.chunks = ReplicatedChunks(node.pool, view.require, config.lb_strategy)
        fenced = FencedMeta(node.meta)  # issue 8: X-Cairn-Fence checked before index commits
        self.service = ObjectService(
            fenced,
            self.chunks,
            cluster_key(config.cluster_secret),
            default_level=config.write_consistency,
            default_policy=StoragePolicy(
                replicas=config.replication_factor,
                compression=config.compression,
                encryption=config.encryption,
            ),
            gc_grace_s=config.gc_grace_s,
            ready=view.get,
        )
        self.rpc = NativeRpc(self.service)
        self.rpc.register(node.router)
        self.app = web.Application()
        mount_locks(self.app, node.meta, native_token(config.cluster_secret))  # issue 8
        mount(self.app, self.service, native_token(config.cluster_secret))
        self.users = UserClient(node.meta, config.cluster_secret)
        self.s3 = S3App(self.service, self.users, config.cluster_secret, versions=node.meta)
        register_multipart(self.s3, UploadClient(node.meta), fenced.check_fence)  # issue 7
        self.s3.mount(self.app)
        self._runner: web.AppRunner | None = None
        self.port = 0
        node.admin.checks["gateway"] = self._health

    async def _health(self) -> str | None:
        return None if self.port else "gateway HTTP not listening"

    async def start(self) -> None:
        host, port = parse_hostport(self.config.s3_listen)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else port
        log_event(log, "gateway.listening", host=host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        try:
            async with asyncio.timeout(DRAIN_SECONDS_MAX):
                await self.chunks.drain()
        except TimeoutError:
            log_event(log, "gateway.drain_timeout", logging.WARNING, running=self.chunks.background)
        self.s3.close()
        self.service.close()


async def serve(config: CairnConfig) -> None:
    """Run the node (and the gateway, if this node has the role) until SIGTERM/SIGINT."""
    node = NodeServer(config)
    if node.root_duties is not None and config.admin_access_key:
        node.root_duties.admin_credentials = AdminCredentials(
            config.admin_access_key, config.admin_secret_key, config.cluster_secret
        )
    gateway = Gateway(node) if "gateway" in config.roles and config.raft_peers else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await node.start()
    try:
        if gateway is not None:
            await gateway.start()
        await stop.wait()
    finally:
        if gateway is not None:
            await gateway.stop()
        await node.stop()


def run_server(config: CairnConfig) -> None:
    """Run `cairn server` in the foreground (blocking)."""
    configure_logging(config.log_format, config.log_level)
    bind_node(config.node_id)
    run(serve(config))
