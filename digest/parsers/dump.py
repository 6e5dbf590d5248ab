"""The daily digest dump: the Hugging Face Daily Papers page copied as text.

new                                         <- optional header lines
Get trending papers in your email inbox!
Mar 11                                      <- the day (no year)

A Paper Title                               <- title paragraph
                                            <- blank line(s)
The abstract, one paragraph ...             <- abstract paragraph (may be absent)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from digest.errors import ParseError
from digest.links import find_arxiv_id, find_doi, split_links
from digest.records import ItemRecord, ParseResult
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


def find_day_line(paras: list[Paragraph]) -> tuple[int, int] | None:
    """(paragraph, line) of the date line, if only header lines stand before it.

    Header and date lines are matched line by line, so a header with no blank line
    before the date still counts.
    """
    for index, para in enumerate(paras):
        for offset, line in enumerate(para.lines or (para.text,)):
            if parse_day_line(line):
                return index, offset
            if clean_text(line).lower() not in HEADER_LINES:
                return None
    return None


def _body_after(paras: list[Paragraph], index: int, offset: int) -> list[Paragraph]:
    """Paragraphs after the date line; lines sharing its paragraph become one more."""
    rest = paras[index].lines[offset + 1 :]
    head = [_paragraph(list(rest), paras[index].line + offset + 1)] if rest else []
    return head + paras[index + 1 :]


def looks_like_abstract(text: str) -> bool:
    """Long prose rather than a title."""
    words = len(text.split())
    if len(text) >= _ABSTRACT_MIN_CHARS:
        return True
    return words >= _ABSTRACT_MIN_WORDS and text.rstrip().endswith(".")


def parse_dump(
    text: str, *, path: str = "<dump>", given: date | None = None, today: date
) -> ParseResult:
    """Parse one digest dump into item records.

    Raises ParseError when there is no date line; a lone abstract with no title is
    skipped with a warning instead of failing the whole file.
    """
    paras = paragraphs(text)
    found = find_day_line(paras)
    if found is None:
        raise ParseError("no date line (such as 'Mar 11') before the first title", path=path)
    index, offset = found
    month, day, year = parse_day_line(paras[index].lines[offset])  # type: ignore[misc]
    try:
        the_day = resolve_day(month, day, year, given=given, today=today)
    except ValueError as exc:
        raise ParseError(str(exc), path=path, line=paras[index].line + offset) from None
    result = ParseResult(path=path, format="dump", day=the_day, source_name="daily-dump")
    _pair_titles(_body_after(paras, index, offset), result)
    return result


def _pair_titles(body: list[Paragraph], result: ParseResult) -> None:
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
        result.items.append(make_record(title.text, abstract, line=title.line))


def make_record(title: str, abstract: str, *, line: int | None = None, **extra) -> ItemRecord:
    """Build a record from title and abstract, pulling ids and links from the text."""
    code_url, project_urls = split_links(abstract)
    url = extra.pop("url", None)
    haystack = f"{url or ''} {abstract}"
    return ItemRecord(
        title=title,
        abstract=abstract,
        url=url,
        arxiv_id=extra.pop("arxiv_id", None) or find_arxiv_id(haystack),
        doi=extra.pop("doi", None) or find_doi(url or ""),
        code_url=code_url,
        project_urls=project_urls,
        line=line,
        **extra,
    )
