"""`qiuxue check --json PROFILE`: eligibility of one profile, as a stable JSON contract.

PROFILE is a JSON object (or @file, or - for stdin) with any of the fields in
knowledge/rules/fields.yaml. Prints {"region", "eligible": "yes"|"no"|"unknown", "met", "unmet",
"missing", "undecided", "open", "reason", "benefit", "sources", …}; `missing` lists the fields still
needed to decide, `open` why a case the sources leave open is "can't tell".
Exit 2 with {"error": ...} for a profile that is not valid JSON or has an invalid value.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bot.eligibility import ProfileError, Rules
from bot.regions import Gazetteer
from common.settings import Config


def load_rules(cfg: Config) -> Rules:
    return Rules(cfg.path(cfg.knowledge.rules_dir), Gazetteer.load(cfg.path(cfg.knowledge.dictionary_dir)))


def _read_profile(arg: str) -> dict:
    text = sys.stdin.read() if arg == "-" else Path(arg[1:]).read_text(encoding="utf-8") if arg.startswith("@") else arg
    profile = json.loads(text)
    if not isinstance(profile, dict):
        raise ValueError("the profile must be a JSON object")
    return profile


def cmd_check(cfg: Config, args: argparse.Namespace) -> int:
    try:
        verdict = load_rules(cfg).check(_read_profile(args.profile))
    except (ValueError, ProfileError, OSError) as exc:  # JSONDecodeError is a ValueError
        print(json.dumps({"error": str(exc)}, ensure_ascii=False))
        return 2
    data = verdict.as_json(args.lang)
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
        return 0
    print(f"{data['region'] or '?'}: {data['eligible']}")
    for key in ("met", "unmet"):
        for c in data[key]:
            print(f"  {'✓' if key == 'met' else '✗'} {c['condition']} [{c['source']}]")
    if data["missing"]:
        print("  still needed: " + ", ".join(data["missing"]))
    if data["benefit"]:
        print(f"  benefit: {data['benefit']}")
    return 0
