"""`cairn ping` and `cairn status`: is a node (or the local cluster) alive?"""

import json
import time
from pathlib import Path
from typing import Any

import click
import msgspec

from cairn.base.errors import CairnError
from cairn.cli.output import print_table
from cairn.config.model import DEV_SECRET, parse_hostport
from cairn.localcluster.harness import health
from cairn.raft.kv_service import RaftStatus, RaftStatusReply
from cairn.runtime.event_loop import run
from cairn.wire import Ping, Pong, RpcConnection, RpcPool, derive_auth_key


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
    "--data-dir", default="./cairn-local", show_default=True, type=click.Path(file_okay=False)
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(data_dir: str, as_json: bool) -> None:
    """Health of every node of the local cluster described by DATA_DIR/cluster.json."""
    path = Path(data_dir) / "cluster.json"
    if not path.exists():
        raise click.ClickException(f"{path} not found: is a cluster running (`cairn up`)?")
    described = json.loads(path.read_text())
    raft = run(_raft_statuses(described))
    rows, result = [], []
    for node in described["nodes"]:
        answer = health(*parse_hostport(node["admin"].removeprefix("http://")))
        state = "down" if answer is None else ("ok" if answer[0] == 200 else "unhealthy")
        group = raft.get(node["rpc"])
        raft_text = (
            "-"
            if group is None
            else (
                f"{group.role} (leader {group.leader_id or '?'}, term {group.term}, "
                f"applied {group.applied_index})"
            )
        )
        rows.append([node["node_id"], state, node["rpc"], node["admin"], node["pid"], raft_text])
        entry = {"node_id": node["node_id"], "state": state, **(answer[1] if answer else {})}
        if group is not None:
            entry["raft"] = msgspec.to_builtins(group)
        result.append(entry)
    if as_json:
        click.echo(json.dumps({"nodes": result}))
    else:
        print_table("cairn nodes", ["node", "state", "rpc", "admin", "pid", "raft group 1"], rows)


async def _raft_statuses(described: dict[str, Any]) -> dict[str, RaftStatusReply]:
    """Raft status of group 1 on every node that hosts it (missing: down or no Raft)."""
    pool = RpcPool("cli", derive_auth_key(described["cluster_secret"]))
    found: dict[str, RaftStatusReply] = {}
    try:
        for node in described["nodes"]:
            try:
                reply, _ = await pool.call(node["rpc"], RaftStatus(1), RaftStatusReply, timeout=1)
            except CairnError:
                continue
            found[node["rpc"]] = reply
    finally:
        await pool.close()
    return found
