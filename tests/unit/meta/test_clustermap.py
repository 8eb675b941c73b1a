"""The cluster map: joins and ids, heartbeats and failure detection, operator commands,
epochs and partition tables, determinism, snapshots, bad input, and a rule-based run."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from cairn.meta.clustermap import (
    TIB_BYTES,
    AddressInUse,
    AdminState,
    Change,
    ClusterCommand,
    ClusterConfig,
    ClusterMap,
    ClusterMapError,
    Configure,
    Decommission,
    Drain,
    Heartbeat,
    Join,
    Liveness,
    Member,
    MovesDone,
    NodeDecommissioned,
    SetFailureDomain,
    SetWeight,
    Tick,
    Undrain,
    UnknownNode,
    encode_command,
)
from cairn.meta.machine import CommandFormatError, SnapshotFormatError
from cairn.placement import NodeState, build_table

CONFIG = ClusterConfig(partition_count=64, replica_count=2, suspect_after_s=10, down_after_s=30)


class Map:
    def __init__(self, config: ClusterConfig = CONFIG) -> None:
        self.m = ClusterMap(config)
        self.index = 0

    def run(self, command: ClusterCommand) -> object:
        self.index += 1
        return self.m.apply(self.index, encode_command(command))

    def ok(self, command: ClusterCommand) -> Change:
        result = self.run(command)
        assert isinstance(result, Change), result
        return result

    def join(self, name: str, now_s: float = 0.0, zone: str = "") -> Member:
        change = self.ok(Join(name, f"10.0.0.{name}:7000", TIB_BYTES, now_s, zone=zone))
        return change.members[0]


def three(m: Map) -> list[str]:
    return [m.join(str(i), zone=f"z{i}").id for i in (1, 2, 3)]


def test_join_gives_stable_ids_and_rejoin_is_idempotent() -> None:
    m = Map()
    assert three(m) == ["n1", "n2", "n3"]
    assert m.m.node("n1").weight == 1.0, "weight defaults to capacity in TiB"
    epoch = m.m.epoch
    again = m.ok(Join("1", "10.0.0.9:7000", 5 * TIB_BYTES, 1.0))
    assert again.members[0].id == "n1" and again.members[0].address == "10.0.0.9:7000"
    assert again.members[0].weight == 1.0, "rejoining does not move data"
    assert m.m.epoch == epoch
    assert isinstance(m.run(Join("other", "10.0.0.2:7000", 1, 0.0)), AddressInUse)
    assert m.m.table.under_replicated() == 0
    assert all(len(owners) == 2 for owners in m.m.table.owners)


def test_failure_detection_by_tick_and_revival_by_heartbeat() -> None:
    m = Map()
    three(m)
    epoch, table = m.m.epoch, m.m.table
    m.ok(Heartbeat("n1", 25.0, TIB_BYTES, 5, 0.5))
    m.ok(Heartbeat("n2", 25.0, TIB_BYTES, 6, 0.25))
    assert m.ok(Tick(9.0)).members == ()
    suspects = m.ok(Tick(12.0)).members
    assert [(x.id, x.liveness) for x in suspects] == [("n3", Liveness.SUSPECT)]
    assert m.m.epoch == epoch, "suspicion does not change placement"
    change = m.ok(Tick(31.0))
    assert [(x.id, x.liveness) for x in change.members] == [("n3", Liveness.DOWN)]
    assert m.m.epoch == epoch + 1 and m.m.table == table, "down nodes keep their placements"
    assert change.table_epoch == table.epoch and m.m.live_node_ids() == {"n1", "n2"}
    assert m.m.node("n1").used_bytes == 5 and m.m.node("n1").load == 0.5
    stale = m.ok(Heartbeat("n3", 15.0, TIB_BYTES, 0, 0.0)).members[0]
    assert stale.liveness == Liveness.ALIVE and stale.last_heartbeat_s == 15.0
    m.ok(Heartbeat("n3", 14.0, TIB_BYTES, 0, 0.0))
    assert m.m.node("n3").last_heartbeat_s == 15.0, "time never moves back"
    assert m.m.epoch == epoch + 2
    m.ok(Tick(100.0))
    assert {x.liveness for x in m.m.members()} == {Liveness.DOWN}
    m.ok(Tick(0.0))
    assert {x.liveness for x in m.m.members()} == {Liveness.DOWN}, "ticks never revive"


def test_drain_moves_data_and_keeps_the_previous_table_until_moves_are_done() -> None:
    m = Map()
    three(m)
    assert m.m.previous_table is not None and m.m.previous_table.epoch == 0
    m.ok(MovesDone(m.m.table.epoch))
    settled = m.m.table
    change = m.ok(Drain("n1"))
    assert m.m.node("n1").admin == AdminState.DRAINING
    assert change.table_epoch == m.m.epoch == change.epoch
    assert "n1" not in {n for owners in m.m.table.owners for n in owners}
    assert m.m.previous_table == settled
    assert "n1" in m.m.live_node_ids(), "a draining node still serves reads"
    plan = m.m.move_plan()
    assert plan is not None and plan.from_epoch == settled.epoch
    assert {mv.from_node for mv in plan.moves} == {"n1"}
    m.ok(SetWeight("n2", 2.0))
    assert m.m.previous_table == settled, "still the last settled table"
    m.ok(MovesDone(settled.epoch))
    assert m.m.previous_table == settled, "an old epoch does not settle the current table"
    m.ok(MovesDone(m.m.table.epoch))
    assert m.m.previous_table is None and m.m.move_plan() is None
    m.ok(Undrain("n1"))
    assert m.m.node("n1").admin == AdminState.ACTIVE
    assert "n1" in {n for owners in m.m.table.owners for n in owners}


def test_placement_states_follow_admin_and_liveness() -> None:
    m = Map()
    three(m)
    m.ok(Drain("n1"))
    m.ok(Heartbeat("n2", 100.0, 0, 0, 0.0))
    m.ok(Heartbeat("n3", 100.0, 0, 0, 0.0))
    m.ok(Tick(50.0))
    states = {n.id: n.state for n in m.m.placement_nodes()}
    assert states == {"n1": NodeState.OUT, "n2": NodeState.UP, "n3": NodeState.UP}
    m.ok(Decommission("n2"))
    assert m.m.node("n2").admin == AdminState.OUT
    for command in (Heartbeat("n2", 1, 0, 0, 0.0), Undrain("n2"), Drain("n2"), SetWeight("n2", 1)):
        assert isinstance(m.run(command), NodeDecommissioned)
    assert isinstance(m.run(Join("2", "10.0.0.2:7000", 1, 0.0)), NodeDecommissioned)
    reused = m.ok(Join("new", "10.0.0.2:7000", 1, 0.0)).members[0]
    assert reused.id == "n4", "an out node's address can be reused, never its id"


def test_weights_and_domains_change_the_table() -> None:
    m = Map()
    three(m)
    epoch = m.m.epoch
    m.ok(SetFailureDomain("n1", "z2", "r1", "h1"))
    assert m.m.epoch == epoch + 1
    assert (m.m.node("n1").zone, m.m.node("n1").rack) == ("z2", "r1")
    m.ok(SetWeight("n3", 0.0))
    assert "n3" not in {n for owners in m.m.table.owners for n in owners}
    expected = build_table(m.m.placement_nodes(), 64, 2, m.m.epoch)
    assert m.m.table.owners == expected.owners


@pytest.mark.parametrize(
    "command",
    [
        Join("", "a:1", 1, 0.0),
        Join("x", "", 1, 0.0),
        Join("x", "a:1", -1, 0.0),
        Join("x", "a:1", 1, float("nan")),
        Join("x", "a:1", 1, 0.0, zone="a/b"),
        Join("x", "a:1", 1, 0.0, rack="r" * 65),
        Join("x", "a:1", 1, 0.0, weight=-1.0),
        Join("x", "a:1", 1, 0.0, weight=float("inf")),
        Join("x" * 256, "a:1", 1, 0.0),
        Heartbeat("n1", 0.0, -1, 0, 0.0),
        Heartbeat("n1", 0.0, 1, 0, float("nan")),
        Heartbeat("n1", float("inf"), 1, 0, 0.0),
        Tick(float("nan")),
        SetWeight("n1", float("nan")),
        SetFailureDomain("n1", "z", "r/1", "h"),
        Configure(0.0, 10.0),
        Configure(20.0, 10.0),
        Configure(1.0, float("inf")),
    ],
)
def test_bad_commands_are_typed_errors_and_change_nothing(command: ClusterCommand) -> None:
    m = Map()
    three(m)
    before = m.m.snapshot()
    assert isinstance(m.run(command), ClusterMapError)
    after = ClusterMap(CONFIG)
    after.restore(m.m.snapshot())
    after.applied_index = 3
    reference = ClusterMap(CONFIG)
    reference.restore(before)
    assert after.snapshot() == reference.snapshot()


def test_unknown_nodes_and_formats() -> None:
    m = Map()
    for command in (Heartbeat("n9", 0, 0, 0, 0.0), Drain("n9"), SetWeight("n9", 1.0)):
        assert isinstance(m.run(command), UnknownNode)
    with pytest.raises(UnknownNode):
        m.m.node("n9")
    assert isinstance(m.m.apply(99, b"\x03" + encode_command(Tick(1.0))[1:]), CommandFormatError)
    with pytest.raises(SnapshotFormatError):
        m.m.restore(b"\x02")
    with pytest.raises(ClusterMapError):
        ClusterMap(ClusterConfig(partition_count=100))
    with pytest.raises(ClusterMapError):
        ClusterMap(ClusterConfig(replica_count=0))


def test_configure_changes_timeouts() -> None:
    m = Map()
    three(m)
    m.ok(Configure(1.0, 2.0))
    assert m.m.config.down_after_s == 2.0
    assert {x.liveness for x in m.ok(Tick(2.0)).members} == {Liveness.DOWN}


def test_replicas_agree_and_snapshots_round_trip() -> None:
    commands: list[ClusterCommand] = [
        Join("a", "h:1", TIB_BYTES, 0.0, "z1"),
        Join("b", "h:2", 2 * TIB_BYTES, 0.0, "z2"),
        Join("c", "h:3", TIB_BYTES, 0.0, "z3"),
        Tick(40.0),
        Heartbeat("n1", 41.0, 1, 1, 0.1),
        Drain("n2"),
        Join("d", "h:4", TIB_BYTES, 42.0, "z1"),
        SetWeight("n9", 1.0),
    ]
    replicas = [Map(), Map()]
    results = []
    for r in replicas:
        results.append([repr(r.run(c)) for c in commands])
    assert results[0] == results[1]
    assert replicas[0].m.snapshot() == replicas[1].m.snapshot()
    copy = ClusterMap(CONFIG)
    copy.restore(replicas[0].m.snapshot())
    assert copy.snapshot() == replicas[0].m.snapshot()
    assert copy.table == replicas[0].m.table
    assert copy.previous_table == replicas[0].m.previous_table
    assert copy.members() == replicas[0].m.members()
    # The restored copy goes on exactly like the original.
    follow = Join("e", "h:5", TIB_BYTES, 50.0, "z2")
    assert repr(copy.apply(100, encode_command(follow))) == repr(
        replicas[0].m.apply(100, encode_command(follow))
    )
    assert copy.snapshot() == replicas[0].m.snapshot()


names = st.sampled_from(["a", "b", "c", "d", "e"])


class ClusterModel(RuleBasedStateMachine):
    """Model: node id -> (admin, last heartbeat, liveness); time only moves forward."""

    def __init__(self) -> None:
        super().__init__()
        self.t = Map()
        self.now = 0.0
        self.ids: dict[str, str] = {}
        self.model: dict[str, tuple[AdminState, float, Liveness]] = {}

    @initialize()
    def seed(self) -> None:
        self.join("a", 0)

    def node(self, data: st.DataObject) -> str | None:
        if not self.model:
            return None
        return data.draw(st.sampled_from(sorted(self.model)))

    @rule(name=names, zone=st.integers(0, 2))
    def join(self, name: str, zone: int) -> None:
        result = self.t.run(Join(name, f"{name}:1", TIB_BYTES, self.now, f"z{zone}"))
        known = self.ids.get(name)
        if known is not None and self.model[known][0] == AdminState.OUT:
            assert isinstance(result, NodeDecommissioned)
            return
        assert isinstance(result, Change)
        node_id = result.members[0].id
        if known is None:
            assert node_id == f"n{len(self.ids) + 1}"
            self.ids[name] = node_id
            self.model[node_id] = (AdminState.ACTIVE, self.now, Liveness.ALIVE)
        else:
            admin, last, _ = self.model[node_id]
            self.model[node_id] = (admin, max(last, self.now), Liveness.ALIVE)

    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        node_id = self.node(data)
        if node_id is None:
            return
        result = self.t.run(Heartbeat(node_id, self.now, TIB_BYTES, 0, 0.0))
        admin, last, _ = self.model[node_id]
        if admin == AdminState.OUT:
            assert isinstance(result, NodeDecommissioned)
        else:
            self.model[node_id] = (admin, max(last, self.now), Liveness.ALIVE)

    @rule(dt=st.sampled_from([0.0, 5.0, 11.0, 31.0]))
    def tick(self, dt: float) -> None:
        self.now += dt
        self.t.ok(Tick(self.now))
        for node_id, (admin, last, before) in self.model.items():
            if admin == AdminState.OUT:
                continue
            after = before
            if self.now - last >= CONFIG.down_after_s:
                after = Liveness.DOWN
            elif self.now - last >= CONFIG.suspect_after_s and before == Liveness.ALIVE:
                after = Liveness.SUSPECT
            self.model[node_id] = (admin, last, after)

    @rule(data=st.data(), op=st.sampled_from([Drain, Undrain, Decommission]))
    def operate(self, data: st.DataObject, op: type[Drain | Undrain | Decommission]) -> None:
        node_id = self.node(data)
        if node_id is None:
            return
        result = self.t.run(op(node_id))
        admin, last, liveness = self.model[node_id]
        if admin == AdminState.OUT:
            assert isinstance(result, NodeDecommissioned)
            return
        new = {
            Drain: AdminState.DRAINING,
            Undrain: AdminState.ACTIVE,
            Decommission: AdminState.OUT,
        }[op]
        self.model[node_id] = (new, last, liveness)

    @rule()
    def settle(self) -> None:
        self.t.ok(MovesDone(self.t.m.table.epoch))
        assert self.t.m.previous_table is None

    @invariant()
    def matches_model(self) -> None:
        m = self.t.m
        got = {x.id: (x.admin, x.last_heartbeat_s, x.liveness) for x in m.members()}
        assert got == self.model
        expected = build_table(m.placement_nodes(), CONFIG.partition_count, 2, m.epoch)
        assert m.table.owners == expected.owners
        assert m.table.epoch <= m.epoch
        copy = ClusterMap(CONFIG)
        copy.restore(m.snapshot())
        assert copy.snapshot() == m.snapshot()


ClusterModel.TestCase.settings = settings(max_examples=40, stateful_step_count=25)
TestClusterModel = ClusterModel.TestCase
