"""What every parser shares: building a record, so its guarantees hold for all formats.

`make_record` is the one door into `ItemRecord` for parsers: links are checked by
`safe_url` here and text that SQLite cannot store (lone surrogates, which JSON's
`\\ud800` escapes produce) is repaired here, whatever format the item came from.
"""

from __future__ import annotations

import json
import re
from typing import Any

from digest.errors import ParseError
from digest.links import find_arxiv_id, find_doi, safe_url, split_links
from digest.records import ItemRecord

_SURROGATE = re.compile("[\ud800-\udfff]")


def make_record(title: str, abstract: str, *, line: int | None = None, **extra: Any) -> ItemRecord:
    """Build a record from title and abstract, pulling ids and links from the text.

    A `url` that is not an http(s) link is dropped (see `unsafe_link_warning`); the
    code and project links found in the abstract are http(s) only.
    """
    title, abstract = _scrub(title), _scrub(abstract)
    extra = {key: _scrub(value) for key, value in extra.items()}
    code_url, project_urls = split_links(abstract)
    url = safe_url(extra.pop("url", None))
    haystack = f"{url or ''} {abstract}"
    return ItemRecord(
        title=title,
        abstract=abstract,
        url=url,
        arxiv_id=extra.pop("arxiv_id", None) or find_arxiv_id(haystack),
        doi=extra.pop("doi", None) or find_doi(url or ""),
        code_url=safe_url(code_url),
        project_urls=tuple(u for u in project_urls if safe_url(u)),
        line=line,
        **extra,
    )


def unsafe_link_warning(where: str, key: str, value: object) -> str | None:
    """A warning when a link field holds something that is not an http(s) link."""
    if value is None or value == "" or safe_url(value) is not None:
        return None
    shown = str(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"{where}: '{key}' is not an http(s) link, not stored as one: {shown!r}"


def _scrub(value: Any) -> Any:
    """Replace lone surrogates (not encodable as UTF-8) with U+FFFD, in strings and tuples."""
    if isinstance(value, str):
        return value if value.isascii() else _SURROGATE.sub("\ufffd", value)
    if isinstance(value, tuple):
        return tuple(_scrub(v) for v in value)
    return value


def load_json(text: str, path: str, line: int | None = None) -> Any:
    """`json.loads` whose every failure is a ParseError naming the file (and line).

    Deep nesting (`[[[[...` a hundred thousand deep) exhausts Python's recursion
    limit and a 5,000-digit number exceeds its integer conversion limit; both are
    bad input, reported like a syntax error.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = exc.lineno if line is None else line
        raise ParseError(f"invalid JSON: {exc.msg}", path=path, line=where) from None
    except RecursionError:
        raise ParseError("invalid JSON: nested too deeply", path=path, line=line) from None
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string ..."
        reason = str(exc).split(":")[0]
        raise ParseError(f"invalid JSON: {reason}", path=path, line=line) from None
