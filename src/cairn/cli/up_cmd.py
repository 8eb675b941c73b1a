"""`cairn up`: a whole local cluster in the foreground; Ctrl-C stops it cleanly."""

import json
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from cairn.config.model import DEV_SECRET
from cairn.localcluster import LocalCluster
from cairn.localcluster.harness import ClusterError


@click.command()
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--data-dir", default="./cairn-local", show_default=True, type=click.Path(file_okay=False)
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
    help="Run the replicated KV Raft group on every node.",
)
def up(nodes: int, data_dir: str, secret: str, raft: bool) -> None:
    """Start NODES node processes on 127.0.0.1 and keep them running until Ctrl-C."""
    base = Path(data_dir).resolve()
    cluster = LocalCluster(base, nodes, secret=secret, raft=raft)
    click.echo(f"starting {nodes} nodes under {base} ...", err=True)
    try:
        cluster.start()
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # Endpoints and credentials, as in cluster.json: this is a local development cluster,
    # and its user needs the secret to connect clients.
    click.echo(json.dumps(cluster.describe(), indent=2))
    click.echo(f"cluster is up; endpoints and credentials in {base / 'cluster.json'}", err=True)
    click.echo("press Ctrl-C to stop", err=True)
    try:
        while not stop.wait(timeout=1.0):
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
