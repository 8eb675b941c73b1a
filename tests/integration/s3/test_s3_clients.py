"""Other S3 clients against a real cluster, unchanged but for the endpoint and path-style
addressing: the aws cli (`s3 cp/ls/rm`, `s3api`), s3cmd, rclone (a tree of 2,000 files,
compared byte for byte), minio-py and s3fs/fsspec. A tool that is not installed fails
the test with the reason (scripts/bootstrap installs awscli, s3cmd and rclone)."""

import hashlib
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import S3Cluster

pytestmark = pytest.mark.xdist_group("processes")

BODY = os.urandom(2 * 1024 * 1024 + 77)
TOOL_TIMEOUT_S = 120
TREE_FILES = 2000


def tool(name: str) -> str:
    found = shutil.which(name, path="/usr/bin:/bin") or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: scripts/bootstrap installs the Debian package")
    return found


def run(argv: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, env=env, check=False
    )
    assert done.returncode == 0, f"{argv[:3]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def aws_env(s3: S3Cluster, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=s3.access_key,
        AWS_SECRET_ACCESS_KEY=s3.secret_key,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(home / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-credentials"),
        HOME=str(home),
    )
    (home / "aws-config").write_text("[default]\ns3 =\n  addressing_style = path\n")
    return env


def test_aws_cli(s3: S3Cluster, tmp_path: Path) -> None:
    aws = tool("aws")
    env = aws_env(s3, tmp_path)
    endpoint = ["--endpoint-url", s3.endpoint()]
    source = tmp_path / "in.bin"
    source.write_bytes(BODY)
    run([aws, *endpoint, "s3", "mb", "s3://awscli"], env)
    run([aws, *endpoint, "s3", "cp", str(source), "s3://awscli/dir/file.bin"], env)
    run([aws, *endpoint, "s3", "cp", str(source), "s3://awscli/other.bin"], env)
    listing = run([aws, *endpoint, "s3", "ls", "s3://awscli/"], env)
    assert "PRE dir/" in listing and "other.bin" in listing
    run([aws, *endpoint, "s3", "cp", "s3://awscli/dir/file.bin", str(tmp_path / "out.bin")], env)
    assert (tmp_path / "out.bin").read_bytes() == BODY
    head = json.loads(
        run(
            [aws, *endpoint, "s3api", "head-object", "--bucket", "awscli", "--key", "other.bin"],
            env,
        )
    )
    assert (
        head["ContentLength"] == len(BODY) and head["ETag"] == f'"{hashlib.md5(BODY).hexdigest()}"'
    )
    objects = json.loads(
        run([aws, *endpoint, "s3api", "list-objects-v2", "--bucket", "awscli"], env)
    )
    assert sorted(o["Key"] for o in objects["Contents"]) == ["dir/file.bin", "other.bin"]
    run([aws, *endpoint, "s3", "rm", "--recursive", "s3://awscli/"], env)
    assert run([aws, *endpoint, "s3", "ls", "s3://awscli/"], env).strip() == ""
    run([aws, *endpoint, "s3", "rb", "s3://awscli"], env)


def test_s3cmd(s3: S3Cluster, tmp_path: Path) -> None:
    s3cmd = tool("s3cmd")
    host = s3.endpoint().removeprefix("http://")
    config = tmp_path / "s3cfg"
    config.write_text(
        "[default]\n"
        f"access_key = {s3.access_key}\nsecret_key = {s3.secret_key}\n"
        f"host_base = {host}\nhost_bucket = {host}\nuse_https = False\n"
        "bucket_location = us-east-1\nsignature_v2 = False\n"
    )
    base = [s3cmd, "-c", str(config)]
    source = tmp_path / "in.bin"
    source.write_bytes(BODY)
    run([*base, "mb", "s3://s3cmd"])
    run([*base, "put", str(source), "s3://s3cmd/some/file.bin"])
    assert "s3://s3cmd/some/file.bin" in run([*base, "ls", "-r", "s3://s3cmd"])
    run([*base, "get", "s3://s3cmd/some/file.bin", str(tmp_path / "out.bin")])
    assert (tmp_path / "out.bin").read_bytes() == BODY
    run([*base, "del", "s3://s3cmd/some/file.bin"])
    run([*base, "rb", "s3://s3cmd"])


def test_rclone_syncs_a_tree(s3: S3Cluster, tmp_path: Path) -> None:
    rclone = tool("rclone")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
    env.update(
        RCLONE_CONFIG=str(tmp_path / "none.conf"),
        RCLONE_CONFIG_CAIRN_TYPE="s3",
        RCLONE_CONFIG_CAIRN_PROVIDER="Other",
        RCLONE_CONFIG_CAIRN_ACCESS_KEY_ID=s3.access_key,
        RCLONE_CONFIG_CAIRN_SECRET_ACCESS_KEY=s3.secret_key,
        RCLONE_CONFIG_CAIRN_ENDPOINT=s3.endpoint(),
        RCLONE_CONFIG_CAIRN_FORCE_PATH_STYLE="true",
        RCLONE_CONFIG_CAIRN_REGION="us-east-1",
    )
    tree = tmp_path / "tree"
    for i in range(TREE_FILES):
        path = tree / f"d{i % 7}" / f"sub{i % 3}" / f"file {i}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(i * 97 % 20000) if i % 100 else BODY[: 300_000 + i])
    run([rclone, "mkdir", "cairn:rclone"], env)
    run([rclone, "sync", str(tree), "cairn:rclone/tree", "--transfers", "16"], env)
    run([rclone, "check", str(tree), "cairn:rclone/tree"], env)  # sizes and MD5 (ETag)
    back = tmp_path / "back"
    run([rclone, "copy", "cairn:rclone/tree", str(back), "--transfers", "16"], env)
    for path in tree.rglob("*.dat"):
        assert (back / path.relative_to(tree)).read_bytes() == path.read_bytes()


def test_minio_py(s3: S3Cluster) -> None:
    import minio

    client = minio.Minio(
        s3.endpoint().removeprefix("http://"),
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        secure=False,
        region="us-east-1",
    )
    client.make_bucket("minio")
    assert client.bucket_exists("minio")
    client.put_object(
        "minio", "a/b.bin", io.BytesIO(BODY), len(BODY), metadata={"x-amz-meta-k": "v"}
    )
    client.put_object("minio", "stream.bin", io.BytesIO(BODY), -1, part_size=5 * 1024 * 1024)
    response = client.get_object("minio", "a/b.bin")
    try:
        assert response.read() == BODY
    finally:
        response.close()
        response.release_conn()
    stat = client.stat_object("minio", "a/b.bin")
    assert stat.size == len(BODY) and stat.metadata.get("x-amz-meta-k") == "v"
    assert sorted(o.object_name for o in client.list_objects("minio", recursive=True)) == [
        "a/b.bin",
        "stream.bin",
    ]
    client.remove_object("minio", "a/b.bin")
    client.remove_object("minio", "stream.bin")
    client.remove_bucket("minio")


def test_s3fs(s3: S3Cluster) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(
        key=s3.access_key,
        secret=s3.secret_key,
        client_kwargs={"endpoint_url": s3.endpoint(), "region_name": "us-east-1"},
        config_kwargs={"s3": {"addressing_style": "path"}},
        use_listings_cache=False,
    )
    fs.mkdir("fsspec")
    with fs.open("fsspec/dir/file.bin", "wb") as file:
        file.write(BODY[:1_000_000])
    fs.pipe("fsspec/small.txt", b"hello")
    assert fs.cat("fsspec/small.txt") == b"hello"
    with fs.open("fsspec/dir/file.bin", "rb") as file:
        file.seek(1000)
        assert file.read(5000) == BODY[1000:6000]
    assert sorted(fs.ls("fsspec", detail=False)) == ["fsspec/dir", "fsspec/small.txt"]
    assert fs.info("fsspec/dir/file.bin")["size"] == 1_000_000
    fs.rm("fsspec", recursive=True)
