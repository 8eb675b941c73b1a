"""The configuration model of a Cairn process.

One msgspec Struct, so that decoding is validation: a wrong type, an unknown field or a
value out of range fails with the field's path in the message, before anything starts.
Cross-field rules live in `__post_init__`, whose ValueErrors msgspec reports with the
same path. Every field has a default that makes a single-node cluster on 127.0.0.1 work.
"""

from typing import Annotated, Literal

import msgspec

ROLES = ("storage", "meta", "gateway", "lb")
LB_STRATEGIES = ("round-robin", "weighted", "least-connections", "source-hash", "p2c-ewma")

Role = Literal["storage", "meta", "gateway", "lb"]
LbStrategy = Literal["round-robin", "weighted", "least-connections", "source-hash", "p2c-ewma"]
ReadConsistency = Literal["linearizable", "lease", "stale"]
WriteConsistency = Literal["one", "quorum", "all"]
FsyncPolicy = Literal["always", "batch", "none"]
LogFormat = Literal["kv", "json"]

NodeId = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
HostPort = Annotated[str, msgspec.Meta(min_length=3, max_length=262)]
SECRET_LENGTH_MIN = 16
DEV_SECRET = "cairn-dev-secret-change-me"


def parse_hostport(value: str) -> tuple[str, int]:
    """Split "host:port" (or "[v6]:port"); raise ValueError with the reason."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected host:port, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port must be 0-65535 in {value!r}")
    return host, int(port_text)


class TlsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Certificates for node-to-node RPC, as written by `cairn cert`."""

    enabled: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    def __post_init__(self) -> None:
        if self.enabled and not (self.ca_file and self.cert_file and self.key_file):
            raise ValueError("tls.enabled needs ca_file, cert_file and key_file")


class CairnConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything a Cairn process is told. See docs/config.md for each field."""

    node_id: NodeId = "node-1"
    data_dir: str = "./cairn-data"
    roles: list[Role] = msgspec.field(default_factory=lambda: ["storage", "meta", "gateway"])
    rpc_listen: HostPort = "127.0.0.1:7400"
    admin_listen: HostPort = "127.0.0.1:7480"
    s3_listen: HostPort = "127.0.0.1:9000"
    seeds: list[HostPort] = msgspec.field(default_factory=list)
    cluster_secret: str = DEV_SECRET
    replication_factor: Annotated[int, msgspec.Meta(ge=1, le=7)] = 3
    partition_count: Annotated[int, msgspec.Meta(ge=1, le=1 << 20)] = 4096
    read_consistency: ReadConsistency = "lease"
    write_consistency: WriteConsistency = "quorum"
    fsync: FsyncPolicy = "batch"
    chunk_cache_behind_mib: Annotated[int, msgspec.Meta(ge=0, le=1 << 20)] = 256
    compression: bool = True
    encryption: bool = True
    lb_strategy: LbStrategy = "p2c-ewma"
    log_format: LogFormat = "kv"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    tls: TlsConfig = msgspec.field(default_factory=TlsConfig)
    # Static Raft membership until the cluster map (issue 6) takes over: this node's Raft
    # id (0: hosts no Raft group) and every member as "ID=HOST:PORT" (RPC address).
    raft_id: Annotated[int, msgspec.Meta(ge=0)] = 0
    raft_peers: list[str] = msgspec.field(default_factory=list)
    raft_tick_ms: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 50
    raft_election_ticks: Annotated[int, msgspec.Meta(ge=3, le=1000)] = 10
    raft_snapshot_entries: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    raft_kv_groups: Annotated[int, msgspec.Meta(ge=0, le=256)] = 1  # KV groups (raft.kv_service)
    # Cluster (issue 6). Liveness: a node that has not heartbeated for suspect_after_s is
    # suspect, after down_after_s down; repair_after_s later it is "lost": its partitions
    # get new owners, which copy them from the survivors.
    heartbeat_interval_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 1.0
    suspect_after_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    down_after_s: Annotated[float, msgspec.Meta(gt=0)] = 15.0
    repair_after_s: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    repair_bytes_per_s: Annotated[int, msgspec.Meta(ge=0)] = 64 << 20  # 0: no limit
    gc_grace_s: Annotated[float, msgspec.Meta(ge=0)] = 3600.0
    gc_interval_s: Annotated[float, msgspec.Meta(ge=0)] = 3600.0  # 0: only `cairn gc`
    capacity_bytes: Annotated[int, msgspec.Meta(ge=0)] = 0  # 0: the data disk's size
    zone: str = ""
    rack: str = ""
    host: str = ""
    # S3 (issue 7): bootstrap credentials the root leader installs as the `admin` user
    # (`cairn up` passes the pair it writes to cluster.json). Both or neither.
    admin_access_key: str = ""
    admin_secret_key: str = ""
    # Index shards (stop 15): the root leader splits a shard holding more keys than
    # index_split_keys, or applying more commands per second than index_split_ops_per_s
    # for a few seconds in a row (0: never, for either), and spreads shard leaders.
    index_split_keys: Annotated[int, msgspec.Meta(ge=0)] = 50_000
    index_split_ops_per_s: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    index_balance_leaders: bool = True
    # Multipart uploads (issue 7): the shard leaders abort uploads older than this
    # (their parts' chunks then go at the next GC round); 0: never.
    multipart_expiry_s: Annotated[float, msgspec.Meta(ge=0)] = 7 * 24 * 3600.0

    def raft_members(self) -> dict[int, str]:
        """raft_peers parsed: node id -> RPC address."""
        members: dict[int, str] = {}
        for item in self.raft_peers:
            ident, sep, address = item.partition("=")
            if not sep or not ident.isdigit() or int(ident) < 1:
                raise ValueError(f"raft_peers: expected ID=HOST:PORT with ID >= 1, got {item!r}")
            parse_hostport(address)
            members[int(ident)] = address
        return members

    def __post_init__(self) -> None:
        for name in ("rpc_listen", "admin_listen", "s3_listen"):
            try:
                parse_hostport(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        for seed in self.seeds:
            parse_hostport(seed)
        if self.partition_count & (self.partition_count - 1):
            raise ValueError(f"partition_count must be a power of two, got {self.partition_count}")
        if len(self.cluster_secret) < SECRET_LENGTH_MIN:
            raise ValueError(f"cluster_secret must be at least {SECRET_LENGTH_MIN} characters")
        if not self.roles:
            raise ValueError("roles must name at least one role")
        if len(set(self.roles)) != len(self.roles):
            raise ValueError(f"roles has duplicates: {self.roles}")
        members = self.raft_members()
        if self.raft_id and self.raft_id not in members:
            raise ValueError(f"raft_id {self.raft_id} is not among raft_peers")
        if self.suspect_after_s >= self.down_after_s:
            raise ValueError("suspect_after_s must be less than down_after_s")
        if bool(self.admin_access_key) != bool(self.admin_secret_key):
            raise ValueError("admin_access_key and admin_secret_key go together")


SECRET_FIELDS = ("cluster_secret", "admin_secret_key")


def masked(config: CairnConfig) -> dict[str, object]:
    """The config as plain data with secrets replaced, for printing and logging."""
    data: dict[str, object] = msgspec.to_builtins(config)
    for name in SECRET_FIELDS:
        value = str(data[name])
        data[name] = "****" if value else ""
    return data
