"""The one typed configuration model and its loader (TOML file < environment < flags)."""

from cairn.config.load import ENV_PREFIX, load_config, parse_assignment, set_path
from cairn.config.model import (
    LB_STRATEGIES,
    ROLES,
    CairnConfig,
    TlsConfig,
    masked,
    parse_hostport,
)

__all__ = [
    "ENV_PREFIX",
    "LB_STRATEGIES",
    "ROLES",
    "CairnConfig",
    "TlsConfig",
    "load_config",
    "masked",
    "parse_assignment",
    "parse_hostport",
    "set_path",
]
