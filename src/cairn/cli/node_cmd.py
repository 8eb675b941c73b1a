"""`cairn node ...`: list the members of the cluster map and change them.

Each change is one cluster-map command (`Drain`, `Undrain`, `Decommission`, `SetWeight`,
`SetFailureDomain`) proposed to the root group through `MetaClient`; it is committed
when the command returns, and the new map epoch is printed. A node is named by its
member id (`n2`) or its name (`node-2`); the names are looked up in a fresh view of the
map first, so an unknown node is reported with the ones that exist, before anything is
proposed. Data moves (draining, new weights, new domains) happen in the background
afterwards; `cairn status` shows the progress.
"""

from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
import msgspec

from cairn.base.errors import CairnError, ConfigError, RemoteError
from cairn.cli.output import emit_json, print_table
from cairn.client.cluster_file import ClusterFile, load_cluster_file
from cairn.meta.clustermap import (
    Change,
    ClusterCommand,
    Decommission,
    Drain,
    Member,
    SetFailureDomain,
    SetWeight,
    Undrain,
)
from cairn.node.meta_client import MetaClient
from cairn.node.meta_messages import ClusterViewReply
from cairn.runtime.event_loop import run
from cairn.wire import RpcPool, derive_auth_key

T = TypeVar("T")
META_TIMEOUT_SECONDS = 10.0

cluster_option = click.option(
    "--cluster",
    "cluster_path",
    envvar="CAIRN_CLUSTER",
    default=None,
    type=click.Path(),
    help="cluster.json, or the directory holding it (default: ./cairn-local).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


class UnknownNodeName(CairnError):
    """No member of the cluster map has that id or name."""


def resolve_member(members: list[Member], name_or_id: str) -> Member:
    """The member whose id is `name_or_id`, else the one whose name is."""
    for member in members:
        if member.id == name_or_id:
            return member
    for member in members:
        if member.name == name_or_id:
            return member
    known = ", ".join(f"{m.id} ({m.name})" for m in members) or "none"
    raise UnknownNodeName(f"no node {name_or_id!r} in the cluster map; known: {known}")


def _with_meta(cluster_path: str | None, work: Callable[[MetaClient], Awaitable[T]]) -> T:
    """Run `work` with a MetaClient for the cluster; every expected failure becomes a
    one-line error (ClickException), never a traceback."""
    try:
        cluster: ClusterFile = load_cluster_file(cluster_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None

    async def go() -> T:
        pool = RpcPool("cli-node", derive_auth_key(cluster.secret))
        try:
            meta = MetaClient(pool, cluster.meta_addresses, timeout=META_TIMEOUT_SECONDS)
            return await work(meta)
        finally:
            await pool.close()

    try:
        return run(go())
    except RemoteError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    except CairnError as exc:
        raise click.ClickException(str(exc)) from None


def _member_row(member: Member, partitions: dict[str, int]) -> list[object]:
    domain = "/".join(part or "-" for part in (member.zone, member.rack, member.host))
    return [
        member.id,
        member.name,
        member.address,
        str(member.admin),
        str(member.liveness),
        f"{member.weight:g}",
        domain,
        partitions.get(member.id, 0),
    ]


def _partition_counts(view: ClusterViewReply) -> dict[str, int]:
    counts: dict[str, int] = {}
    for owners in view.owners or []:
        for owner in owners:
            counts[owner] = counts.get(owner, 0) + 1
    return counts


@click.group()
def node() -> None:
    """List the nodes of the cluster map; drain, weigh, place or retire one."""


@node.command("list")
@cluster_option
@json_option
def list_nodes(cluster_path: str | None, as_json: bool) -> None:
    """Every member of the cluster map with its state, weight and partitions."""
    view = _with_meta(cluster_path, lambda meta: meta.cluster_view())
    if as_json:
        emit_json(
            {
                "epoch": view.epoch,
                "table_epoch": view.table_epoch,
                "members": msgspec.to_builtins(view.members),
                "partitions": _partition_counts(view),
            }
        )
        return
    partitions = _partition_counts(view)
    columns = ["id", "name", "rpc", "admin", "liveness", "weight", "zone/rack/host"]
    print_table(
        f"cluster map (epoch {view.epoch})",
        [*columns, "partitions"],
        [_member_row(m, partitions) for m in view.members],
    )


def _operate(
    cluster_path: str | None,
    name_or_id: str,
    make: Callable[[Member], ClusterCommand],
    as_json: bool,
) -> None:
    async def work(meta: MetaClient) -> tuple[Member, Change]:
        view = await meta.cluster_view()
        member = resolve_member(view.members, name_or_id)
        return member, await meta.operate(make(member))

    member, change = _with_meta(cluster_path, work)
    after = next((m for m in change.members if m.id == member.id), member)
    if as_json:
        emit_json(
            {
                "member": msgspec.to_builtins(after),
                "epoch": change.epoch,
                "table_epoch": change.table_epoch,
            }
        )
        return
    domain = "/".join(part or "-" for part in (after.zone, after.rack, after.host))
    click.echo(
        f"{after.name} ({after.id}): {after.admin}, {after.liveness}, weight "
        f"{after.weight:g}, domain {domain}; cluster map epoch {change.epoch} "
        f"(partition table epoch {change.table_epoch})"
    )


@node.command()
@click.argument("name_or_id")
@cluster_option
@json_option
def drain(name_or_id: str, cluster_path: str | None, as_json: bool) -> None:
    """Move every partition off a node, keeping it serving until the moves are done."""
    _operate(cluster_path, name_or_id, lambda m: Drain(m.id), as_json)


@node.command()
@click.argument("name_or_id")
@cluster_option
@json_option
def undrain(name_or_id: str, cluster_path: str | None, as_json: bool) -> None:
    """Make a draining node active again."""
    _operate(cluster_path, name_or_id, lambda m: Undrain(m.id), as_json)


@node.command()
@click.argument("name_or_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@cluster_option
@json_option
def decommission(name_or_id: str, yes: bool, cluster_path: str | None, as_json: bool) -> None:
    """Retire a node for good (`out`): it may never rejoin under that name."""
    if not yes:
        click.confirm(f"decommission {name_or_id} for good?", abort=True, err=True)
    _operate(cluster_path, name_or_id, lambda m: Decommission(m.id), as_json)


@node.command()
@click.argument("name_or_id")
@click.argument("weight", type=click.FloatRange(min=0.0))
@cluster_option
@json_option
def weight(name_or_id: str, weight: float, cluster_path: str | None, as_json: bool) -> None:
    """Set a node's placement weight (default: its capacity in TiB)."""
    _operate(cluster_path, name_or_id, lambda m: SetWeight(m.id, weight), as_json)


@node.command()
@click.argument("name_or_id")
@click.option("--zone", default=None, help="Zone (default: keep the current one).")
@click.option("--rack", default=None, help="Rack (default: keep the current one).")
@click.option("--host", default=None, help="Host (default: keep the current one).")
@cluster_option
@json_option
def domain(
    name_or_id: str,
    zone: str | None,
    rack: str | None,
    host: str | None,
    cluster_path: str | None,
    as_json: bool,
) -> None:
    """Set a node's failure domains; replicas of a partition spread across them."""
    if zone is None and rack is None and host is None:
        raise click.UsageError("give at least one of --zone, --rack, --host")

    def command(m: Member) -> ClusterCommand:
        return SetFailureDomain(
            m.id,
            m.zone if zone is None else zone,
            m.rack if rack is None else rack,
            m.host if host is None else host,
        )

    _operate(cluster_path, name_or_id, command, as_json)
