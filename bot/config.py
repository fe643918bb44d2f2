"""Settings: `config.yaml` plus `QIUXUE__SECTION__KEY` environment overrides.

Every setting has a commented default in `config.yaml`. An environment variable
`QIUXUE__A__B=value` overrides `a.b` (value parsed as YAML, so JSON lists work).
Relative paths are resolved against the directory of the config file.
Secrets never live here: they are read from the environment where they are used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "QIUXUE__"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.yaml"


class Config:
    """Read-only nested settings with attribute access: `cfg.index.top_k`."""

    def __init__(self, data: Mapping[str, Any], root: Path) -> None:
        self._data = dict(data)
        self.root = root

    def __getattr__(self, name: str) -> Any:
        try:
            value = self._data[name]
        except KeyError:
            raise AttributeError(f"no setting named {name!r}") from None
        return Config(value, self.root) if isinstance(value, Mapping) else value

    def get(self, name: str, default: Any = None) -> Any:
        value = self._data.get(name, default)
        return Config(value, self.root) if isinstance(value, Mapping) else value

    def path(self, value: str | os.PathLike[str]) -> Path:
        """A path setting resolved against the config file's directory."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.root / p).resolve()

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)

    @property
    def data_path(self) -> Path:
        path = self.path(self._data["data_dir"])
        path.mkdir(parents=True, exist_ok=True)
        return path


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX):].split("__") if p]
        if not parts:
            continue
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            node[parts[-1]] = raw


def load_config(path: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """Load `config.yaml` (or QIUXUE_CONFIG / `path`) and apply environment overrides."""
    env = os.environ if environ is None else environ
    cfg_path = Path(path or env.get("QIUXUE_CONFIG") or DEFAULT_CONFIG).resolve()
    data = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    _apply_env(data, env)
    return Config(data, cfg_path.parent)
