"""Declared shapes of every knowledge file (pydantic), and the problems a file has, in words.

Kinds: a policy's front matter, a FAQ file (a non-empty list of entries), a place's rules
(`rules/*.yaml`) and the field catalogue (`rules/fields.yaml`), a guide (`guides/*.yaml`), and
the dictionary files (`regions.yaml`, `synonyms.yaml`, `handoff.yaml`, `intents.yaml`, `topics.yaml`,
`userdict.txt`, `stopwords.txt`). Models are strict: a number where text belongs, a text where a
list belongs, or a misspelt key is a problem, named as `field: what is wrong`.

This is the schema both sides share: ingest refuses a bad file, and the bot's loaders
(`bot/eligibility.py`) share `OPERATORS` (`ingest/rule_operators.py`).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from ingest.rule_operators import OPERATORS

Text = Annotated[StrictStr, Field(min_length=1)]
Id = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
Year = Annotated[StrictInt, Field(ge=1990, le=2100)]
Scope = Literal["national", "province", "city", "note"]
Scalar = StrictStr | StrictBool | StrictInt | date


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Sourced(Strict):
    """Every fact keeps its source labels; only a `gap: true` entry (what we do not cover) has none."""

    sources: list[Text] = []
    gap: StrictBool = False

    @model_validator(mode="after")
    def has_sources(self) -> Sourced:
        if not self.sources and not self.gap:
            raise ValueError("sources: at least one source label is needed (or gap: true)")
        return self


class PolicyMeta(Sourced):
    """Front matter of `policies/*.md` (a Markdown file with `scope` is a policy)."""

    id: Id
    title: Text | None = None  # default: the first level-1 heading, else the file name
    title_en: StrictStr = ""
    scope: Scope
    region: Text
    parent: Text | None = None
    covers: list[Text] = []
    year: Year | None = None
    effective: Annotated[date, Field(strict=False)] | None = None  # YYYY-MM-DD, quoted or not
    summary_en: StrictStr = ""


class FaqEntry(Sourced):
    id: Id
    region: Text = "全国"
    scope: Scope = "national"
    year: Year | None = None
    docs: list[Text] = []
    covers: list[Text] = []
    question: Text
    question_en: StrictStr = ""
    phrasings: list[Text] = []
    topics: list[Id] = []  # what the entry answers (amount, documents …): keys of dictionary/topics.yaml
    answer: Text
    answer_en: StrictStr = ""
    approved_by: StrictStr = ""


class FaqFile(RootModel[list[FaqEntry]]):
    root: list[FaqEntry] = Field(min_length=1)


class Condition(Strict):
    model_config = ConfigDict(extra="allow", strict=True)  # the operator is one extra key, checked below

    field: Text
    says: Text
    says_en: StrictStr = ""
    source: StrictStr = ""
    when: dict[Text, Scalar] = {}
    otherwise: Literal["no", "unknown"] = "no"  # what failing means; "unknown": the sources leave it open
    otherwise_says: StrictStr = ""
    otherwise_says_en: StrictStr = ""

    @model_validator(mode="after")
    def one_operator(self) -> Condition:
        extra = dict(self.model_extra or {})
        ops = [k for k in extra if k in OPERATORS]
        unknown = [k for k in extra if k not in OPERATORS]
        if unknown:
            raise ValueError(f"unknown key {', '.join(map(repr, unknown))} (operators: {', '.join(OPERATORS)})")
        if len(ops) != 1:
            raise ValueError(f"needs exactly one operator of {', '.join(OPERATORS)}, has {len(ops)}")
        value = extra[ops[0]]
        if ops[0] in ("in", "not_in") and not (isinstance(value, list) and value):
            raise ValueError(f"{ops[0]}: expected a non-empty list, got {value!r}")
        if ops[0] not in ("in", "not_in") and not isinstance(value, str | bool | int | date):
            raise ValueError(f"{ops[0]}: expected one value, got {value!r}")
        return self


class Note(Strict):
    says: Text
    says_en: StrictStr = ""
    source: StrictStr = ""
    blocks_yes: StrictBool = False  # a requirement the bot cannot check: all conditions met is still "can't tell"


class FieldWording(Strict):
    """A place's own wording of a shared field's question and help (e.g. its frontline definition)."""

    ask: StrictStr = ""
    ask_en: StrictStr = ""
    help: StrictStr = ""
    help_en: StrictStr = ""


class RuleFile(Strict):
    region: Text
    scope: Literal["province", "city", "national"]
    year: Year | None = None
    doc: Text
    sources: list[Text] = Field(min_length=1)
    covers: list[Text] = []
    complete: StrictBool = False
    benefit: StrictStr = ""
    benefit_en: StrictStr = ""
    selection: StrictStr = ""
    selection_en: StrictStr = ""
    conditions: list[Condition] = []
    notes: list[Note] = []
    fields: dict[Text, FieldWording] = {}


class FieldSpec(Strict):
    type: Literal["bool", "int", "enum", "date", "region"]
    ask: Text
    ask_en: Text
    buttons: list[Text] = []
    help: StrictStr = ""
    help_en: StrictStr = ""
    min: StrictInt | None = None
    max: StrictInt | None = None
    label: StrictStr = ""  # what a worker calls the fact (/facts, corrections); default: the field's name
    label_en: StrictStr = ""
    names: list[Text] = []  # words that name the field in a correction ("合同是两年", "I'm 46")
    unit: Literal["", "months", "years"] = ""  # int fields: "两年" is 24 months; "46岁" is an age

    @model_validator(mode="after")
    def enum_has_buttons(self) -> FieldSpec:
        if self.type == "enum" and not self.buttons:
            raise ValueError("an enum field needs buttons (its choices)")
        if self.unit and self.type != "int":
            raise ValueError("unit: only an int field has a unit")
        return self


class FieldCatalogue(RootModel[dict[Text, FieldSpec]]):
    root: dict[Text, FieldSpec] = Field(min_length=1)


class GuideStep(Strict):
    title: Text
    text: Text
    title_en: StrictStr = ""
    text_en: StrictStr = ""


class GuideDocument(Strict):
    id: Id
    name: Text
    name_en: StrictStr = ""


class GuideFile(Strict):
    region: Text
    year: Year | None = None
    doc: Text
    sources: list[Text] = Field(min_length=1)
    covers: list[Text] = []
    steps: list[GuideStep] = Field(min_length=1)
    documents: list[GuideDocument] = []


class RegionEntry(Strict):
    name: Text
    kind: Literal["province", "municipality", "city", "county"] = "city"
    parent: Text | None = None
    aliases: list[Text] = []
    signals: list[Text] = []


class RegionsFile(RootModel[list[RegionEntry]]):
    root: list[RegionEntry] = Field(min_length=1)


class SynonymsFile(RootModel[list[Annotated[list[Text], Field(min_length=2)]]]):
    pass


class HandoffTopic(Strict):
    reason: Text
    words: list[Text] = Field(min_length=1)


class HandoffFile(RootModel[list[HandoffTopic]]):
    pass


class IntentsFile(Strict):
    human: list[Text] = Field(min_length=1)
    human_exact: list[Text] = []
    check: list[Text] = Field(min_length=1)
    question: list[Text] = []  # a message containing one of these (or ending in ?) reads as a question
    question_en: list[Text] = []  # … or starting with one of these English words
    back: list[Text] = []  # the whole message: go back one question in a flow


class TopicsFile(RootModel[dict[Id, Text]]):
    """`dictionary/topics.yaml`: topic id → what it covers (FAQ entries' `topics` must be these ids)."""

    root: dict[Id, Text] = Field(min_length=1)


def describe(exc: ValidationError, entry_word: str = "entry") -> str:
    """A pydantic error as `where: what` lines (`entry 2 (faq-x): covers: Input should be a valid list`)."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        parts = []
        if loc and isinstance(loc[0], int) and entry_word:
            parts.append(f"{entry_word} {loc.pop(0) + 1}")
        path = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
        if path:
            parts.append(path)
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field (misspelt?)"
        parts.append(f"{message} (got {_short(err.get('input'))})" if err["type"] != "missing" else message)
        problems.append(": ".join(parts))
    return "; ".join(problems)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class KnowledgeFileError(ValueError):
    """A knowledge file does not match its declared shape; the message names each field and problem."""


def check(model: type[BaseModel], data: Any, entry_word: str = "entry") -> Any:
    """`data` validated by `model` (returns the model), or KnowledgeFileError naming every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise KnowledgeFileError(describe(exc, entry_word)) from None
    except RecursionError:
        raise KnowledgeFileError("nested too deeply") from None


def check_faq(data: Any) -> list[FaqEntry]:
    """A FAQ file's entries, or KnowledgeFileError: empty file, not a list, or bad entries (by id)."""
    if data is None or data == []:
        raise KnowledgeFileError("the FAQ file has no entries")
    if not isinstance(data, list):
        raise KnowledgeFileError(f"a FAQ file must be a YAML list of entries, got {type(data).__name__}")
    problems = []
    for n, entry in enumerate(data, 1):
        try:
            FaqEntry.model_validate(entry)
        except ValidationError as exc:
            name = entry.get("id") if isinstance(entry, dict) and isinstance(entry.get("id"), str) else None
            problems.append(f"entry {n}{f' ({name})' if name else ''}: {describe(exc, '')}")
    if problems:
        raise KnowledgeFileError("; ".join(problems))
    return FaqFile.model_validate(data).root
