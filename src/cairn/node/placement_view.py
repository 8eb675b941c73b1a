"""What a node or gateway knows about where chunks live: one epoch of the cluster map.

The root group's cluster map is the truth; every process keeps a `PlacementView` copied
from it (refreshed by polling, see `meta_client.ViewCache`) and routes chunk traffic by it.
A view may be stale: a chunk write then reaches the owners of an older epoch, which is
safe because the rebalancer copies every partition from its old owners to its new ones
before the epoch's moves are declared done, and readers try the previous table's owners
after the current ones.
"""

from dataclasses import dataclass, field

from cairn.placement import PartitionTable


@dataclass(frozen=True)
class PlacementView:
    epoch: int
    table: PartitionTable
    previous: PartitionTable | None
    """The last settled table while moves are under way (readers fall back to it)."""
    addresses: dict[str, str] = field(repr=False)
    """Member id -> RPC address, for every member that is not `out`."""
    live: frozenset[str]
    """Members whose replicas count: alive and not out."""
    names: dict[str, str] = field(default_factory=dict, repr=False)
    """Member id -> node name (config `node_id`), for messages and status."""

    def owners(self, chunk_id: bytes) -> tuple[str, ...]:
        return self.table.owners_of_chunk(chunk_id)

    def read_candidates(self, chunk_id: bytes) -> tuple[str, ...]:
        """Current owners first, then previous owners not already listed; live first."""
        owners = list(self.table.owners_of_chunk(chunk_id))
        if self.previous is not None:
            owners += [o for o in self.previous.owners_of_chunk(chunk_id) if o not in owners]
        return tuple(sorted(owners, key=lambda o: o not in self.live))

    def address(self, member_id: str) -> str | None:
        return self.addresses.get(member_id)

    def id_of_name(self, name: str) -> str | None:
        return next((i for i, n in self.names.items() if n == name), None)
