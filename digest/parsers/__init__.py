"""Reading input files: format detection and dispatch to one parser per format.

Parsers return plain `ParseResult`s and never touch the database. Everything that
can go wrong while reading an input (a bad path or URL, bytes in an unexpected
encoding, malformed content) surfaces here as a `ParseError` naming the input.
"""

from __future__ import annotations

import http.client
import re
import sys
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from digest.errors import ParseError
from digest.links import safe_url
from digest.parsers.dump import find_day_line, paragraphs, parse_day_line, parse_dump, resolve_day
from digest.parsers.feeds import parse_feed
from digest.parsers.jsonfeed import parse_json_feed
from digest.parsers.jsonitems import parse_json_items
from digest.records import ParseResult

FORMATS = ("auto", "dump", "feed", "json")
#: The location that means standard input, and how messages name it.
STDIN = "-"
STDIN_NAME = "<stdin>"
_MAX_BYTES = 200 * 1024 * 1024
_URL_TIMEOUT = 30
_HEAD = 4096

# Byte-order marks, longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)
_ASCII = rb"[\t\n\r\x20-\x7e]"
# Without a mark, the first two characters (ASCII, such as "<?" or "{\n") show the
# width and byte order by where their zero bytes fall (XML 1.0, appendix F).
_UNMARKED = (
    (re.compile(rb"\x00\x00\x00" + _ASCII + rb"\x00\x00\x00" + _ASCII), "utf-32-be"),
    (re.compile(_ASCII + rb"\x00\x00\x00" + _ASCII + rb"\x00\x00\x00"), "utf-32-le"),
    (re.compile(rb"\x00" + _ASCII + rb"\x00" + _ASCII), "utf-16-be"),
    (re.compile(_ASCII + rb"\x00" + _ASCII + rb"\x00"), "utf-16-le"),
)
_XML_ENCODING = re.compile(rb"^(<\?xml[^>]*?encoding\s*=\s*)([\"'])[^\"']*\2")


def is_url(location: str) -> bool:
    """True for http(s) locations, which are fetched rather than opened."""
    return location[:8].lower().startswith(("http://", "https://"))


def display_name(location: str) -> str:
    """How messages name an input: as given, or quoted when it holds odd characters.

    Keeps every error message on one line, whatever a file name or argument holds.
    """
    if location == STDIN:
        return STDIN_NAME
    return location if location.isprintable() and location.strip() else repr(location)


def read_bytes(location: str) -> bytes:
    """Read a file, fetch a URL or read standard input (`-`); failures are ParseErrors.

    An empty or all-space location (an unset shell variable) is refused rather than
    taken for the current folder.
    """
    name = display_name(location)
    if not location.strip():
        raise ParseError("empty path (an unset shell variable?); nothing read", path=name)
    if is_url(location):
        return _fetch(location)
    if location == STDIN:
        return read_stream(sys.stdin.buffer, name)
    try:
        with open(location, "rb") as handle:
            return read_stream(handle, name)
    except FileNotFoundError:
        raise ParseError("no such file", path=name) from None
    except IsADirectoryError:
        raise ParseError("is a directory", path=name) from None
    except PermissionError:
        raise ParseError("permission denied", path=name) from None
    except OSError as exc:
        raise ParseError(f"cannot read: {exc.strerror or exc}", path=name) from None
    except ValueError:
        raise ParseError("not a usable path (it contains a NUL byte)", path=name) from None


def read_stream(handle: BinaryIO, name: str) -> bytes:
    """All bytes of an open file or pipe, refusing more than 200 MB."""
    data = handle.read(_MAX_BYTES + 1)
    if len(data) > _MAX_BYTES:
        raise ParseError("input is larger than 200 MB", path=name)
    return data


def _fetch(url: str) -> bytes:
    problem = _url_problem(url)
    if problem:
        raise ParseError(f"not a valid URL: {problem}", path=display_name(url))
    request = urllib.request.Request(url, headers={"User-Agent": "digest/0.1 (+feed reader)"})
    try:
        with _OPENER.open(request, timeout=_URL_TIMEOUT) as response:
            data = read_stream(response, url)
            missing = getattr(response, "length", None)  # bytes promised but never sent
    except urllib.error.HTTPError as exc:
        raise ParseError(f"HTTP {exc.code} {exc.reason}", path=url) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ParseError(f"cannot fetch: {reason}", path=url) from None
    except (http.client.HTTPException, ValueError) as exc:
        # A server that breaks the protocol (a truncated body, a bad status line)
        # or redirects to an unusable URL.
        reason = f"{type(exc).__name__} {exc}".strip()
        raise ParseError(f"cannot fetch: {reason}", path=url) from None
    if missing:
        total = len(data) + missing
        raise ParseError(
            f"cannot fetch: connection closed after {len(data)} of {total} bytes", path=url
        )
    return data


def _url_problem(url: str) -> str | None:
    """Why a URL argument cannot be fetched, or None when it can."""
    if safe_url(url) is not None:
        return None
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return str(exc)
    if not parts.hostname:
        return "no host name"
    return "spaces, quotes and control characters are not allowed in a URL"


def _opener() -> urllib.request.OpenerDirector:
    """HTTP(S) only: a redirect to ftp:// or file:// fails instead of being followed."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.UnknownHandler(),
    ):
        opener.add_handler(handler)
    return opener


_OPENER = _opener()


def sniff_encoding(data: bytes) -> tuple[str, int] | None:
    """(codec, length of its byte-order mark) for UTF-8 with a mark and UTF-16/32.

    None means no mark and no sign of UTF-16/32: the text is UTF-8 or not text.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec, len(bom)
    for pattern, codec in _UNMARKED:
        if pattern.match(data):
            return codec, 0
    return None


def decode_text(data: bytes, location: str, *, rows: bool = False) -> str:
    """Text in UTF-8 (a BOM is allowed) or UTF-16/32; binary data is refused clearly.

    With `rows`, a NUL character anywhere in text that decodes is left for the caller:
    a row-based file (feedback) reports the rows holding one and keeps the others.
    Bytes that do not decode are binary data when a NUL is among the first 64 KiB.
    """
    sniffed = sniff_encoding(data)
    codec, skip = sniffed or ("utf-8", 0)
    looks_binary = sniffed is None and b"\x00" in data[:65536]
    if looks_binary and not rows:
        raise ParseError("binary data, not a text file", path=location)
    try:
        text = data[skip:].decode(codec)
    except UnicodeDecodeError as exc:
        if looks_binary:
            raise ParseError("binary data, not a text file", path=location) from None
        name = "UTF-8" if codec == "utf-8" else f"UTF-8 or {codec.upper()}"
        offset = exc.start + skip
        raise ParseError(f"not {name} text (bad byte at offset {offset})", path=location) from None
    if "\x00" in text and not rows:
        raise ParseError("binary data, not a text file", path=location)
    if not text.strip():
        raise ParseError("file is empty", path=location)
    return text


def read_text(location: str) -> str:
    """The text of a file (or `-`, standard input) under the one decoding rule inputs share.

    UTF-8 with or without a BOM, or UTF-16/32 (see `decode_text`); anything else is a
    ParseError naming the file. For every text input that is not parsed as items, such
    as a `--candidates` list of ids.
    """
    name = display_name(location)
    return decode_text(read_bytes(location), name)


def _head_text(data: bytes) -> str:
    """The first few thousand characters, decoded leniently, for sniffing only."""
    codec, skip = sniff_encoding(data) or ("utf-8", 0)
    return data[skip : skip + _HEAD].decode(codec, "replace")


def detect_format(data: bytes, location: str) -> str:
    """Sniff the content: XML is a feed, JSON is items (or a JSON Feed), a date line a dump."""
    start = _head_text(data).lstrip("\ufeff \t\r\n")[:1]
    if start == "<":
        return "feed"
    if start in ("{", "["):
        return "json"
    text = decode_text(data, location)
    if find_day_line(paragraphs(text[:_HEAD])) is not None:
        return "dump"
    raise ParseError(
        "unknown format (not a digest dump, RSS/Atom/JSON feed or JSON items; see --format)",
        path=location,
    )


def parse_bytes(
    data: bytes, location: str, *, fmt: str = "auto", given: date | None = None, today: date
) -> ParseResult:
    """Parse the bytes of one input, detecting its format unless `fmt` forces one."""
    if fmt not in FORMATS:
        raise ParseError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    name = display_name(location)
    if not data.strip():
        raise ParseError("file is empty", path=name)
    if fmt == "auto":
        fmt = detect_format(data, name)
    if fmt == "feed":
        result = _parse_any_feed(data, name)
    elif fmt == "json":
        result = parse_json_items(decode_text(data, name), path=name)
    else:
        result = parse_dump(decode_text(data, name), path=name, given=given, today=today)
    if not result.items and not result.warnings:
        result.warnings.append("no items found")
    return result


def parse_location(
    location: str, *, fmt: str = "auto", given: date | None = None, today: date
) -> ParseResult:
    """Read and parse one file or URL, detecting its format unless `fmt` forces one."""
    return parse_bytes(read_bytes(location), location, fmt=fmt, given=given, today=today)


def _parse_any_feed(data: bytes, name: str) -> ParseResult:
    """RSS/Atom through feedparser, or a JSON Feed."""
    if _head_text(data).lstrip("\ufeff \t\r\n")[:1] in ("{", "["):
        return parse_json_feed(decode_text(data, name), path=name)
    return parse_feed(_as_utf8_xml(data), path=name)


def _as_utf8_xml(data: bytes) -> bytes:
    """UTF-16/32 XML re-encoded as UTF-8, its declaration saying so.

    feedparser reads UTF-16/32 with a byte-order mark or a declaration, but not
    without both; transcoding first makes every such feed readable the same way.
    """
    sniffed = sniff_encoding(data)
    if sniffed is None or sniffed[0] == "utf-8":
        return data
    codec, skip = sniffed
    try:
        text = data[skip:].decode(codec)
    except UnicodeDecodeError:
        return data  # let feedparser read what it can and report the fault
    return _XML_ENCODING.sub(rb'\1"utf-8"', text.encode("utf-8"), count=1)


def peek_day(
    location: str, given: date | None, today: date, data: bytes | None = None
) -> date | None:
    """The first day of a dump from its first lines, without parsing it (None if not a dump).

    `data` is the input's bytes when already read (standard input, a pipe).
    """
    try:
        if data is None:
            with open(location, "rb") as handle:
                data = handle.read(_HEAD)
        paras = paragraphs(_head_text(data))
        found = find_day_line(paras)
        if found is None:
            return None
        index, offset = found
        month, day, year = parse_day_line(paras[index].lines[offset])  # type: ignore[misc]
        return resolve_day(month, day, year, given=given, today=today)
    except (OSError, ValueError):
        return None


def expand_paths(locations: list[str]) -> list[str]:
    """Files and URLs as given; a directory stands for its visible files, by name.

    An empty location and `-` stay as they are: reading refuses the first and takes
    standard input for the second.
    """
    out: list[str] = []
    for location in locations:
        special = not location.strip() or location == STDIN or is_url(location)
        path = Path(location)
        if not special and path.is_dir():
            out.extend(
                str(p)
                for p in sorted(path.rglob("*"))
                if p.is_file() and not any(part.startswith(".") for part in p.parts[-1:])
            )
        else:
            out.append(location)
    return out
