"""`cairn up`: a whole local cluster in the foreground; Ctrl-C or SIGTERM stops it cleanly.

Every node is a voter of the metadata groups by default, so the cluster map, buckets and
the shard directory work as soon as `up` says the cluster is up: `LocalCluster.start`
waits until the root group has a leader, every node has joined and the directory is
bootstrapped. A signal that arrives while the nodes are still starting aborts the start,
which stops what was started; after that, signals end the foreground wait.
"""

import json
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from cairn.base.errors import ConfigError
from cairn.config import load_config, parse_assignment, set_path
from cairn.config.model import DEV_SECRET
from cairn.localcluster import LocalCluster
from cairn.localcluster.harness import ClusterError

EXIT_POLL_SECONDS = 1.0
"""How often the foreground loop looks for a node that exited on its own."""


class _Interrupted(Exception):
    """SIGTERM while starting: unwinds `LocalCluster.start`, which stops every node."""


@click.command()
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--data",
    "--data-dir",
    "data_dir",
    default="./cairn-local",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory for every node's data, cluster.json and the S3 credentials.",
)
@click.option(
    "--secret",
    envvar="CAIRN_CLUSTER_SECRET",
    default=DEV_SECRET,
    show_default=False,
    help="Cluster secret (default: a development secret; set one for real use).",
)
@click.option(
    "--raft/--no-raft",
    default=True,
    show_default=True,
    help="Make every node a voter of the metadata groups (cluster map, buckets, index).",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="FIELD=VALUE",
    help="A config field for every node (repeatable), e.g. --set index_split_keys=40000.",
)
def up(nodes: int, data_dir: str, secret: str, raft: bool, assignments: tuple[str, ...]) -> None:
    """Start NODES node processes on 127.0.0.1 and keep them running until Ctrl-C."""
    base = Path(data_dir).resolve()
    settings = _settings(assignments)
    cluster = LocalCluster(base, nodes, secret=secret, raft=raft, settings=settings)
    stop = threading.Event()

    def abort_start(_signum: int, _frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the stop that follows finish
        raise _Interrupted

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, abort_start)  # SIGINT already raises KeyboardInterrupt
    click.echo(f"starting {nodes} nodes under {base} ...", err=True)
    try:
        cluster.start()
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    except (_Interrupted, KeyboardInterrupt):
        click.echo("interrupted while starting; every node stopped", err=True)
        raise SystemExit(130) from None
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # Endpoints and credentials, as in cluster.json: this is a local development cluster,
    # and its user needs them to connect clients.
    described = cluster.describe()
    click.echo(json.dumps(described, indent=2))
    click.echo(_summary(described, base), err=True)
    click.echo("press Ctrl-C to stop", err=True)
    try:
        while not stop.wait(timeout=EXIT_POLL_SECONDS):
            for node_id, node in cluster.nodes.items():
                if not node.running:
                    click.echo(
                        f"{node_id} exited; log tail:\n{cluster.tail_log(node_id)}", err=True
                    )
                    stop.set()
    finally:
        click.echo("stopping ...", err=True)
        cluster.stop()
        click.echo("stopped", err=True)


def _settings(assignments: tuple[str, ...]) -> dict[str, str]:
    """`--set` flags as LocalCluster settings, checked here (field names and values) so a
    typo fails at once instead of in every node's log."""
    settings: dict[str, str] = {}
    overrides: dict[str, object] = {}
    for text in assignments:
        try:
            path, value = parse_assignment(text)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--set") from None
        set_path(overrides, path, value)
        settings[".".join(path)] = text.partition("=")[2]
    try:
        load_config(environ={}, overrides=overrides)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None
    return settings


def _summary(described: dict[str, object], base: Path) -> str:
    nodes = described["nodes"]
    assert isinstance(nodes, list)
    lines = [f"cluster is up: {len(nodes)} nodes"]
    for node in nodes:
        member = node.get("member_id") or "-"
        voter = f"raft {node['raft_id']}" if node.get("raft_id") else "not a voter"
        lines.append(
            f"  {node['node_id']} ({member}, {voter}, pid {node['pid']}): "
            f"rpc {node['rpc']}  admin {node['admin']}  s3 {node['s3']}"
        )
    lines.append(f"S3 endpoint {described['s3_endpoint']}  access key {described['access_key']}")
    lines.append(f"endpoints and credentials in {base / 'cluster.json'}")
    lines.append(f"try: cairn status --cluster {base}")
    return "\n".join(lines)
