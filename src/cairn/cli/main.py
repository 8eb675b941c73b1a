"""Entry point of the `cairn` command; subcommands live in modules named for them."""

import click

from cairn import __version__
from cairn.cli.bench_cmd import bench
from cairn.cli.cert_cmd import cert
from cairn.cli.config_cmd import config
from cairn.cli.gc_cmd import gc
from cairn.cli.lock_cmd import lock, locks
from cairn.cli.node_cmd import node
from cairn.cli.object_cmds import OBJECT_COMMANDS
from cairn.cli.server_cmd import server
from cairn.cli.shard_cmd import shard
from cairn.cli.sim_cmd import sim
from cairn.cli.status_cmd import ping, status
from cairn.cli.up_cmd import up
from cairn.cli.user_cmd import user


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cairn")
def cli() -> None:
    """Cairn: a distributed object store with its own Raft and an S3 API."""


cli.add_command(config)
cli.add_command(server)
cli.add_command(up)
cli.add_command(status)
cli.add_command(node)
cli.add_command(shard)
cli.add_command(ping)
cli.add_command(cert)
cli.add_command(bench)
cli.add_command(sim)
cli.add_command(gc)
cli.add_command(user)
cli.add_command(lock)
cli.add_command(locks)
for _command in OBJECT_COMMANDS:
    cli.add_command(_command)


def main() -> None:
    cli()
