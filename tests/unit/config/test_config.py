"""Config layering (file < env < flags) and validation messages that name the field."""

from pathlib import Path

import pytest

from cairn.base.errors import ConfigError
from cairn.config import load_config, masked


def test_defaults_make_a_valid_single_node_config() -> None:
    config = load_config(environ={})
    assert config.replication_factor == 3
    assert config.partition_count == 4096
    assert config.read_consistency == "lease"


def test_layers_override_in_order(tmp_path: Path) -> None:
    path = tmp_path / "cairn.toml"
    path.write_text('node_id = "from-file"\nreplication_factor = 1\npartition_count = 64\n')
    env = {"CAIRN_REPLICATION_FACTOR": "2", "CAIRN_PARTITION_COUNT": "128"}
    config = load_config(path, environ=env, overrides={"partition_count": 256})
    assert config.node_id == "from-file"
    assert config.replication_factor == 2
    assert config.partition_count == 256


def test_env_lists_and_nested_fields() -> None:
    config = load_config(
        environ={"CAIRN_SEEDS": "127.0.0.1:1,127.0.0.1:2", "CAIRN_TLS__ENABLED": "false"}
    )
    assert config.seeds == ["127.0.0.1:1", "127.0.0.1:2"]
    assert config.tls.enabled is False


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"replication_factor": 0}, "replication_factor"),
        ({"partition_count": 100}, "partition_count"),
        ({"rpc_listen": "nonsense"}, "rpc_listen"),
        ({"roles": ["bogus"]}, "roles"),
        ({"cluster_secret": "short"}, "cluster_secret"),
        ({"read_consistency": "sometimes"}, "read_consistency"),
        ({"no_such_field": 1}, "no_such_field"),
        ({"tls": {"enabled": True}}, "tls"),
    ],
)
def test_invalid_values_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={}, overrides=overrides)
    assert field in str(info.value)


def test_bad_toml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("node_id = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", environ={})


def test_masked_hides_the_secret() -> None:
    config = load_config(environ={"CAIRN_CLUSTER_SECRET": "a-very-secret-value-123"})
    shown = masked(config)
    assert shown["cluster_secret"] == "****"
    assert "a-very-secret-value-123" not in repr(shown)
