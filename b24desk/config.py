"""Configuration: ``config/b24desk.toml`` (data) overridden by ``B24DESK_*`` environment variables.

The file holds sources, field mapping, targets, the work calendar and SLAs; the environment holds
paths and credentials (shared/spec/interfaces.md, "Settings"). Per-portal changes made in the admin
settings live in the store's ``settings`` table and are layered on top by the callers.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "config" / "b24desk.toml"
DEFAULT_DB = ROOT / "instance" / "b24desk.db"

ENV_KEYS = (
    "B24DESK_DB",
    "B24DESK_CONFIG",
    "B24DESK_WEBHOOK",
    "B24DESK_CLIENT_ID",
    "B24DESK_CLIENT_SECRET",
    "B24DESK_PUBLIC_URL",
    "B24DESK_OAUTH_URL",
)


def load_config(path: str | Path | None = None) -> dict:
    """Read the TOML config file (``B24DESK_CONFIG`` or the default); missing file -> defaults."""
    path = Path(path or os.environ.get("B24DESK_CONFIG") or DEFAULT_CONFIG)
    if not path.exists():
        if path != DEFAULT_CONFIG:
            raise FileNotFoundError(f"config file not found: {path}")
        return {}
    with path.open("rb") as fh:
        return tomllib.load(fh)


def db_path(explicit: str | None = None) -> str:
    return str(explicit or os.environ.get("B24DESK_DB") or DEFAULT_DB)


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def rest_limits(config: dict | None) -> dict:
    """``{"rps", "burst"}`` for ``B24Client`` from ``[rest]`` (the portal's leaky bucket; default
    2/s after 50, DOCS limits.md). Bad values fall back to the default rather than stop the server."""
    rest = (config or {}).get("rest") or {}
    out = {"rps": 2.0, "burst": 50}
    try:
        rps = float(rest.get("rps", 2.0))
        burst = int(rest.get("burst", 50))
    except (TypeError, ValueError):
        return out
    if rps >= 0 and burst >= 1:
        out.update(rps=rps, burst=burst)
    return out
