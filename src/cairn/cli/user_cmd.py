"""`cairn user ...`: S3 users and their access keys, kept in the root group.

Each command is one proposal to (or one read of) the root group's users part
(`meta.users`) through a `UserClient`, using the cluster secret of cluster.json: holding
that file is what makes one an administrator. `key-create` prints the secret key once; it
is stored only sealed under the cluster secret and cannot be listed again. Buckets a user
makes through S3 are owned by that user; `--admin` users may use every bucket.
"""

import click

from cairn.base.errors import ConfigError
from cairn.cli.node_cmd import _with_meta, cluster_option, json_option
from cairn.cli.output import emit_json, print_table
from cairn.client.cluster_file import load_cluster_file
from cairn.node.meta_client import MetaClient
from cairn.node.user_client import UserClient


def _cluster_secret(cluster_path: str | None) -> str:
    try:
        return load_cluster_file(cluster_path).secret
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def user() -> None:
    """S3 users and access keys: create, list, delete."""


@user.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May use every bucket, not only its own.")
@click.option("--no-key", is_flag=True, help="Do not make an access key now.")
@cluster_option
@json_option
def create(name: str, admin: bool, no_key: bool, cluster_path: str | None, as_json: bool) -> None:
    """Make a user (and, unless --no-key, its first access key)."""
    secret = _cluster_secret(cluster_path)

    async def work(meta: MetaClient) -> dict[str, object]:
        users = UserClient(meta, secret)
        made = await users.create_user(name, admin)
        result: dict[str, object] = {"user": made.name, "admin": made.admin}
        if not no_key:
            key, secret_key = await users.create_key(made.name)
            result.update(access_key=key.access_key, secret_key=secret_key)
        return result

    result = _with_meta(cluster_path, work)
    if as_json:
        emit_json(result)
        return
    click.echo(f"user {result['user']} created" + (" (admin)" if result["admin"] else ""))
    if "access_key" in result:
        click.echo(f"access key: {result['access_key']}")
        click.echo(f"secret key: {result['secret_key']}  (shown once)")


@user.command("list")
@cluster_option
@json_option
def list_users(cluster_path: str | None, as_json: bool) -> None:
    """Every user with its access key ids (never the secrets)."""
    secret = _cluster_secret(cluster_path)
    reply = _with_meta(cluster_path, lambda meta: UserClient(meta, secret).list())
    keys: dict[str, list[str]] = {}
    for key in reply.keys:
        keys.setdefault(key.user, []).append(key.access_key)
    rows = [
        {
            "user": u.name,
            "admin": u.admin,
            "created_s": u.created_s,
            "access_keys": keys.get(u.name, []),
        }
        for u in reply.users
    ]
    if as_json:
        emit_json({"users": rows})
        return
    print_table(
        "S3 users",
        ["user", "admin", "access keys"],
        [[r["user"], "yes" if r["admin"] else "", ", ".join(r["access_keys"])] for r in rows],  # type: ignore[arg-type]
    )


@user.command("delete")
@click.argument("name")
@cluster_option
@json_option
def delete(name: str, cluster_path: str | None, as_json: bool) -> None:
    """Delete a user and its keys (its buckets stay, owned by its name)."""
    secret = _cluster_secret(cluster_path)
    result = _with_meta(cluster_path, lambda meta: UserClient(meta, secret).delete_user(name))
    if as_json:
        emit_json({"user": result.name, "keys_deleted": result.keys_deleted})
        return
    click.echo(f"user {result.name} deleted with {result.keys_deleted} access key(s)")


@user.command("key-create")
@click.argument("name")
@cluster_option
@json_option
def key_create(name: str, cluster_path: str | None, as_json: bool) -> None:
    """Add an access key to a user; prints the secret key once."""
    secret = _cluster_secret(cluster_path)
    key, secret_key = _with_meta(
        cluster_path, lambda meta: UserClient(meta, secret).create_key(name)
    )
    if as_json:
        emit_json({"user": key.user, "access_key": key.access_key, "secret_key": secret_key})
        return
    click.echo(f"access key: {key.access_key}")
    click.echo(f"secret key: {secret_key}  (shown once)")


@user.command("key-delete")
@click.argument("access_key")
@cluster_option
@json_option
def key_delete(access_key: str, cluster_path: str | None, as_json: bool) -> None:
    """Delete an access key (gateways stop accepting it within a few seconds)."""
    secret = _cluster_secret(cluster_path)
    key = _with_meta(cluster_path, lambda meta: UserClient(meta, secret).delete_key(access_key))
    if as_json:
        emit_json({"user": key.user, "access_key": key.access_key})
        return
    click.echo(f"access key {key.access_key} of {key.user} deleted")
