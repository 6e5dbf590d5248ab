"""RSS 2.0 and Atom feeds through feedparser (arXiv and Hugging Face paper feeds)."""

from __future__ import annotations

import re
from datetime import date
from html.parser import HTMLParser

import feedparser

from digest.errors import ParseError
from digest.links import find_arxiv_id
from digest.parsers.common import make_record, unsafe_link_warning
from digest.records import ItemRecord, ParseResult
from digest.text import clean_text

# arXiv's RSS prefixes every summary with "arXiv:2401.12345v1 Announce Type: new Abstract:".
_ARXIV_PREFIX = re.compile(r"^arXiv:\S+\s+Announce Type:\s*\S+\s+Abstract:\s*", re.IGNORECASE)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment (feed summaries are often HTML)."""
    parser = _TextExtractor()
    parser.feed(html or "")
    parser.close()
    return clean_text(" ".join(parser.parts))


def parse_feed(data: bytes, *, path: str = "<feed>") -> ParseResult:
    """Parse RSS/Atom bytes. A malformed feed keeps the entries read before the fault.

    Raises ParseError only when nothing feed-like could be read at all.
    """
    try:
        parsed = feedparser.parse(data)
    except Exception as exc:  # feedparser means never to raise; on some bytes it does
        # e.g. an XML declaration naming the encoding "\x00TF-8": ValueError.
        reason = f"{type(exc).__name__}: {exc}"
        raise ParseError(f"not a readable feed: {_one_line(reason)}", path=path) from None
    if not parsed.entries and not parsed.get("version"):
        reason = parsed.get("bozo_exception") or "no RSS or Atom feed found"
        raise ParseError(f"not a readable feed: {_one_line(reason)}", path=path)
    title = clean_text(parsed.feed.get("title", "")) or None
    result = ParseResult(path=path, format="feed", source_name=title)
    if parsed.bozo:
        result.warnings.append(f"malformed feed: {_one_line(parsed.bozo_exception)}")
    for number, entry in enumerate(parsed.entries, start=1):
        record = _entry_record(entry)
        if record is None:
            result.warnings.append(f"entry {number}: no title, skipped")
            continue
        result.items.append(record)
        warning = unsafe_link_warning(f"entry {number}", "link", _link(entry))
        if warning:
            result.warnings.append(warning)
    return result


def _entry_record(entry) -> ItemRecord | None:
    title = clean_text(html_to_text(entry.get("title", "")))
    if not title:
        return None
    summary = html_to_text(entry.get("summary", ""))
    summary = _ARXIV_PREFIX.sub("", summary)
    return make_record(
        title,
        summary,
        url=_link(entry),
        arxiv_id=_arxiv_from_entry(entry),
        authors=_authors(entry),
        tags=tuple(t.get("term", "") for t in entry.get("tags", []) if t.get("term")),
        published=_published(entry),
        external_id=entry.get("id") or None,
    )


def _link(entry) -> str | None:
    """The entry's link, else its id when that is a URL (Atom ids often are)."""
    external_id = entry.get("id") or None
    return entry.get("link") or (external_id if str(external_id).startswith("http") else None)


def _arxiv_from_entry(entry) -> str | None:
    for field in ("id", "link"):
        found = find_arxiv_id(str(entry.get(field, "")))
        if found:
            return found
    return None


def _authors(entry) -> tuple[str, ...]:
    names = [a.get("name", "") for a in entry.get("authors", []) if a.get("name")]
    if len(names) == 1 and "," in names[0]:
        # arXiv's RSS puts every author into one dc:creator, comma-separated.
        names = [n.strip() for n in names[0].split(",")]
    return tuple(n for n in (clean_text(n) for n in names) if n)


def _published(entry) -> str | None:
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    if not stamp:
        return None
    try:
        return date(stamp.tm_year, stamp.tm_mon, stamp.tm_mday).isoformat()
    except ValueError:
        return None


def _one_line(reason: object) -> str:
    return " ".join(str(reason).split())
