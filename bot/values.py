"""What a worker types, read as a typed value: yes or no, a number of months, an age, a date.

Pure functions over text, the language of answers (not policy): "是的/对/有/嗯/没有/不是/yes/yep/no";
"两年", "一年半", "18个月", "2 years", "1.5年" as months; "46岁", "四十六", "I'm 46" as an age;
"2024年7月", "2024-07", "24年7月", "2024-07-01", "2024年7月1日" as a date (`Month`, the month's first
day, when no day is given). Each reader returns None when the text gives no such value; ranges are the
field's business (`bot.eligibility.Field.parse`).

`loose=False` takes only a text that is wholly the value, punctuation aside ("广东？", "46岁。"), which
is what a message that reads as a question may still be; `loose=True` also finds it inside a sentence
("我今年46了", "合同签了两年", "yes, I am").
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from datetime import date
from fractions import Fraction

YES_WORDS = frozenset({"true", "yes", "y", "yep", "yeah", "yea", "yup", "sure", "of course", "i am", "i do", "i have",
                       "1", "是", "是的", "是啊", "是呀", "对", "对的", "对啊", "对呀", "有", "有的", "有啊", "嗯", "嗯嗯", "恩",
                       "当然", "没错", "是滴", "我是", "我有", "已经有了", "有了", "领过", "入了", "入过", "做过",
                       "做了", "办过", "办了"})
NO_WORDS = frozenset({"false", "no", "n", "nope", "nah", "not yet", "i am not", "i'm not", "i don't", "i have not",
                      "i haven't", "0", "否", "不是", "不是的", "没有", "没有的", "没", "不", "无", "没呢", "没有呢", "还没",
                      "还没有", "还没呢", "我不是", "我没有", "都没有", "没领过", "没入", "不对"})
_PUNCT = re.compile(r"(?:[\s,，。!！?？~～、；;:：\"'“”‘’()（）…]|(?<![0-9])\.|\.(?![0-9]))+")
_SEP = r"(?:[\s,，.。!！~～、；;:：]|$)"
_BOOL_WORDS = sorted((w for w in YES_WORDS | NO_WORDS if not w.startswith(("i ", "i'"))), key=len, reverse=True)
_BOOL_START = re.compile(rf"^({'|'.join(re.escape(w) for w in _BOOL_WORDS)}){_SEP}")

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "俩": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100}
_EN_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
               "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "eighteen": 18, "twenty": 20,
               "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60}
_NUM = (r"(?:(?<![0-9.])[0-9]{1,6}(?:\.[0-9]{1,2})?(?![0-9])|[零〇一二两俩三四五六七八九十百]{1,5}|"
        rf"\b(?:{'|'.join(_EN_NUMBERS)})\b)")
_DURATION = re.compile(
    rf"(?P<half>半年|half a year|six months)|(?P<n>{_NUM})\s*(?:(?P<yh>年半|个半年)|(?P<y>年|years?\b|yrs?\b)"
    rf"(?:\s*(?:零|又|and)?\s*(?:(?P<half2>半|a half)|(?P<m2>{_NUM})\s*(?:个月|months?\b)))?"
    rf"|(?P<m>个月|月|months?\b))?")
_AGE_UNIT = re.compile(rf"(?P<n>{_NUM})\s*(?:周岁|岁|years? old\b|yrs? old\b|y/?o\b)")
_NOT_AGE = re.compile(r"\s*(?:年|个|月|日|号|元|块|%|次|岁以上)")
_DATE = re.compile(r"(?P<y>(?<![0-9])(?:[0-9]{4}|[0-9]{2})|[零〇一二三四五六七八九]{2,4})\s*(?:年|[-/.])\s*"
                   r"(?P<m>[0-9]{1,2}|[一二三四五六七八九十]{1,3})(?![0-9])\s*(?:月份|月)?"
                   r"(?:\s*[-/.]?\s*(?P<d>[0-9]{1,2}|[一二三四五六七八九十]{1,3})(?![0-9])\s*(?:日|号)?)?")


class Month(date):
    """A date known only to the month: the month's first day (a `date`, so rules compare it as one)."""


def clean(text: str) -> str:
    """NFKC (full-width digits and letters), lower-case, outer punctuation and spaces gone."""
    return _PUNCT.sub(" ", unicodedata.normalize("NFKC", str(text)).lower()).strip()


def _whole(text: str) -> str:
    return _PUNCT.sub("", unicodedata.normalize("NFKC", str(text)).lower())


def number(word: str) -> Fraction | None:
    """"46", "1.5", "四十六", "二零二四", "两", "twelve" → the number; None for anything else."""
    word = word.strip().lower()
    if not word:
        return None
    if word in _EN_NUMBERS:
        return Fraction(_EN_NUMBERS[word])
    if re.fullmatch(r"[0-9]{1,6}(?:\.[0-9]{1,2})?", word):
        return Fraction(word)
    if not all(ch in _CN_DIGITS or ch in _CN_UNITS for ch in word):
        return None
    if all(ch in _CN_DIGITS for ch in word):  # digit by digit: 二零二四, 四六
        return Fraction(int("".join(str(_CN_DIGITS[ch]) for ch in word)))
    total, current = 0, 0
    for ch in word:
        if ch in _CN_DIGITS:
            current = _CN_DIGITS[ch]
        else:
            total += (current or 1) * _CN_UNITS[ch]
            current = 0
    return Fraction(total + current)


def yes_no(text: str, loose: bool = False) -> bool | None:
    """True for a yes, False for a no, None for neither ("是的" → True; loose: "no, I'm not" → False)."""
    whole = clean(text)
    if whole in YES_WORDS or whole in NO_WORDS:
        return whole in YES_WORDS
    if loose:
        match = _BOOL_START.match(unicodedata.normalize("NFKC", str(text)).lower().strip())
        if match:
            return match.group(1) in YES_WORDS
    return None


def _whole_number(value: Fraction | None) -> int | None:
    return int(value) if value is not None and value.denominator == 1 else None


def months(text: str, loose: bool = False) -> int | None:
    """A duration in whole months: "两年" 24, "一年半" 18, "18个月" 18, "2 years" 24, "1.5年" 18, "24" 24."""
    source = unicodedata.normalize("NFKC", str(text)).lower()
    if loose:
        matches = [m for m in _DURATION.finditer(source) if m.group(0).strip()]
        found = next((m for m in matches if _unit(m)), matches[0] if len(matches) == 1 else None)
    else:
        found = _DURATION.fullmatch(clean(text)) or _DURATION.fullmatch(_whole(text))
    if found is None:
        return None
    if found.group("half"):
        return 6
    n = number(found.group("n"))
    if n is None:
        return None
    if found.group("yh"):
        n = n * 12 + 6
    elif found.group("y"):
        extra = Fraction(6) if found.group("half2") else number(found.group("m2") or "0") or Fraction(0)
        n = n * 12 + extra
    return _whole_number(n)


def _unit(match: re.Match[str]) -> bool:
    return any(match.group(g) for g in ("half", "yh", "y", "m"))


def age(text: str, loose: bool = False) -> int | None:
    """An age in years: "46", "46岁", "四十六岁", "46 years old"; loose also "我今年46了", "I'm 46"."""
    whole = clean(text)
    for candidate in (whole, whole.replace(" ", "")):
        found = _AGE_UNIT.fullmatch(candidate) or re.fullmatch(_NUM, candidate)
        if found:
            return _whole_number(number(found.group("n") if "n" in found.groupdict() else found.group(0)))
    if not loose:
        return None
    source = unicodedata.normalize("NFKC", str(text)).lower()
    unit = _AGE_UNIT.search(source)
    if unit:
        return _whole_number(number(unit.group("n")))
    bare = [m for m in re.finditer(_NUM, source) if not _NOT_AGE.match(source, m.end()) and m.group(0) not in
            ("a", "an", "一", "两")]
    return _whole_number(number(bare[0].group(0))) if len(bare) == 1 else None


def when(text: str, loose: bool = False) -> date | None:
    """A date: "2024-07-01" or "2024年7月1日" (a date); "2024年7月", "2024-07", "24年7月" (a `Month`)."""
    source = unicodedata.normalize("NFKC", str(text)).lower().strip()
    found = _DATE.search(source) if loose else _DATE.fullmatch(source.strip(" 。.!！?？，,"))
    if found is None:
        return None
    year, month = number(found.group("y")), number(found.group("m"))
    day = number(found.group("d")) if found.group("d") else None
    if year is None or month is None:
        return None
    y = int(year) + (2000 if year < 100 else 0)
    try:
        if day is None:
            return Month(y, int(month), 1)
        return date(y, int(month), int(day))
    except ValueError:
        return None


def month_end(day: date) -> date:
    """The last day of `day`'s month."""
    return date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])
