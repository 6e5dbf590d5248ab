"""Reading input files: format detection and dispatch to one parser per format.

Parsers return plain `ParseResult`s and never touch the database.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

from digest.errors import ParseError
from digest.parsers.dump import find_day_line, paragraphs, parse_dump
from digest.parsers.feeds import parse_feed
from digest.parsers.jsonitems import parse_json_items
from digest.records import ParseResult

FORMATS = ("auto", "dump", "feed", "json")
_MAX_BYTES = 200 * 1024 * 1024
_URL_TIMEOUT = 30


def is_url(location: str) -> bool:
    """True for http(s) locations, which are fetched rather than opened."""
    return location.startswith(("http://", "https://"))


def read_bytes(location: str) -> bytes:
    """Read a file or fetch a URL; every failure becomes a ParseError naming it."""
    if is_url(location):
        return _fetch(location)
    path = Path(location)
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise ParseError("file is larger than 200 MB", path=location)
        return path.read_bytes()
    except FileNotFoundError:
        raise ParseError("no such file", path=location) from None
    except IsADirectoryError:
        raise ParseError("is a directory", path=location) from None
    except PermissionError:
        raise ParseError("permission denied", path=location) from None
    except OSError as exc:
        raise ParseError(f"cannot read: {exc.strerror or exc}", path=location) from None


def _fetch(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "digest/0.1 (+feed reader)"})
    try:
        with urllib.request.urlopen(request, timeout=_URL_TIMEOUT) as response:
            return response.read(_MAX_BYTES)
    except urllib.error.HTTPError as exc:
        raise ParseError(f"HTTP {exc.code} {exc.reason}", path=url) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ParseError(f"cannot fetch: {reason}", path=url) from None


def decode_text(data: bytes, location: str) -> str:
    """UTF-8 text (a BOM is allowed); binary data is refused with a clear reason."""
    if not data.strip():
        raise ParseError("file is empty", path=location)
    if b"\x00" in data[:65536]:
        raise ParseError("binary data, not a text file", path=location)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"not UTF-8 text (bad byte at offset {exc.start})", path=location
        ) from None


def detect_format(data: bytes, location: str) -> str:
    """Sniff the content: XML is a feed, JSON is items, a date line makes a dump."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
    if head.startswith(b"<"):
        return "feed"
    if head.startswith((b"{", b"[")):
        return "json"
    text = decode_text(data, location)
    if find_day_line(paragraphs(text[:4096])) is not None:
        return "dump"
    raise ParseError(
        "unknown format (not a digest dump, RSS/Atom feed or JSON items; see --format)",
        path=location,
    )


def parse_location(
    location: str, *, fmt: str = "auto", given: date | None = None, today: date
) -> ParseResult:
    """Read and parse one file or URL, detecting its format unless `fmt` forces one."""
    if fmt not in FORMATS:
        raise ParseError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    data = read_bytes(location)
    if fmt == "auto":
        if not data.strip():
            raise ParseError("file is empty", path=location)
        fmt = detect_format(data, location)
    if fmt == "feed":
        if not data.strip():
            raise ParseError("file is empty", path=location)
        result = parse_feed(data, path=location)
    elif fmt == "json":
        result = parse_json_items(decode_text(data, location), path=location)
    else:
        result = parse_dump(decode_text(data, location), path=location, given=given, today=today)
    if not result.items and not result.warnings:
        result.warnings.append("no items found")
    return result


def peek_day(location: str, given: date | None, today: date) -> date | None:
    """The day of a dump from its first lines, without parsing it (None if not a dump)."""
    from digest.parsers.dump import parse_day_line, resolve_day

    try:
        with open(location, "rb") as handle:
            head = handle.read(4096).decode("utf-8", "replace")
        found = find_day_line(paragraphs(head))
        if found is None:
            return None
        index, offset = found
        month, day, year = parse_day_line(paragraphs(head)[index].lines[offset])  # type: ignore[misc]
        return resolve_day(month, day, year, given=given, today=today)
    except (OSError, ValueError):
        return None


def expand_paths(locations: list[str]) -> list[str]:
    """Files and URLs as given; a directory stands for its visible files, by name."""
    out: list[str] = []
    for location in locations:
        path = Path(location)
        if not is_url(location) and path.is_dir():
            out.extend(
                str(p)
                for p in sorted(path.rglob("*"))
                if p.is_file() and not any(part.startswith(".") for part in p.parts[-1:])
            )
        else:
            out.append(location)
    return out
