"""One seeded simulation of a Raft KV cluster under faults, and its checks.

A run has two phases. In the fault phase clients issue put/get/cas/delete while a seeded
schedule partitions the network (symmetric and one-way), drops, duplicates and delays
messages, crashes nodes (losing whatever was not fsynced) and restarts them, changes the
membership (add learner, promote, remove), transfers leadership and compacts logs. Then
everything heals: every node is up, the network is clean. The run must then elect a leader
and commit a write within `liveness_window_us` (liveness). Safety is checked throughout
(`raft_checkers`) and the client history at the end (`linearizability`). Everything random
comes from one `random.Random(seed)`, so a seed replays exactly; `trace_hash` proves it.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from cairn.raft.kv import Cas, Command, Delete, Get, Put, Request, Result, encode_request
from cairn.raft.types import (
    ConfChange,
    ConfChangeType,
    NotLeader,
    RaftError,
    ReadState,
)
from cairn.sim.linearizability import (
    INFINITY,
    UNKNOWN,
    Operation,
    OpKind,
    Output,
    Verdict,
    check_history,
)
from cairn.sim.raft_cluster import RaftCluster

MS = 1_000


@dataclass(frozen=True)
class SimParams:
    fault_phase_us: int = 3_000 * MS
    liveness_window_us: int = 2_000 * MS
    clients: int = 3
    keys: int = 3
    client_timeout_us: int = 250 * MS
    max_events: int = 2_000_000
    faults: bool = True
    membership: bool = True


@dataclass
class RunResult:
    seed: int
    ops_checked: int = 0
    ops_indeterminate: int = 0
    violations: list[str] = field(default_factory=list)
    unknown_keys: int = 0
    trace_hash: str = ""
    events: int = 0
    elections: int = 0
    committed_entries: int = 0
    counters: dict[str, int] = field(default_factory=dict)


class _Client:
    """A closed-loop client: one operation at a time, a deadline per operation."""

    def __init__(self, run: _Run, client_id: int) -> None:
        self.run = run
        self.id = client_id
        self.seq = 0
        self.target = run.cluster.rng.choice(sorted(run.cluster.nodes))
        self.op_serial = 0
        self.active = True

    def start(self, delay_us: int) -> None:
        self.run.cluster.events.after(delay_us, self._issue)

    def _issue(self) -> None:
        run = self.run
        if not self.active or run.cluster.events.now_us >= run.stop_clients_us:
            return
        rng = run.cluster.rng
        self.seq += 1
        op_id = self.id * 1_000_000 + self.seq
        key = b"k%d" % rng.randrange(run.params.keys)
        roll = rng.random()
        command: Command
        read_mode = ""
        if roll < 0.35:
            command = Put(key, b"c%d-%d" % (self.id, self.seq))
        elif roll < 0.70:
            command = Get(key)
            read_mode = rng.choice(["log", "read_index", "lease"])
        elif roll < 0.95:
            written = run.written.get(key, [])
            expected = rng.choice(written[-3:]) if written and rng.random() < 0.8 else None
            command = Cas(key, expected, b"c%d-%d" % (self.id, self.seq))
        else:
            command = Delete(key)
        pending = _Pending(self, op_id, command, read_mode, run.cluster.events.now_us)
        run.cluster.events.after(run.params.client_timeout_us, pending.timeout)
        pending.attempt()

    def next_op(self) -> None:
        delay = self.run.cluster.rng.randint(0, 20 * MS)
        self.run.cluster.events.after(delay, self._issue)


class _Pending:
    def __init__(self, client: _Client, op_id: int, command: Command, read_mode: str, call_us: int):
        self.client = client
        self.run = client.run
        self.op_id = op_id
        self.command = command
        self.read_mode = read_mode
        self.call_us = call_us
        self.proposed = False
        self.done = False

    def attempt(self) -> None:
        if self.done:
            return
        cluster = self.run.cluster
        node = cluster.nodes[self.client.target]
        if not node.up or node.core is None:
            self.client.target = cluster.rng.choice(sorted(cluster.nodes))
            cluster.events.after(5 * MS, self.attempt)
            return
        core = node.core
        try:
            if self.read_mode in ("read_index", "lease"):
                ctx = b"%d" % self.op_id
                core.read_index(ctx, lease=self.read_mode == "lease")
                node.read_waiters[ctx] = self._on_read
            else:
                core.propose(encode_request(Request(self.op_id, self.command)))
                self.proposed = True
                node.waiters[self.op_id] = self._on_result
        except NotLeader as exc:
            if exc.leader_id and exc.leader_id in cluster.nodes:
                self.client.target = exc.leader_id
                delay = 1 * MS
            else:
                self.client.target = cluster.rng.choice(sorted(cluster.nodes))
                delay = 10 * MS
            cluster.events.after(delay, self.attempt)
            return
        except RaftError:
            cluster.events.after(10 * MS, self.attempt)
            return
        node.pump()

    def _on_read(self, read: ReadState) -> None:
        node = self.run.cluster.nodes[self.client.target]
        assert isinstance(self.command, Get)
        self._on_result(Result(True, node.kv.read(self.command.key)))

    def _on_result(self, result: Result) -> None:
        if self.done:
            return
        self.done = True
        self.run.record(self, result, self.run.cluster.events.now_us)
        self.client.next_op()

    def timeout(self) -> None:
        if self.done:
            return
        self.done = True
        if self.proposed:
            self.run.record(self, None, INFINITY)
        self.client.next_op()


class _Run:
    def __init__(self, seed: int, params: SimParams) -> None:
        self.seed = seed
        self.params = params
        shape = random.Random(seed ^ 0x5EED)
        n_voters = shape.choice([3, 3, 5])
        n_spares = shape.choice([0, 1, 2]) if params.membership else 0
        voters = list(range(1, n_voters + 1))
        spares = list(range(n_voters + 1, n_voters + 1 + n_spares))
        # Vary the limits per seed (BUGGIFY-style) so rare paths run: one-entry appends, a
        # window of one, frequent compaction, many small snapshot chunks, slow disks.
        self.cluster = RaftCluster(
            seed,
            voters,
            spares,
            max_drift=shape.choice([0.0, 0.01, 0.02]),
            fsync_max_us=shape.choice([1_000, 3_000, 10_000]),
            compact_every_entries=shape.choice([0, 10, 40, 100]),
            snapshot_chunk_bytes=shape.choice([64, 256, 4096]),
            max_append_entries=shape.choice([1, 4, 16, 64]),
            max_inflight_appends=shape.choice([1, 2, 4, 16]),
            leader_pipelines=shape.choice([False, True, True]),
        )
        self.spares = spares
        self.history: list[Operation] = []
        self.written: dict[bytes, list[bytes]] = {}
        self.stop_clients_us = params.fault_phase_us
        self.result = RunResult(seed)
        self.crashed: set[int] = set()
        self.removed: set[int] = set()

    def record(self, pending: _Pending, result: Result | None, ret_us: int) -> None:
        command = pending.command
        cluster = self.cluster
        cluster.trace(f"op{pending.op_id}:{ret_us}:{result!r}")
        key = command.key
        if isinstance(command, Put):
            op = Operation(
                pending.client.id,
                key,
                OpKind.PUT,
                pending.call_us,
                ret_us,
                command.value,
                None,
                None,
            )
            self.written.setdefault(key, []).append(command.value)
        elif isinstance(command, Get):
            out = UNKNOWN if result is None else result.value
            op = Operation(pending.client.id, key, OpKind.GET, pending.call_us, ret_us, output=out)
        elif isinstance(command, Delete):
            deleted: Output = UNKNOWN if result is None else result.ok
            op = Operation(
                pending.client.id, key, OpKind.DELETE, pending.call_us, ret_us, output=deleted
            )
        else:
            swapped: Output = UNKNOWN if result is None else result.ok
            if command.new is not None:
                self.written.setdefault(key, []).append(command.new)
            op = Operation(
                pending.client.id,
                key,
                OpKind.CAS,
                pending.call_us,
                ret_us,
                command.new,
                command.expected,
                swapped,
            )
        self.history.append(op)

    # -- the fault schedule -----------------------------------------------------------------

    def schedule_faults(self) -> None:
        cluster = self.cluster
        rng = cluster.rng
        t = 0
        while True:
            t += rng.randint(30 * MS, 150 * MS)
            if t >= self.params.fault_phase_us:
                break
            cluster.events.at(t, self._fault)

    def _fault(self) -> None:
        cluster = self.cluster
        rng = cluster.rng
        net = cluster.network
        ids = set(cluster.nodes)
        roll = rng.random()
        if roll < 0.12:
            side = {n for n in ids if rng.random() < 0.5}
            net.partition(side, ids - side)
            cluster.trace(f"partition{sorted(side)}")
        elif roll < 0.20:
            a, b = rng.sample(sorted(ids), 2)
            net.partition({a}, {b}, one_way=True)
            cluster.trace(f"oneway{a}>{b}")
        elif roll < 0.27:
            leader = cluster.leader()
            if leader is not None:
                net.isolate(leader.id, ids)
                cluster.trace(f"isolate{leader.id}")
        elif roll < 0.40:
            net.heal()
            cluster.trace("heal")
        elif roll < 0.52:
            up = [n for n in cluster.up_nodes()]
            if up:
                node = rng.choice(up)
                node.crash()
                self.crashed.add(node.id)
                cluster.trace(f"crash{node.id}")
                down_for = rng.randint(20 * MS, 300 * MS)
                cluster.events.after(down_for, lambda: self._restart(node.id))
        elif roll < 0.62:
            faults = net.faults
            faults.drop_probability = rng.choice([0.0, 0.0, 0.02, 0.1, 0.25])
            faults.duplicate_probability = rng.choice([0.0, 0.02, 0.1])
            faults.long_delay_probability = rng.choice([0.0, 0.01, 0.05])
            cluster.trace(f"net{faults.drop_probability}")
        elif roll < 0.72:
            leader = cluster.leader()
            if leader is not None and leader.core is not None:
                voters = sorted(leader.core.conf.voters - {leader.id})
                if voters:
                    target = rng.choice(voters)
                    try:
                        leader.core.transfer_leadership(target)
                        cluster.trace(f"transfer{leader.id}>{target}")
                        leader.pump()
                    except RaftError:
                        pass
        elif roll < 0.85 and self.params.membership:
            self._membership_change()

    def _membership_change(self) -> None:
        cluster = self.cluster
        rng = cluster.rng
        voters, learners = cluster.members()
        if not voters:
            return
        ever = voters | learners
        candidates = [s for s in self.spares if s not in ever and s not in self.removed]
        if candidates and rng.random() < 0.5:
            change = ConfChange(ConfChangeType.ADD_LEARNER, rng.choice(candidates))
        elif learners:
            change = ConfChange(ConfChangeType.PROMOTE_LEARNER, rng.choice(sorted(learners)))
        elif len(voters) > 3:
            change = ConfChange(ConfChangeType.REMOVE_NODE, rng.choice(sorted(voters)))
        else:
            return
        if cluster.propose_conf_change(change) and change.type == ConfChangeType.REMOVE_NODE:
            self.removed.add(change.node_id)

    def _restart(self, node_id: int) -> None:
        node = self.cluster.nodes[node_id]
        if not node.up:
            node.start()
            self.cluster.trace(f"restart{node_id}")

    # -- phases -----------------------------------------------------------------------------

    def run(self) -> RunResult:
        params = self.params
        cluster = self.cluster
        clients = [_Client(self, i + 1) for i in range(params.clients)]
        for client in clients:
            client.start(cluster.rng.randint(0, 50 * MS))
        if params.faults:
            self.schedule_faults()
        cluster.events.run_until(params.fault_phase_us, params.max_events)
        self._heal()
        self._check_liveness()
        self._final_checks()
        return self.result

    def _heal(self) -> None:
        cluster = self.cluster
        cluster.network.heal()
        faults = cluster.network.faults
        faults.drop_probability = 0.0
        faults.duplicate_probability = 0.0
        faults.long_delay_probability = 0.0
        for node in cluster.nodes.values():
            if not node.up:
                node.start()
        cluster.trace("heal-all")

    def _check_liveness(self) -> None:
        """After the faults heal a leader must emerge and commit a write."""
        cluster = self.cluster
        params = self.params
        # Let in-flight client operations time out, then write through the leader.
        deadline = cluster.events.now_us + params.liveness_window_us
        committed = {"done": False}
        op_id = 999_000_000

        def try_write() -> None:
            if committed["done"] or cluster.events.now_us >= deadline:
                return
            leader = cluster.leader()
            if leader is not None and leader.core is not None:
                try:
                    leader.core.propose(encode_request(Request(op_id, Put(b"liveness", b"ok"))))
                    leader.waiters[op_id] = lambda _result: committed.__setitem__("done", True)
                    leader.pump()
                    return
                except RaftError:
                    pass
            cluster.events.after(20 * MS, try_write)

        def retry_if_lost() -> None:
            if not committed["done"] and cluster.events.now_us < deadline:
                try_write()
                cluster.events.after(300 * MS, retry_if_lost)

        cluster.events.after(10 * MS, retry_if_lost)
        step_us = 50 * MS
        while not committed["done"] and cluster.events.now_us < deadline:
            cluster.events.run_until(cluster.events.now_us + step_us, params.max_events)
        if not committed["done"]:
            roles = {n.id: (n.core.role.name, n.core.term) for n in cluster.up_nodes() if n.core}
            self.result.violations.append(f"liveness: no write committed after healing ({roles})")
        # Let clients' outstanding operations finish or time out.
        cluster.events.run_until(
            cluster.events.now_us + params.client_timeout_us + MS, params.max_events
        )

    def _check_convergence(self) -> None:
        """Replicas that applied the same prefix hold the same state."""
        states: dict[int, tuple[int, dict[bytes, bytes]]] = {}
        for node in self.cluster.up_nodes():
            index = node.kv.applied_index
            seen = states.setdefault(index, (node.id, node.kv.data))
            if seen[1] != node.kv.data:
                self.result.violations.append(
                    f"convergence: nodes {seen[0]} and {node.id} applied up to {index} "
                    "but hold different state"
                )

    def _final_checks(self) -> None:
        cluster = self.cluster
        checker = cluster.checker
        checker.check_log_matching(cluster.cores())
        self._check_convergence()
        result = self.result
        result.violations.extend(checker.violations)
        verdicts = check_history(self.history)
        for key, verdict in verdicts.items():
            if verdict == Verdict.VIOLATION:
                result.violations.append(
                    f"linearizability: key {key!r} history is not linearizable"
                )
            elif verdict == Verdict.UNKNOWN:
                result.unknown_keys += 1
        result.ops_checked = len(self.history)
        result.ops_indeterminate = sum(1 for op in self.history if op.ret == INFINITY)
        result.events = cluster.events.events_run
        result.elections = len(checker.leaders)
        result.committed_entries = len(checker.committed)
        result.trace_hash = cluster.trace_hash()
        totals = Counter(cluster.counters)
        for node in cluster.up_nodes():
            if node.core is not None:
                totals.update(node.core.counters)
        result.counters = dict(totals)


def run_seed(seed: int, params: SimParams | None = None) -> RunResult:
    return _Run(seed, params or SimParams()).run()
