"""Reading YAML fast: libyaml's C loader (about ten times the pure-Python one), same safe semantics.

Every knowledge file, `strings.yaml` and `config.yaml` is read through here, so start-up (the CLI
commands, a serving process) does not spend its time in the pure-Python parser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SafeLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str) -> Any:
    """The YAML document in `text` (safe types only), like `yaml.safe_load`."""
    return yaml.load(text, Loader=SafeLoader)  # noqa: S506 — a safe loader


def read_yaml(path: str | Path) -> Any:
    """The YAML document in the UTF-8 file at `path`."""
    return parse_yaml(Path(path).read_text(encoding="utf-8"))
