"""`cairn config show` prints the effective config with secrets masked; bad config fails."""

import json

from click.testing import CliRunner

from cairn.cli.main import cli


def test_config_show_merges_flags_and_env_and_masks_secret() -> None:
    result = CliRunner().invoke(
        cli,
        ["config", "show", "--node-id", "n7", "--set", "replication_factor=2"],
        env={"CAIRN_CLUSTER_SECRET": "super-secret-value-42", "CAIRN_PARTITION_COUNT": "64"},
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["node_id"] == "n7"
    assert shown["replication_factor"] == 2
    assert shown["partition_count"] == 64
    assert shown["cluster_secret"] == "****"
    assert "super-secret-value-42" not in result.output


def test_invalid_config_fails_naming_the_field() -> None:
    result = CliRunner().invoke(cli, ["config", "show", "--set", "write_consistency=most"])
    assert result.exit_code != 0
    assert "write_consistency" in result.output
