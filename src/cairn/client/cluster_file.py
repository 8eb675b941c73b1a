"""Finding a cluster: `cluster.json` as written by `cairn up`, named by `--cluster` or by
the `CAIRN_CLUSTER` environment variable.

The file holds the cluster secret and every node's addresses; it is created mode 0600 and
is the one thing a client needs. Unknown fields are ignored so that older clients read
newer files.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.base.errors import ConfigError

CLUSTER_ENV = "CAIRN_CLUSTER"


@dataclass(frozen=True)
class NodeEntry:
    node_id: str
    rpc: str
    admin: str
    s3: str
    member_id: str = ""
    raft_id: int = 0
    pid: int | None = None
    data_dir: str = ""


@dataclass(frozen=True)
class ClusterFile:
    path: Path
    secret: str
    nodes: list[NodeEntry]
    s3_endpoint: str = ""
    access_key: str = ""
    secret_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def rpc_addresses(self) -> list[str]:
        return [n.rpc for n in self.nodes]

    @property
    def meta_addresses(self) -> list[str]:
        """RPC addresses of the nodes that host the metadata groups."""
        voters = [n.rpc for n in self.nodes if n.raft_id]
        return voters or self.rpc_addresses

    @property
    def gateways(self) -> list[str]:
        """HTTP base URLs of the gateways (the native API and S3 share a port)."""
        return [n.s3 for n in self.nodes if n.s3]


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """`path`, else $CAIRN_CLUSTER, else ./cairn-local/cluster.json (what `make up` writes)."""
    chosen = path or os.environ.get(CLUSTER_ENV) or "./cairn-local/cluster.json"
    candidate = Path(chosen)
    return candidate / "cluster.json" if candidate.is_dir() else candidate


def load_cluster_file(path: str | os.PathLike[str] | None = None) -> ClusterFile:
    resolved = resolve_path(path)
    try:
        data = json.loads(resolved.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"no cluster file at {resolved}: start one with `cairn up`, or name it with "
            f"--cluster or ${CLUSTER_ENV}"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read cluster file {resolved}: {exc}") from None
    try:
        nodes = [
            NodeEntry(
                node_id=str(n["node_id"]),
                rpc=str(n["rpc"]),
                admin=str(n.get("admin", "")),
                s3=str(n.get("s3", "")),
                member_id=str(n.get("member_id") or ""),
                raft_id=int(n.get("raft_id") or 0),
                pid=n.get("pid"),
                data_dir=str(n.get("data_dir", "")),
            )
            for n in data["nodes"]
        ]
        return ClusterFile(
            path=resolved,
            secret=str(data["cluster_secret"]),
            nodes=nodes,
            s3_endpoint=str(data.get("s3_endpoint", "")),
            access_key=str(data.get("access_key", "")),
            secret_key=str(data.get("secret_key", "")),
            extra=data,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"cluster file {resolved} is malformed: {exc!r}") from None
