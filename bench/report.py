"""Benchmark output: a Markdown table on stdout (for README) and the raw results in bench/out/<name>.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"


def report(name: str, columns: dict[str, Callable[[dict[str, Any]], object]], results: list[dict[str, Any]]) -> None:
    """Print one table row per result (`columns`: header → cell) and save the results as JSON."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for r in results:
        print("| " + " | ".join(str(cell(r)) for cell in columns.values()) + " |")
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
