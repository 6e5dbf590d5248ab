"""The daily digest dump: the Hugging Face Daily Papers page copied as text.

new                                         <- optional header lines
Get trending papers in your email inbox!
Mar 11                                      <- the day (no year)

A Paper Title                               <- title paragraph
                                            <- blank line(s)
The abstract, one paragraph ...             <- abstract paragraph (may be absent)

Mar 12                                      <- two days pasted into one file: a second
                                               date line starts the second day
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from digest.errors import ParseError
from digest.parsers.common import make_record
from digest.records import ParseResult
from digest.text import clean_text

HEADER_LINES = frozenset(
    {
        "new",
        "get trending papers in your email inbox!",
        "subscribe",
        "daily papers",
        "byak and the research community",
    }
)
_HEADER_KEYS = frozenset("".join(ch for ch in h if ch.isalnum()) for h in HEADER_LINES)
_HEADER_MAX_CHARS = 2 * max(len(h) for h in HEADER_LINES)  # longer lines are never chrome
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DATE_LINE = re.compile(r"([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:,?\s+(\d{4}))?")
#: An abstract is a long paragraph; a title is a short one. Titles rarely pass 250
#: characters, abstracts rarely fall under 200.
_ABSTRACT_MIN_CHARS = 200
_ABSTRACT_MIN_WORDS = 15
_TITLE_MAX_CHARS = 400


@dataclass(frozen=True)
class Paragraph:
    """A run of non-blank lines, joined with spaces, and the line it starts on."""

    text: str
    line: int
    lines: tuple[str, ...] = ()


def paragraphs(text: str) -> list[Paragraph]:
    """Split text on blank lines; tolerate CRLF, CR, trailing spaces and extra blanks."""
    out: list[Paragraph] = []
    current: list[str] = []
    start = 0
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for number, raw in enumerate(lines, start=1):
        line = clean_text(raw)
        if line:
            if not current:
                start = number
            current.append(line)
        elif current:
            out.append(_paragraph(current, start))
            current = []
    if current:
        out.append(_paragraph(current, start))
    return out


def _paragraph(lines: list[str], start: int) -> Paragraph:
    return Paragraph(clean_text(" ".join(lines)), start, tuple(lines))


def parse_day_line(text: str) -> tuple[int, int, int | None] | None:
    """`Mar 11` -> (3, 11, None); `March 11, 2024` -> (3, 11, 2024); else None."""
    match = _DATE_LINE.fullmatch(text.strip())
    if not match:
        return None
    name = match.group(1).lower()
    month = next((i for i, m in enumerate(_MONTHS, 1) if name.startswith(m)), None)
    if month is None or not (name == _MONTHS[month - 1] or name.startswith(_MONTHS[month - 1])):
        return None
    day = int(match.group(2))
    if not 1 <= day <= 31:
        return None
    year = int(match.group(3)) if match.group(3) else None
    return month, day, year


def resolve_day(month: int, day: int, year: int | None, *, given: date | None, today: date) -> date:
    """Give a yearless `Mar 11` its year.

    The year comes from the line itself, else from `--date`, else it is the most
    recent such day not after today.
    """
    try:
        if year is None and given is not None:
            year = given.year
        if year is not None:
            return date(year, month, day)
        for candidate_year in (today.year, today.year - 1, today.year - 2, today.year - 3):
            try:
                candidate = date(candidate_year, month, day)
            except ValueError:
                continue  # Feb 29 outside a leap year: look further back
            if candidate <= today:
                return candidate
    except ValueError:
        pass
    raise ValueError(f"{month:02d}-{day:02d} is not a valid day")


def is_header_line(line: str) -> bool:
    """A line of the page's chrome ("new", "Subscribe", ...), never part of an item.

    Compared on letters and digits only, so "by AK and the research community" or
    "Get trending papers in your email inbox" (no "!") count as well.
    """
    return len(line) <= _HEADER_MAX_CHARS and _letters(line) in _HEADER_KEYS


def _letters(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def find_day_line(paras: list[Paragraph]) -> tuple[int, int] | None:
    """(paragraph, line) of the first date line, if only header lines stand before it.

    Header and date lines are matched line by line, so a header with no blank line
    before the date still counts.
    """
    for index, para in enumerate(paras):
        for offset, line in enumerate(para.lines or (para.text,)):
            if parse_day_line(line):
                return index, offset
            if not is_header_line(line):
                return None
    return None


@dataclass
class _Section:
    """The paragraphs under one date line."""

    date_line: str
    line: int
    body: list[Paragraph]


def _sections(paras: list[Paragraph], path: str) -> list[_Section]:
    """Cut the dump at every date line; header lines are dropped wherever they stand.

    A date line splits the paragraph it stands in, so a date with no blank line
    before the next title still starts the day.
    """
    sections: list[_Section] = []
    for para in paras:
        kept: list[str] = []
        start = para.line
        for offset, line in enumerate(para.lines or (para.text,)):
            number = para.line + offset
            if is_header_line(line):
                continue
            if parse_day_line(line):
                _close_paragraph(sections, kept, start, path)
                sections.append(_Section(line, number, []))
                kept = []
                continue
            if not kept:
                start = number
            kept.append(line)
        _close_paragraph(sections, kept, start, path)
    return sections


def _close_paragraph(sections: list[_Section], lines: list[str], start: int, path: str) -> None:
    if not lines:
        return
    if not sections:
        raise ParseError("no date line (such as 'Mar 11') before the first title", path=path)
    sections[-1].body.append(_paragraph(lines, start))


def looks_like_abstract(text: str) -> bool:
    """Long prose rather than a title."""
    words = len(text.split())
    if len(text) >= _ABSTRACT_MIN_CHARS:
        return True
    return words >= _ABSTRACT_MIN_WORDS and text.rstrip().endswith(".")


def parse_dump(
    text: str, *, path: str = "<dump>", given: date | None = None, today: date
) -> ParseResult:
    """Parse one digest dump into item records, each carrying the day it is listed under.

    Every date line starts a new day (two pasted days are two days); header lines
    are never items. Raises ParseError when no date line comes before the first
    title or a date line names no real day; a lone abstract with no title is
    skipped with a warning instead of failing the whole file.
    """
    result = ParseResult(path=path, format="dump", source_name="daily-dump")
    for section in _sections(paragraphs(text), path):
        month, day, year = parse_day_line(section.date_line)  # type: ignore[misc]
        try:
            the_day = resolve_day(month, day, year, given=given, today=today)
        except ValueError as exc:
            raise ParseError(str(exc), path=path, line=section.line) from None
        result.day = result.day or the_day
        _pair_titles(section.body, result, the_day)
    if result.day is None:
        raise ParseError("no date line (such as 'Mar 11') before the first title", path=path)
    return result


def _pair_titles(body: list[Paragraph], result: ParseResult, day: date) -> None:
    index = 0
    while index < len(body):
        title = body[index]
        if looks_like_abstract(title.text) or len(title.text) > _TITLE_MAX_CHARS:
            result.warnings.append(f"line {title.line}: paragraph with no title, skipped")
            index += 1
            continue
        abstract = ""
        following = body[index + 1] if index + 1 < len(body) else None
        if following is not None and looks_like_abstract(following.text):
            abstract = following.text
            index += 1
        index += 1
        result.items.append(make_record(title.text, abstract, line=title.line, day=day))
