"""The generic import format: a JSON array (or {"items": [...]}) or JSON Lines.

Fields: id, title, abstract (or summary), url, authors, tags, published.
"""

from __future__ import annotations

import json
from typing import Any

from digest.errors import ParseError
from digest.links import find_arxiv_id, find_doi
from digest.parsers.dump import make_record
from digest.records import ItemRecord, ParseResult
from digest.text import clean_text

KNOWN_FIELDS = frozenset(
    {"id", "title", "abstract", "summary", "url", "authors", "tags", "published", "doi"}
)


def parse_json_items(text: str, *, path: str = "<json>") -> ParseResult:
    """Parse a JSON document or JSON Lines; any bad row fails the file with its line."""
    stripped = text.lstrip()
    result = ParseResult(path=path, format="json")
    if stripped.startswith("["):
        rows = _load_document(text, path)
        numbered = [(None, row) for row in rows]
    elif stripped.startswith("{") and _is_single_document(text):
        doc = _load_document(text, path)
        rows = doc.get("items") if isinstance(doc, dict) else None
        numbered = [(None, row) for row in rows] if isinstance(rows, list) else [(1, doc)]
    else:
        numbered = list(_json_lines(text, path))
    for line, row in numbered:
        result.items.append(item_from_json(row, path=path, line=line))
    return result


def _is_single_document(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _load_document(text: str, path: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None


def _json_lines(text: str, path: str):
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ParseError(f"invalid JSON: {exc.msg}", path=path, line=number) from None


def item_from_json(row: Any, *, path: str, line: int | None) -> ItemRecord:
    """Validate one JSON object and turn it into a record."""
    if not isinstance(row, dict):
        raise ParseError("expected a JSON object per item", path=path, line=line)
    title = row.get("title")
    if not isinstance(title, str) or not clean_text(title):
        raise ParseError("item has no 'title'", path=path, line=line)
    abstract = row.get("abstract", row.get("summary", "")) or ""
    url = row.get("url")
    for key, value in (("abstract", abstract), ("url", url), ("published", row.get("published"))):
        if value is not None and not isinstance(value, str):
            raise ParseError(f"'{key}' must be a string", path=path, line=line)
    ident = row.get("id")
    external_id = None if ident is None else str(ident)
    return make_record(
        clean_text(title),
        clean_text(abstract),
        url=url or None,
        arxiv_id=find_arxiv_id(f"{external_id or ''} {url or ''}") or _bare_arxiv(external_id),
        doi=find_doi(str(row.get("doi") or "")) or find_doi(url or ""),
        authors=_string_list(row.get("authors"), "authors", path, line),
        tags=_string_list(row.get("tags"), "tags", path, line),
        published=row.get("published") or None,
        external_id=external_id,
        line=line,
    )


def _bare_arxiv(ident: str | None) -> str | None:
    """An `id` field that is itself an arXiv id ("2401.12345v2")."""
    return find_arxiv_id(f"arXiv:{ident}") if ident else None


def _string_list(value: Any, key: str, path: str, line: int | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",") if key == "authors" else [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ParseError(f"'{key}' must be a list of strings", path=path, line=line)
    return tuple(v for v in (clean_text(v) for v in value) if v)
