"""Cluster members as placement sees them: id, weight, failure domains and state.

A node's *weight* is its share of the data (capacity, usually in TiB or any consistent
unit). Its failure domains nest: a host sits in a rack, a rack in a zone. Rack and host
names only need to be unique within their parent: placement compares them as paths
(`zone`, `zone/rack`, `zone/rack/host`).

States and what placement does with them:

| state      | placed on | live (reads, copy source) | meaning                          |
|------------|-----------|---------------------------|----------------------------------|
| `up`       | yes       | yes                       | normal                           |
| `down`     | yes       | no                        | unreachable for now (see below)  |
| `draining` | no        | yes                       | being emptied on purpose         |
| `out`      | no        | no                        | removed; re-replicated elsewhere |

A `down` node keeps its placements so that a reboot moves no data; writes meant for it go
to hints and repair fills the gap. An operator (or a timeout) marks it `out` to move its
partitions for good.
"""

from dataclasses import dataclass
from enum import StrEnum

NODE_ID_BYTES_MAX = 255
"""A node id, UTF-8 encoded, is at most this long (it is hashed and sent in every map)."""


class NodeState(StrEnum):
    UP = "up"
    DOWN = "down"
    DRAINING = "draining"
    OUT = "out"


_HOLDS_PLACEMENTS = frozenset({NodeState.UP, NodeState.DOWN})
_SERVES_DATA = frozenset({NodeState.UP, NodeState.DRAINING})


@dataclass(frozen=True, slots=True)
class Node:
    """One storage node. `weight` > 0 for a node that should hold data."""

    id: str
    weight: float = 1.0
    zone: str = ""
    rack: str = ""
    host: str = ""
    state: NodeState = NodeState.UP

    def __post_init__(self) -> None:
        if not self.id or len(self.id.encode()) > NODE_ID_BYTES_MAX:
            raise ValueError(f"node id must be 1..{NODE_ID_BYTES_MAX} bytes: {self.id!r}")
        if not self.weight >= 0.0 or self.weight == float("inf"):
            raise ValueError(f"node {self.id}: weight must be finite and >= 0, not {self.weight}")

    @property
    def holds_placements(self) -> bool:
        """Whether the partition table may assign partitions to this node."""
        return self.state in _HOLDS_PLACEMENTS and self.weight > 0.0

    @property
    def serves_data(self) -> bool:
        """Whether this node's replicas count as live (readable, usable as a copy source)."""
        return self.state in _SERVES_DATA

    @property
    def domains(self) -> tuple[str, str, str]:
        """Failure-domain paths, widest first: zone, zone/rack, zone/rack/host."""
        rack = f"{self.zone}/{self.rack}"
        return (self.zone, rack, f"{rack}/{self.host or self.id}")
