"""`cairn cert`: a cluster CA and node certificates for TLS between nodes."""

from pathlib import Path

import click

from cairn.wire import make_certificates


@click.command()
@click.option(
    "--dir",
    "directory",
    default="./cairn-certs",
    show_default=True,
    type=click.Path(file_okay=False),
)
@click.argument("node_ids", nargs=-1, required=True)
def cert(directory: str, node_ids: tuple[str, ...]) -> None:
    """Create (or reuse) the cluster CA in --dir and a certificate for each NODE_ID."""
    files = make_certificates(Path(directory), list(node_ids))
    for node_id, paths in files.items():
        click.echo(
            f"{node_id}: --set tls.enabled=true --set tls.ca_file={paths.ca_file} "
            f"--set tls.cert_file={paths.cert_file} --set tls.key_file={paths.key_file}"
        )
