"""JSON Feed, versions 1 and 1.1 (https://jsonfeed.org): a feed, written in JSON.

A JSON Feed is a feed like RSS or Atom and is read as tolerantly: an item that is
not an object, or a field of the wrong type, is skipped with a warning naming the
item and key; only a document with no `items` list fails.

JSON Feed items need not have a title (short posts often have none). Such an item
takes its `summary` as title, else the first line of its content, cut at a word
boundary to at most 120 characters, because a reader expects to see something
rather than lose the item. An item with no title, summary or content is skipped.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from digest.errors import ParseError
from digest.links import find_arxiv_id, safe_url
from digest.parsers.common import load_json, make_record, unsafe_link_warning
from digest.parsers.feeds import html_to_text
from digest.records import ItemRecord, ParseResult
from digest.text import clean_text

_VERSION = re.compile(r"https?://jsonfeed\.org/version/\d", re.IGNORECASE)
_TITLE_CHARS = 120
_TEXT_FIELDS = (
    "title", "summary", "content_text", "content_html", "url", "external_url",
    "date_published", "date_modified",
)  # fmt: skip


def is_json_feed(doc: Any) -> bool:
    """True for a JSON object whose `version` names a JSON Feed version."""
    version = doc.get("version") if isinstance(doc, dict) else None
    return isinstance(version, str) and _VERSION.match(version.strip()) is not None


def parse_json_feed(text: str, *, path: str = "<feed>") -> ParseResult:
    """Parse JSON Feed text (the JSON items parser hands such documents over itself)."""
    doc = load_json(text, path)
    if not is_json_feed(doc):
        raise ParseError(
            "not a readable feed: JSON without a JSON Feed 'version' "
            "(https://jsonfeed.org/version/1.1)",
            path=path,
        )
    return parse_json_feed_document(doc, path=path)


def parse_json_feed_document(doc: dict[str, Any], *, path: str) -> ParseResult:
    """Turn a loaded JSON Feed document into records."""
    items = doc.get("items")
    if not isinstance(items, list):
        raise ParseError("JSON Feed has no 'items' list", path=path)
    name = doc.get("title")
    source_name = clean_text(name) if isinstance(name, str) else ""
    result = ParseResult(path=path, format="feed", source_name=source_name or None)
    for number, item in enumerate(items, start=1):
        where = f"item {number}"
        if not isinstance(item, dict):
            result.warnings.append(f"{where}: not a JSON object, skipped")
            continue
        record = _item_record(item, where, result.warnings)
        if record is not None:
            result.items.append(record)
    return result


def _item_record(item: dict[str, Any], where: str, warnings: list[str]) -> ItemRecord | None:
    fields = {key: _string(item, key, where, warnings) for key in _TEXT_FIELDS}
    content = fields["content_text"] or html_to_text(fields["content_html"] or "")
    summary = clean_text(fields["summary"] or "")
    title = clean_text(fields["title"] or "") or _title_from(summary or content)
    if not title:
        warnings.append(f"{where}: no title, summary or content, skipped")
        return None
    links = [fields["url"], fields["external_url"]]
    for key, value in zip(("url", "external_url"), links, strict=True):
        warning = unsafe_link_warning(where, key, value)
        if warning:
            warnings.append(warning)
    external_id = _identifier(item.get("id"), where, warnings)
    return make_record(
        title,
        clean_text(content) or summary,
        url=next((u for u in links if safe_url(u)), None),
        arxiv_id=find_arxiv_id(" ".join(filter(None, [external_id, *links]))),
        authors=_authors(item, where, warnings),
        tags=_tags(item, where, warnings),
        published=_day(fields["date_published"] or fields["date_modified"], where, warnings),
        external_id=external_id,
    )


def _string(item: dict[str, Any], key: str, where: str, warnings: list[str]) -> str | None:
    value = item.get(key)
    if value is None or isinstance(value, str):
        return value or None
    warnings.append(f"{where}: '{key}' must be a string, ignored")
    return None


def _title_from(text: str) -> str:
    """The first line of some text, cut at a word boundary to a title's length."""
    first = next((clean_text(line) for line in text.splitlines() if line.strip()), "")
    if len(first) <= _TITLE_CHARS:
        return first
    cut = first[: _TITLE_CHARS - 1].rsplit(" ", 1)[0] or first[: _TITLE_CHARS - 1]
    return cut.rstrip(" ,;:") + "…"


def _identifier(value: Any, where: str, warnings: list[str]) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        warnings.append(f"{where}: 'id' must be a string, ignored")
        return None
    return str(value) or None


def _authors(item: dict[str, Any], where: str, warnings: list[str]) -> tuple[str, ...]:
    """`authors` (1.1, a list of objects) or `author` (1, one object); names only."""
    value = item.get("authors", item.get("author"))
    if value is None:
        return ()
    people = value if isinstance(value, list) else [value]
    if not all(isinstance(p, dict) for p in people):
        warnings.append(f"{where}: 'authors' must be a list of objects, ignored")
        return ()
    names = (p.get("name") for p in people)
    return tuple(clean_text(n) for n in names if isinstance(n, str) and clean_text(n))


def _tags(item: dict[str, Any], where: str, warnings: list[str]) -> tuple[str, ...]:
    value = item.get("tags")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        warnings.append(f"{where}: 'tags' must be a list of strings, ignored")
        return ()
    return tuple(t for t in (clean_text(t) for t in value) if t)


def _day(stamp: str | None, where: str, warnings: list[str]) -> str | None:
    """The calendar day of an RFC 3339 timestamp ("2026-03-11T09:30:00Z")."""
    if not stamp:
        return None
    try:
        return date.fromisoformat(stamp.strip()[:10]).isoformat()
    except ValueError:
        warnings.append(f"{where}: 'date_published' is not an RFC 3339 date, ignored")
        return None
