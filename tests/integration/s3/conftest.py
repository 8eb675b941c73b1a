"""One real 3-node cluster per test module (module scope: starting one costs seconds),
and S3 clients for it. The cluster is ready for S3 when `LocalCluster.start` returns: it
waits until the root group holds the admin credentials of cluster.json."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from cairn.localcluster import LocalCluster
from cairn.localcluster.harness import load_credentials

SECRET = "s3-integration-cluster-secret"


@dataclass(frozen=True)
class S3Cluster:
    local: LocalCluster
    access_key: str
    secret_key: str

    @property
    def base_dir(self) -> Path:
        return self.local.base_dir

    def endpoint(self, index: int = 0) -> str:
        node = list(self.local.nodes.values())[index]
        return f"http://{node.host}:{node.s3_port}"

    def client(
        self,
        index: int = 0,
        access_key: str | None = None,
        secret_key: str | None = None,
        **config: object,
    ):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint(index),
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name="us-east-1",
            config=Config(
                **{"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 2}, **config}
            ),  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Cluster]:
    base = tmp_path_factory.mktemp("s3")
    with LocalCluster(base, 3, secret=SECRET, raft=True) as local:
        access_key, secret_key = load_credentials(base)
        yield S3Cluster(local, access_key, secret_key)
