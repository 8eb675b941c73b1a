"""The cluster map of the root group: members, their liveness, and the partition table.

Theory of operation. A node joins with a self-chosen unique `name` (kept in its data
directory), its address, capacity and failure domains; the map gives it a stable id
(`n1`, `n2`, ... from a counter in the state). Joining again under the same name is a
retry or a restart: it returns the same id and refreshes address and capacity. A new name
on the address of a member that is not `out` is refused (`AddressInUse`): a node that lost
its data directory must be decommissioned first, not silently duplicated.

Each member has an *admin* state set by operators (`active`, `draining`, `out`; `out` is
final) and a *liveness* set by the leader's view of time:

- `Heartbeat(node_id, now_s, ...)` records capacity, used bytes and load, and makes the
  node `alive`. `now_s` is the leader's clock when it proposed the entry, not the
  sender's, so every replica sees one time line; a heartbeat older than the last one
  recorded does not move it back.
- `Tick(now_s)`, proposed by the leader every second or so, marks a member `suspect` once
  `suspect_after_s` passed since its last heartbeat and `down` after `down_after_s`. A tick
  never revives a node; only a heartbeat does. A new leader must not propose a tick before
  it has itself been leader for `down_after_s` (it did not see the heartbeats the old
  leader received), the same rule as lease extension in DESIGN section 7.

Placement sees one `cairn.placement.Node` per member, with this state:

| admin    | alive / suspect | down     |
|----------|-----------------|----------|
| active   | `up`            | `down`   |
| draining | `draining`      | `out`    |
| out      | `out`           | `out`    |

(a draining node that is down is neither placed nor live, which is `out` for placement).
Whenever that view changes -- a join, a state change, a weight or domain change -- the map
`epoch` bumps and the partition table is rebuilt with `cairn.placement.build_table`. If the
owners of some partition changed, the new table (carrying the new epoch) becomes current
and the one before it is kept as `previous_table`, so readers can fall back to the old
owners while the rebalancer moves data (`move_plan`); `MovesDone` drops it when the moves
are finished. If no owner changed (a node went down: down nodes keep their placements),
the table stays as it is and only the epoch moves, so `table.epoch <= epoch`.

Weights default to the capacity in TiB at join and then change only by `SetWeight`, so
heartbeats, whose capacity figures wobble, never move data.
"""

from __future__ import annotations

import math
from enum import StrEnum

import msgspec

from cairn.meta.machine import (
    COMMAND_FORMAT_V1,
    SNAPSHOT_FORMAT_V1,
    MetaError,
    ReplicatedMachine,
    SnapshotFormatError,
    VersionedCodec,
)
from cairn.placement import MovePlan, Node, NodeState, PartitionTable, build_table, plan_moves
from cairn.placement.nodes import NODE_ID_BYTES_MAX
from cairn.placement.table import REPLICA_COUNT_MAX, partition_bits

MEMBERS_MAX = 4096
"""Members ever joined, `out` ones included (ids are never reused)."""
NODE_NAME_BYTES_MAX = NODE_ID_BYTES_MAX
ADDRESS_BYTES_MAX = 255
DOMAIN_NAME_BYTES_MAX = 64
WEIGHT_MAX = 1e6
TIB_BYTES = 1024**4


class ClusterMapError(MetaError):
    """A cluster map command was rejected."""

    code = "InvalidRequest"


class UnknownNode(ClusterMapError):
    code = "NoSuchNode"


class NodeDecommissioned(ClusterMapError):
    """The node is `out`; it may not heartbeat, rejoin or change state again."""

    code = "NodeDecommissioned"


class AddressInUse(ClusterMapError):
    code = "AddressInUse"


class TooManyNodes(ClusterMapError):
    code = "TooManyNodes"


class AdminState(StrEnum):
    ACTIVE = "active"
    DRAINING = "draining"
    OUT = "out"


class Liveness(StrEnum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DOWN = "down"
    LOST = "lost"
    """Down for longer than `lost_after_s`: its partitions are re-placed and repaired
    from the survivors; a heartbeat brings it back (and its placements with it)."""


class ClusterConfig(msgspec.Struct, frozen=True):
    """Fixed at cluster creation, except the timeouts (`Configure`)."""

    partition_count: int = 4096
    replica_count: int = 3
    suspect_after_s: float = 10.0
    down_after_s: float = 30.0
    lost_after_s: float = 0.0
    """0: a down node keeps its placements however long it is down."""


class Member(msgspec.Struct, frozen=True):
    id: str
    name: str
    address: str
    capacity_bytes: int
    weight: float
    joined_s: float
    last_heartbeat_s: float
    zone: str = ""
    rack: str = ""
    host: str = ""
    used_bytes: int = 0
    load: float = 0.0
    admin: AdminState = AdminState.ACTIVE
    liveness: Liveness = Liveness.ALIVE
    synced_epoch: int = 0
    """The last partition table epoch this node reported holding all its data for."""

    @property
    def placement_state(self) -> NodeState:
        if self.liveness == Liveness.LOST:
            return NodeState.OUT
        down = self.liveness == Liveness.DOWN
        if self.admin == AdminState.ACTIVE:
            return NodeState.DOWN if down else NodeState.UP
        if self.admin == AdminState.DRAINING and not down:
            return NodeState.DRAINING
        return NodeState.OUT

    def to_node(self) -> Node:
        return Node(self.id, self.weight, self.zone, self.rack, self.host, self.placement_state)


# Commands ---------------------------------------------------------------------------------


class Join(msgspec.Struct, tag="join", frozen=True):
    name: str
    address: str
    capacity_bytes: int
    now_s: float
    zone: str = ""
    rack: str = ""
    host: str = ""
    weight: float | None = None


class Heartbeat(msgspec.Struct, tag="heartbeat", frozen=True):
    node_id: str
    now_s: float
    capacity_bytes: int
    used_bytes: int
    load: float
    synced_epoch: int = 0


class Tick(msgspec.Struct, tag="tick", frozen=True):
    now_s: float


class Drain(msgspec.Struct, tag="drain", frozen=True):
    node_id: str


class Undrain(msgspec.Struct, tag="undrain", frozen=True):
    node_id: str


class Decommission(msgspec.Struct, tag="decommission", frozen=True):
    node_id: str


class SetWeight(msgspec.Struct, tag="weight", frozen=True):
    node_id: str
    weight: float


class SetFailureDomain(msgspec.Struct, tag="domain", frozen=True):
    node_id: str
    zone: str
    rack: str
    host: str


class Configure(msgspec.Struct, tag="configure", frozen=True):
    suspect_after_s: float
    down_after_s: float
    lost_after_s: float | None = None
    """None keeps the current value."""


class MovesDone(msgspec.Struct, tag="moves_done", frozen=True):
    """The rebalancer finished moving to table `table_epoch`: forget the previous table."""

    table_epoch: int


ClusterCommand = (
    Join
    | Heartbeat
    | Tick
    | Drain
    | Undrain
    | Decommission
    | SetWeight
    | SetFailureDomain
    | Configure
    | MovesDone
)


class Change(msgspec.Struct, frozen=True):
    """The result of a command: the members it changed and the epochs after it."""

    members: tuple[Member, ...]
    epoch: int
    table_epoch: int


class _TableV1(msgspec.Struct, frozen=True, array_like=True):
    epoch: int
    owners: list[tuple[str, ...]]


class _SnapshotV1(msgspec.Struct, frozen=True):
    applied_index: int
    config: ClusterConfig
    epoch: int
    next_id: int
    members: list[Member]
    table: _TableV1
    previous: _TableV1 | None


_commands: VersionedCodec[ClusterCommand] = VersionedCodec(ClusterCommand, COMMAND_FORMAT_V1)
_snapshots: VersionedCodec[_SnapshotV1] = VersionedCodec(
    _SnapshotV1, SNAPSHOT_FORMAT_V1, SnapshotFormatError
)


def encode_command(command: ClusterCommand) -> bytes:
    return _commands.encode(command)


def decode_command(data: bytes) -> ClusterCommand:
    return _commands.decode(data)


def validate_config(config: ClusterConfig) -> None:
    try:
        partition_bits(config.partition_count)
    except ValueError as exc:
        raise ClusterMapError(str(exc)) from exc
    if not 1 <= config.replica_count <= REPLICA_COUNT_MAX:
        raise ClusterMapError(f"replica count must be 1..{REPLICA_COUNT_MAX}")
    _validate_timeouts(config.suspect_after_s, config.down_after_s, config.lost_after_s)


def _validate_timeouts(suspect_after_s: float, down_after_s: float, lost_after_s: float) -> None:
    if not (0.0 < suspect_after_s <= down_after_s and math.isfinite(down_after_s)):
        raise ClusterMapError("timeouts must be finite with 0 < suspect_after_s <= down_after_s")
    if lost_after_s and not (down_after_s <= lost_after_s and math.isfinite(lost_after_s)):
        raise ClusterMapError("lost_after_s must be 0 (never) or finite and >= down_after_s")


def _validate_text(what: str, value: str, bytes_max: int, *, required: bool = False) -> None:
    size = len(value.encode())
    if size > bytes_max or (required and size == 0):
        raise ClusterMapError(f"{what} must be {int(required)}..{bytes_max} bytes")


def _validate_domains(zone: str, rack: str, host: str) -> None:
    for what, value in (("zone", zone), ("rack", rack), ("host", host)):
        _validate_text(what, value, DOMAIN_NAME_BYTES_MAX)
        if "/" in value:
            raise ClusterMapError(f"{what} may not contain '/': {value!r}")


def _validate_weight(weight: float) -> None:
    if not 0.0 <= weight <= WEIGHT_MAX:
        raise ClusterMapError(f"weight must be 0..{WEIGHT_MAX}: {weight}")


def _validate_time(now_s: float) -> None:
    if not math.isfinite(now_s):
        raise ClusterMapError("time must be finite")


class ClusterMap(ReplicatedMachine[ClusterCommand]):
    """The replicated cluster map (see the module docstring)."""

    commands = _commands

    def __init__(self, config: ClusterConfig | None = None) -> None:
        super().__init__()
        # Through msgpack and back, so that an int given for a float field becomes the
        # float every replica restoring a snapshot will hold (identical snapshot bytes).
        raw = msgspec.msgpack.encode(config if config is not None else ClusterConfig())
        self.config = msgspec.msgpack.decode(raw, type=ClusterConfig)
        validate_config(self.config)
        self.epoch = 0
        self._next_id = 1
        self._members: dict[str, Member] = {}
        self._view: tuple[Node, ...] = ()
        self._table = build_table((), self.config.partition_count, self.config.replica_count, 0)
        self._previous: PartitionTable | None = None

    # Queries ------------------------------------------------------------------------------

    def members(self) -> list[Member]:
        """Every member, `out` ones included, in join order."""
        return list(self._members.values())

    def node(self, node_id: str) -> Member:
        member = self._members.get(node_id)
        if member is None:
            raise UnknownNode(f"no node {node_id!r}")
        return member

    def node_by_name(self, name: str) -> Member | None:
        return next((m for m in self._members.values() if m.name == name), None)

    @property
    def table(self) -> PartitionTable:
        return self._table

    @property
    def previous_table(self) -> PartitionTable | None:
        """The table before the current one, until `MovesDone`; readers fall back to it."""
        return self._previous

    def placement_nodes(self) -> list[Node]:
        return list(self._view)

    def live_node_ids(self) -> frozenset[str]:
        """Members whose replicas count (placement `up` or `draining`)."""
        return frozenset(n.id for n in self._view if n.serves_data)

    def move_plan(self) -> MovePlan | None:
        """Moves from the previous table to the current one, or None when settled."""
        if self._previous is None:
            return None
        return plan_moves(self._previous, self._table, self.live_node_ids())

    # Commands -----------------------------------------------------------------------------

    def execute(self, command: ClusterCommand) -> Change:
        if isinstance(command, Join):
            changed: tuple[Member, ...] = (self._join(command),)
        elif isinstance(command, Heartbeat):
            changed = (self._heartbeat(command),)
        elif isinstance(command, Tick):
            changed = self._tick(command.now_s)
        elif isinstance(command, Configure):
            lost_after_s = command.lost_after_s
            if lost_after_s is None:
                lost_after_s = self.config.lost_after_s
            _validate_timeouts(command.suspect_after_s, command.down_after_s, lost_after_s)
            self.config = msgspec.structs.replace(
                self.config,
                suspect_after_s=command.suspect_after_s,
                down_after_s=command.down_after_s,
                lost_after_s=lost_after_s,
            )
            changed = ()
        elif isinstance(command, MovesDone):
            if command.table_epoch == self._table.epoch:
                self._previous = None
            changed = ()
        else:
            changed = (self._operate(command),)
        self._refresh()
        return Change(changed, self.epoch, self._table.epoch)

    def _join(self, command: Join) -> Member:
        _validate_text("name", command.name, NODE_NAME_BYTES_MAX, required=True)
        _validate_text("address", command.address, ADDRESS_BYTES_MAX, required=True)
        _validate_domains(command.zone, command.rack, command.host)
        _validate_time(command.now_s)
        if command.capacity_bytes < 0:
            raise ClusterMapError("capacity must be >= 0")
        weight = command.weight
        if weight is None:
            weight = min(command.capacity_bytes / TIB_BYTES, WEIGHT_MAX)
        _validate_weight(weight)
        existing = self.node_by_name(command.name)
        if existing is not None and existing.admin == AdminState.OUT:
            raise NodeDecommissioned(f"{command.name!r} was decommissioned as {existing.id}")
        for member in self._members.values():
            if (
                member.address == command.address
                and member.name != command.name
                and member.admin != AdminState.OUT
            ):
                raise AddressInUse(f"{command.address} belongs to {member.id}")
        if existing is not None:
            member = msgspec.structs.replace(
                existing,
                address=command.address,
                capacity_bytes=command.capacity_bytes,
                last_heartbeat_s=max(existing.last_heartbeat_s, command.now_s),
                liveness=Liveness.ALIVE,
            )
        else:
            if len(self._members) >= MEMBERS_MAX:
                raise TooManyNodes(f"the map already has {MEMBERS_MAX} members")
            member = Member(
                id=f"n{self._next_id}",
                name=command.name,
                address=command.address,
                capacity_bytes=command.capacity_bytes,
                weight=weight,
                joined_s=command.now_s,
                last_heartbeat_s=command.now_s,
                zone=command.zone,
                rack=command.rack,
                host=command.host,
            )
            self._next_id += 1
        self._members[member.id] = member
        return member

    def _heartbeat(self, command: Heartbeat) -> Member:
        member = self._active(command.node_id)
        _validate_time(command.now_s)
        if command.capacity_bytes < 0 or command.used_bytes < 0:
            raise ClusterMapError("capacity and used bytes must be >= 0")
        if not 0.0 <= command.load < math.inf:
            raise ClusterMapError(f"load must be finite and >= 0: {command.load}")
        member = msgspec.structs.replace(
            member,
            capacity_bytes=command.capacity_bytes,
            used_bytes=command.used_bytes,
            load=command.load,
            last_heartbeat_s=max(member.last_heartbeat_s, command.now_s),
            liveness=Liveness.ALIVE,
            synced_epoch=max(member.synced_epoch, command.synced_epoch),
        )
        self._members[member.id] = member
        return member

    def _tick(self, now_s: float) -> tuple[Member, ...]:
        _validate_time(now_s)
        changed = []
        for member in self._members.values():
            if member.admin == AdminState.OUT:
                continue
            age_s = now_s - member.last_heartbeat_s
            liveness = member.liveness
            lost_after_s = self.config.lost_after_s
            if lost_after_s and age_s >= lost_after_s:
                liveness = Liveness.LOST
            elif age_s >= self.config.down_after_s and liveness != Liveness.LOST:
                liveness = Liveness.DOWN
            elif age_s >= self.config.suspect_after_s and liveness == Liveness.ALIVE:
                liveness = Liveness.SUSPECT
            if liveness != member.liveness:
                changed.append(msgspec.structs.replace(member, liveness=liveness))
        for member in changed:
            self._members[member.id] = member
        return tuple(changed)

    def _operate(
        self, command: Drain | Undrain | Decommission | SetWeight | SetFailureDomain
    ) -> Member:
        member = self._active(command.node_id)
        if isinstance(command, Drain):
            return self._store(msgspec.structs.replace(member, admin=AdminState.DRAINING))
        if isinstance(command, Undrain):
            return self._store(msgspec.structs.replace(member, admin=AdminState.ACTIVE))
        if isinstance(command, Decommission):
            return self._store(msgspec.structs.replace(member, admin=AdminState.OUT))
        if isinstance(command, SetWeight):
            _validate_weight(command.weight)
            return self._store(msgspec.structs.replace(member, weight=command.weight))
        _validate_domains(command.zone, command.rack, command.host)
        return self._store(
            msgspec.structs.replace(member, zone=command.zone, rack=command.rack, host=command.host)
        )

    def _active(self, node_id: str) -> Member:
        member = self.node(node_id)
        if member.admin == AdminState.OUT:
            raise NodeDecommissioned(f"node {node_id} is out")
        return member

    def _store(self, member: Member) -> Member:
        self._members[member.id] = member
        return member

    def _refresh(self) -> None:
        """Bump the epoch and rebuild the table if the placement view changed."""
        view = tuple(m.to_node() for m in self._members.values())
        if view == self._view:
            return
        self._view = view
        self.epoch += 1
        table = build_table(
            view, self.config.partition_count, self.config.replica_count, self.epoch
        )
        if table.owners != self._table.owners:
            if self._previous is None:
                self._previous = self._table
            self._table = table

    # Snapshots ----------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        previous = self._previous
        snap = _SnapshotV1(
            self.applied_index,
            self.config,
            self.epoch,
            self._next_id,
            self.members(),
            _TableV1(self._table.epoch, list(self._table.owners)),
            _TableV1(previous.epoch, list(previous.owners)) if previous is not None else None,
        )
        return _snapshots.encode(snap)

    def restore(self, data: bytes) -> None:
        snap = _snapshots.decode(data)
        config = snap.config

        def table(t: _TableV1) -> PartitionTable:
            owners = tuple(tuple(o) for o in t.owners)
            return PartitionTable(t.epoch, config.partition_count, config.replica_count, owners)

        self.config = config
        self.epoch = snap.epoch
        self._next_id = snap.next_id
        self._members = {m.id: m for m in snap.members}
        self._view = tuple(m.to_node() for m in self._members.values())
        self._table = table(snap.table)
        self._previous = table(snap.previous) if snap.previous is not None else None
        self.applied_index = snap.applied_index
