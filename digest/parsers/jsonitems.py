"""The generic import format: a JSON array (or {"items": [...]}) or JSON Lines.

Fields: id, title, abstract (or summary), url, authors, tags, published, doi.
A JSON Feed document (https://jsonfeed.org) is recognised by its `version` and read
by `digest.parsers.jsonfeed` instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from digest.errors import ParseError
from digest.links import find_arxiv_id, find_doi
from digest.parsers.common import load_json, make_record, unsafe_link_warning
from digest.parsers.jsonfeed import is_json_feed, parse_json_feed_document
from digest.records import ItemRecord, ParseResult
from digest.text import clean_text

#: A row is numbered by its line (JSON Lines) or its position in the array.
_Row = tuple[int | None, int, Any]


def parse_json_items(text: str, *, path: str = "<json>") -> ParseResult:
    """Parse a JSON document or JSON Lines; any bad row fails the file, naming it."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        rows = _numbered(load_json(text, path))
    elif stripped.startswith("{") and (doc := _single_document(text, path)) is not None:
        if is_json_feed(doc):
            return parse_json_feed_document(doc, path=path)
        items = doc.get("items") if isinstance(doc, dict) else None
        rows = _numbered(items) if isinstance(items, list) else [(1, 1, doc)]
    else:
        rows = list(_json_lines(text, path))
    result = ParseResult(path=path, format="json")
    for line, index, row in rows:
        result.items.append(item_from_json(row, path=path, line=line, index=index))
        where = f"line {line}" if line is not None else f"item {index}"
        warning = unsafe_link_warning(where, "url", row.get("url"))
        if warning:
            result.warnings.append(warning)
    return result


def _single_document(text: str, path: str) -> Any | None:
    """The document when the whole text is one JSON value; None when it is JSON Lines."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None  # read line by line, so that an error names its line
    except (ValueError, RecursionError):
        return load_json(text, path)  # too deep, or too long a number: raises, explained


def _numbered(rows: Any) -> list[_Row]:
    if not isinstance(rows, list):
        return [(None, 1, rows)]
    return [(None, index, row) for index, row in enumerate(rows, start=1)]


def _json_lines(text: str, path: str) -> Iterator[_Row]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, number, load_json(line, path, line=number)


def item_from_json(
    row: Any, *, path: str, line: int | None, index: int | None = None
) -> ItemRecord:
    """Validate one JSON object and turn it into a record."""

    def fail(reason: str) -> ParseError:
        prefix = f"item {index}: " if line is None and index is not None else ""
        return ParseError(prefix + reason, path=path, line=line)

    if not isinstance(row, dict):
        raise fail("expected a JSON object per item")
    title = row.get("title")
    if not isinstance(title, str) or not clean_text(title):
        raise fail("item has no 'title'")
    abstract = row.get("abstract", row.get("summary", "")) or ""
    strings = {"abstract": abstract, "url": row.get("url"), "published": row.get("published")}
    strings["doi"] = row.get("doi")
    for key, value in strings.items():
        if value is not None and not isinstance(value, str):
            raise fail(f"'{key}' must be a string")
    external_id = _identifier(row.get("id"), fail)
    url = strings["url"] or None
    return make_record(
        clean_text(title),
        clean_text(abstract),
        url=url,
        arxiv_id=find_arxiv_id(f"{external_id or ''} {url or ''}") or _bare_arxiv(external_id),
        doi=find_doi(strings["doi"] or "") or find_doi(url or ""),
        authors=_string_list(row.get("authors"), "authors", fail),
        tags=_string_list(row.get("tags"), "tags", fail),
        published=strings["published"] or None,
        external_id=external_id,
        line=line,
    )


def _identifier(value: Any, fail) -> str | None:
    """An `id` is a string or a number; anything else (an object, a list) is refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise fail("'id' must be a string or a number")
    return str(value)


def _bare_arxiv(ident: str | None) -> str | None:
    """An `id` field that is itself an arXiv id ("2401.12345v2")."""
    return find_arxiv_id(f"arXiv:{ident}") if ident else None


def _string_list(value: Any, key: str, fail) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",") if key == "authors" else [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(f"'{key}' must be a list of strings")
    return tuple(v for v in (clean_text(v) for v in value) if v)
