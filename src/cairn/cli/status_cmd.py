"""`cairn ping` and `cairn status`: is a node alive, and how is the whole cluster?

`status` reads the cluster file (`--cluster` / `$CAIRN_CLUSTER`) and prints what
`cairn.client.status_probe` gathers: nodes, Raft leaders and terms of every metadata
group, partition balance, capacity, dedup ratio, and rebalance/repair progress. Parts
that do not answer print as `down` or `n/a`; the command itself does not fail for them,
since it is the tool an operator reaches for when something is down.
"""

import time

import click
import msgspec

from cairn.base.errors import CairnError, ConfigError
from cairn.cli.output import emit_json, print_table
from cairn.client.cluster_file import load_cluster_file
from cairn.client.status_probe import ClusterStatus, GroupStatus, RepairSummary, probe_cluster
from cairn.config.model import DEV_SECRET, parse_hostport
from cairn.runtime.event_loop import run
from cairn.wire import Ping, Pong, RpcConnection, derive_auth_key

BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


@click.command()
@click.argument("address")
@click.option("--secret", envvar="CAIRN_CLUSTER_SECRET", default=DEV_SECRET, show_default=False)
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--timeout", default=5.0, show_default=True, type=float)
def ping(address: str, secret: str, count: int, timeout: float) -> None:
    """Authenticated RPC ping of a node at HOST:PORT."""
    try:
        host, port = parse_hostport(address)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="ADDRESS") from None

    async def go() -> None:
        connection = await RpcConnection.open(
            host,
            port,
            node_id="cli",
            auth_key=derive_auth_key(secret),
            connect_timeout=timeout,
        )
        try:
            for _ in range(count):
                started = time.perf_counter()
                reply, _ = await connection.call(Ping(), Pong, timeout=timeout)
                elapsed_ms = (time.perf_counter() - started) * 1000
                click.echo(f"pong from {reply.node_id} in {elapsed_ms:.3f} ms")
        finally:
            connection.close()

    try:
        run(go())
    except CairnError as exc:
        raise click.ClickException(f"{address}: {exc}") from None
    except (TimeoutError, OSError) as exc:
        raise click.ClickException(f"{address}: {exc}") from None


@click.command()
@click.option(
    "--cluster",
    "--data-dir",
    "cluster_path",
    envvar="CAIRN_CLUSTER",
    default=None,
    type=click.Path(),
    help="cluster.json, or the directory holding it (default: ./cairn-local).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (last line).")
def status(cluster_path: str | None, as_json: bool) -> None:
    """Nodes, Raft leaders, partition balance, capacity and dedup of a running cluster."""
    try:
        cluster = load_cluster_file(cluster_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    result = run(probe_cluster(cluster))
    if as_json:
        emit_json(msgspec.to_builtins(result))
        return
    _print_nodes(result)
    _print_groups(result.groups)
    _print_summary(result)
    for error in result.errors:
        click.echo(f"warning: {error}", err=True)


def _print_nodes(result: ClusterStatus) -> None:
    rows = [
        [
            n.name,
            n.member_id or "-",
            n.address,
            n.health,
            n.admin or "-",
            n.liveness or "-",
            _bytes(n.capacity_bytes) if n.member_id else "-",
            _bytes(n.used_bytes) if n.member_id else "-",
            f"{n.load:.2f}" if n.member_id else "-",
            f"{n.weight:g}" if n.member_id else "-",
            n.partitions if n.member_id else "-",
            n.raft_id or "-",
            n.pid or "-",
        ]
        for n in result.nodes
    ]
    columns = ["node", "member", "rpc", "health", "admin", "liveness", "capacity", "used"]
    columns += ["load", "weight", "partitions", "raft id", "pid"]
    print_table("cairn nodes", columns, rows)


def _print_groups(groups: list[GroupStatus]) -> None:
    rows = []
    for group in groups:
        roles = ", ".join(f"{r.node} {r.role}" for r in group.replicas)
        applied = [r.applied_index for r in group.replicas]
        rows.append(
            [
                f"{group.kind} {group.group_id}",
                group.leader or "none (election?)",
                group.term or "-",
                f"{min(applied)}..{max(applied)}" if applied else "-",
                roles or "-",
                ", ".join(group.unreachable) or "-",
            ]
        )
    columns = ["group", "leader", "term", "applied", "replicas", "unreachable"]
    print_table("metadata Raft groups", columns, rows)


def _print_summary(result: ClusterStatus) -> None:
    storage = result.storage
    balance = result.balance
    rows: list[list[object]] = [
        ["map epoch", _or_na(result.map_epoch)],
        ["partition table epoch", _or_na(result.table_epoch)],
        ["shard directory", _directory_text(result.directory_bootstrapped)],
    ]
    if balance is not None:
        rows += [
            ["partitions x replicas", f"{balance.partition_count} x {balance.replica_count}"],
            [
                "partitions per active node",
                f"min {balance.min}  max {balance.max}  mean {balance.mean:.1f}",
            ],
            ["under-replicated partitions", balance.under_replicated],
        ]
    else:
        rows.append(["partition balance", "n/a"])
    rows += [
        ["capacity", _bytes_or_na(storage.capacity_bytes)],
        ["used", _bytes_or_na(storage.used_bytes)],
        ["objects", _or_na(storage.objects)],
        ["logical bytes", _bytes_or_na(storage.logical_bytes)],
        ["stored chunk bytes (all replicas)", _bytes_or_na(storage.stored_bytes)],
        [
            "dedup ratio",
            "n/a" if storage.dedup_ratio is None else f"{storage.dedup_ratio:.2f}x",
        ],
        [
            "rebalance",
            "n/a"
            if result.rebalance_moving is None
            else (
                f"{result.rebalance_moving} partitions moving"
                if result.rebalance_moving
                else "settled"
            ),
        ],
        ["repair", _repair_text(result.repair)],
    ]
    print_table("cluster", ["", "value"], rows)
    if result.repair is not None:
        for node, error in sorted(result.repair.last_errors.items()):
            click.echo(f"repair on {node}: {error}", err=True)


def _repair_text(repair: RepairSummary | None) -> str:
    if repair is None:
        return "n/a"
    return (
        f"synced {repair.nodes_synced}/{repair.nodes_reporting} nodes"
        f" ({repair.nodes_asked - repair.nodes_reporting} silent), "
        f"{repair.passes_running} passes running; "
        f"partitions {repair.partitions_done}/{repair.partitions_total}; "
        f"missing {repair.chunks_missing} chunks ({_bytes(repair.bytes_remaining)}); "
        f"copied {repair.chunks_copied} ({_bytes(repair.bytes_copied)}), "
        f"pushed {repair.chunks_pushed}, dropped {repair.chunks_dropped}"
    )


def _directory_text(bootstrapped: bool | None) -> str:
    if bootstrapped is None:
        return "n/a"
    return "bootstrapped" if bootstrapped else "not yet"


def _or_na(value: object) -> object:
    return "n/a" if value is None else value


def _bytes_or_na(count: int | None) -> str:
    return "n/a" if count is None else _bytes(count)


def _bytes(count: int) -> str:
    size = float(count)
    for unit in BYTE_UNITS:
        if abs(size) < 1024 or unit == BYTE_UNITS[-1]:
            return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
