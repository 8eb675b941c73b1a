"""docs/config.md documents every config field (the model's docstring points there)."""

from pathlib import Path

from cairn.config.model import CairnConfig, TlsConfig

DOC = Path(__file__).resolve().parents[3] / "docs" / "config.md"


def test_every_config_field_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    fields = [f for f in CairnConfig.__struct_fields__ if f != "tls"]
    fields += [f"tls.{f}" for f in TlsConfig.__struct_fields__]
    missing = [f for f in fields if f"`{f}`" not in text]
    assert missing == [], f"add these to docs/config.md: {missing}"
