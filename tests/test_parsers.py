"""Fixture files state their expected result; one parametrized test per format reads them."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from conftest import FIXTURES, TODAY

from digest.errors import ParseError
from digest.parsers import parse_location, read_text
from digest.records import ItemRecord, ParseResult


def _cases(folder: str, pattern: str) -> list[Path]:
    return sorted((FIXTURES / folder).glob(pattern))


def _check_item(record: ItemRecord, expected: dict) -> None:
    for key, value in expected.items():
        if key == "abstract_startswith":
            assert record.abstract.startswith(value), record.abstract
        else:
            actual = getattr(record, key)
            if isinstance(actual, tuple):
                actual = list(actual)
            if isinstance(actual, date):
                actual = actual.isoformat()
            assert actual == value, f"{key}: {actual!r} != {value!r}"


def _check_result(result: ParseResult, expected: dict) -> None:
    """Items in order; the warnings and source name when the fixture states them."""
    assert len(result.items) == len(expected["items"]), [r.title for r in result.items]
    for record, want in zip(result.items, expected["items"], strict=True):
        _check_item(record, want)
    if "warnings" in expected:
        assert len(result.warnings) == len(expected["warnings"]), result.warnings
        for warning, want in zip(result.warnings, expected["warnings"], strict=True):
            assert warning.startswith(want), warning
    if "source_name" in expected:
        assert result.source_name == expected["source_name"]


def _expected(path: Path) -> dict:
    stem = path.name.split(".")[0]
    return json.loads((path.parent / f"{stem}.expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", _cases("dumps", "*.txt"), ids=lambda p: p.name)
def test_dump_fixtures(path: Path) -> None:
    expected = _expected(path)
    result = parse_location(str(path), today=TODAY)
    assert result.format == "dump"
    assert result.day.isoformat() == expected["day"]
    _check_result(result, expected)


@pytest.mark.parametrize(
    "path",
    _cases("feeds", "*.xml") + [p for p in _cases("feeds", "*.json") if ".expected." not in p.name],
    ids=lambda p: p.name,
)
def test_feed_fixtures(path: Path) -> None:
    """RSS/Atom in any Unicode encoding feedparser reads, and JSON Feed 1 and 1.1."""
    expected = _expected(path)
    result = parse_location(str(path), today=TODAY)
    assert result.format == "feed"
    assert bool(result.warnings) == expected["bozo"], result.warnings
    _check_result(result, expected)


@pytest.mark.parametrize(
    "path",
    [p for p in _cases("json", "*.json*") if ".expected." not in p.name],
    ids=lambda p: p.name,
)
def test_json_fixtures(path: Path) -> None:
    expected = _expected(path)
    result = parse_location(str(path), today=TODAY)
    assert result.format == "json"
    _check_result(result, expected)


BAD = json.loads((FIXTURES / "bad" / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(BAD), ids=str)
def test_bad_inputs_raise_one_clear_error(name: str) -> None:
    filename, _, line = name.partition(":")
    with pytest.raises(ParseError) as info:
        parse_location(str(FIXTURES / "bad" / filename), today=TODAY)
    message = str(info.value)
    assert BAD[name] in message
    assert filename in message
    assert "\n" not in message
    if line:
        assert info.value.line == int(line)


def test_missing_and_directory_paths(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="no such file"):
        parse_location(str(tmp_path / "nope.txt"), today=TODAY)
    with pytest.raises(ParseError, match="is a directory"):
        parse_location(str(tmp_path), today=TODAY)


def test_forced_format_overrides_detection() -> None:
    path = FIXTURES / "dumps" / "crlf.txt"
    with pytest.raises(ParseError, match="not a readable feed"):
        parse_location(str(path), fmt="feed", today=TODAY)


def test_yearless_date_takes_year_from_given_date() -> None:
    path = FIXTURES / "dumps" / "crlf.txt"
    result = parse_location(str(path), given=date(2024, 1, 5), today=TODAY)
    assert result.day == date(2024, 3, 11)


def test_yearless_date_is_most_recent_not_after_today() -> None:
    from digest.parsers.dump import resolve_day

    assert resolve_day(12, 30, None, given=None, today=date(2026, 1, 2)) == date(2025, 12, 30)
    assert resolve_day(1, 2, None, given=None, today=date(2026, 1, 2)) == date(2026, 1, 2)
    assert resolve_day(2, 29, None, given=None, today=date(2026, 3, 1)) == date(2024, 2, 29)


# -- dumps holding several days -----------------------------------------------------------


def test_date_lines_out_of_order_each_keep_their_day() -> None:
    from digest.parsers.dump import parse_dump

    text = "Mar 12\n\nLater Day Paper\n\nMar 11\n\nEarlier Day Paper\n\nMar 12\n\nLater Again\n"
    result = parse_dump(text, path="pasted.txt", today=TODAY)
    assert [(r.title, r.day.isoformat()) for r in result.items] == [
        ("Later Day Paper", "2026-03-12"),
        ("Earlier Day Paper", "2026-03-11"),
        ("Later Again", "2026-03-12"),
    ]
    assert result.day == date(2026, 3, 12)  # the first date line


def test_an_impossible_second_date_line_names_its_line() -> None:
    from digest.parsers.dump import parse_dump

    with pytest.raises(ParseError, match="not a valid day") as info:
        parse_dump("Mar 11\n\nA Paper\n\nFeb 30\n\nAnother\n", path="d.txt", today=TODAY)
    assert info.value.line == 5


def test_a_title_before_the_first_date_line_is_still_an_error() -> None:
    from digest.parsers.dump import parse_dump

    with pytest.raises(ParseError, match="no date line") as info:
        parse_dump("new\n\nA Title First\n\nMar 11\n\nA Paper\n", path="d.txt", today=TODAY)
    assert info.value.path == "d.txt"


@pytest.mark.parametrize(
    "header",
    [
        "new",
        "Subscribe",
        "Daily Papers",
        "NEW",
        "  subscribe  ",
        "byAK and the research community",
        "by AK and the research community",
        "Get trending papers in your email inbox",
        "Get trending papers in your email inbox!",
    ],
)
def test_header_lines_are_never_items(header: str) -> None:
    from digest.parsers.dump import parse_dump

    text = f"{header}\nMar 11\n{header}\n\nOne\n\n{header}\n\nTwo\n{header}\n\n{header}\n"
    result = parse_dump(text, path="d.txt", today=TODAY)
    assert [r.title for r in result.items] == ["One", "Two"]


# -- encodings ------------------------------------------------------------------------------

WIDE = [
    ("utf-16", b""),  # Python writes a BOM
    ("utf-16-le", b"\xff\xfe"),
    ("utf-16-be", b"\xfe\xff"),
    ("utf-32", b""),
    ("utf-32-be", b"\x00\x00\xfe\xff"),
    ("utf-16-le", b""),  # no BOM: told apart by the zero bytes of ASCII characters
    ("utf-32-be", b""),
]


@pytest.mark.parametrize("codec,bom", WIDE, ids=lambda v: str(v))
def test_wide_unicode_dumps_and_json_are_read(tmp_path: Path, codec: str, bom: bytes) -> None:
    dump = tmp_path / "dump.txt"
    dump.write_bytes(bom + (FIXTURES / "dumps" / "unicode_tex_urls.txt").read_text().encode(codec))
    result = parse_location(str(dump), today=TODAY)
    assert result.format == "dump"
    assert [r.title for r in result.items][1] == "Naïve Bayes Is Not Dead: Ünïcödé Titles Survive"
    items = tmp_path / "items.jsonl"
    items.write_bytes(bom + '{"title": "Ωmega JSON"}\n'.encode(codec))
    assert [r.title for r in parse_location(str(items), today=TODAY).items] == ["Ωmega JSON"]


@pytest.mark.parametrize("codec,bom", [*WIDE, ("utf-8", b""), ("utf-8", b"\xef\xbb\xbf")])
def test_read_text_decodes_like_the_parsers(tmp_path: Path, codec: str, bom: bytes) -> None:
    """Plain text inputs (a `--candidates` file of ids) follow the parsers' rule."""
    path = tmp_path / "ids.txt"
    path.write_bytes(bom + "# picks\np1\nÜ2\n".encode(codec))
    assert read_text(str(path)).splitlines() == ["# picks", "p1", "Ü2"]  # no BOM left


@pytest.mark.parametrize(
    "data,reason",
    [
        ("é".encode("latin-1") * 4, "not UTF-8 text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)), "binary data"),
        (b"", "file is empty"),
    ],
)
def test_read_text_refuses_what_the_parsers_refuse(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    path = tmp_path / "ids.txt"
    path.write_bytes(data)
    with pytest.raises(ParseError, match=f"ids.txt: {reason}"):
        read_text(str(path))
    with pytest.raises(ParseError, match="no such file"):
        read_text(str(tmp_path / "missing.txt"))


def test_truncated_utf16_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.txt"
    path.write_bytes(b"\xff\xfe" + "Mar 11\n\nTitle\n".encode("utf-16-le") + b"\x41")
    with pytest.raises(ParseError, match=r"cut\.txt: not UTF-8 or UTF-16-LE text"):
        parse_location(str(path), today=TODAY)


def test_binary_data_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(ParseError, match="binary data"):
        parse_location(str(path), today=TODAY)


# -- JSON Feed ------------------------------------------------------------------------------

JSON_FEED = FIXTURES / "feeds" / "jsonfeed_1.json"


@pytest.mark.parametrize("fmt", ["auto", "feed", "json"])
def test_json_feed_is_read_as_a_feed_whatever_the_format_flag(fmt: str) -> None:
    result = parse_location(str(JSON_FEED), fmt=fmt, today=TODAY)
    assert result.format == "feed"
    assert [r.title for r in result.items] == ["Version One Item"]


def test_json_feed_in_utf16_is_read(tmp_path: Path) -> None:
    path = tmp_path / "feed.json"
    path.write_bytes(JSON_FEED.read_text().encode("utf-16"))
    assert [r.title for r in parse_location(str(path), today=TODAY).items] == ["Version One Item"]


def test_json_feed_without_items_and_plain_json_as_feed_fail_clearly(tmp_path: Path) -> None:
    no_items = tmp_path / "empty_feed.json"
    no_items.write_text('{"version": "https://jsonfeed.org/version/1.1", "title": "x"}')
    with pytest.raises(ParseError, match=r"empty_feed\.json: JSON Feed has no 'items' list"):
        parse_location(str(no_items), today=TODAY)
    plain = FIXTURES / "json" / "array.json"
    with pytest.raises(ParseError, match="JSON without a JSON Feed 'version'"):
        parse_location(str(plain), fmt="feed", today=TODAY)


def test_json_items_without_title_still_fail_unless_a_json_feed(tmp_path: Path) -> None:
    """The JSON item list keeps its strict rule; only JSON Feed items may lack a title."""
    path = tmp_path / "items.json"
    path.write_text('{"items": [{"url": "https://example.org/x", "summary": "Only this."}]}')
    with pytest.raises(ParseError, match="item 1: item has no 'title'"):
        parse_location(str(path), today=TODAY)


# -- JSON that Python's own parser chokes on ------------------------------------------------

DEEP = 100_000


@pytest.mark.parametrize(
    "name,text",
    [
        ("array.json", "[" * DEEP + "]" * DEEP),
        ("title.json", '{"items": [{"title": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}]}"),
        ("lines.jsonl", '{"title": "fine"}\n' + "[" * DEEP + "]" * DEEP + "\n"),
        ("bigint.jsonl", '{"title": "x", "id": ' + "9" * 5000 + "}\n"),
    ],
)
def test_json_that_exhausts_python_limits_is_a_parse_error(
    tmp_path: Path, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ParseError, match="invalid JSON") as info:
        parse_location(str(path), today=TODAY)
    assert name in str(info.value)
    if name == "lines.jsonl":
        assert info.value.line == 2


@pytest.mark.parametrize(
    "row,reason",
    [
        ('{"title": "x", "id": {"nested": [1, 2]}}', "'id' must be a string or a number"),
        ('{"title": "x", "doi": ["10.1/x"]}', "'doi' must be a string"),
        ('{"title": "x", "id": true}', "'id' must be a string or a number"),
    ],
)
def test_json_fields_of_the_wrong_type_name_their_key(
    tmp_path: Path, row: str, reason: str
) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"title": "fine"}\n' + row + "\n")
    with pytest.raises(ParseError, match=reason) as info:
        parse_location(str(path), today=TODAY)
    assert info.value.line == 2


def test_lone_surrogates_from_json_escapes_become_replacement_characters(tmp_path: Path) -> None:
    path = tmp_path / "surrogates.jsonl"
    path.write_text(
        '{"title": "Bad \\ud800 escape", "authors": ["\\udfff Ann"], "id": "\\ud83d"}\n'
    )
    record = parse_location(str(path), today=TODAY).items[0]
    assert record.title == "Bad \ufffd escape"
    assert record.authors == ("\ufffd Ann",)
    assert record.external_id == "\ufffd"
    record.title.encode("utf-8")  # storable


# -- locations that cannot be read ----------------------------------------------------------


@pytest.mark.parametrize(
    "location,reason",
    [
        ("", "empty path"),
        ("   ", "empty path"),
        ("\t\n", "empty path"),
        ("bad\x00name.txt", "NUL byte"),
        ("http://[::1", "not a valid URL: Invalid IPv6 URL"),
        ("http://[::1/feed", "not a valid URL"),
        ("http://exa mple.com/feed", "not a valid URL: spaces"),
        ("https://example.com/a\nb", "not a valid URL"),
        ("http://example.com:99999/", "not a valid URL: Port out of range"),
        ("http://example.com:port/", "not a valid URL"),
        ("http:///no-host", "not a valid URL: no host name"),
        ("HTTP://", "not a valid URL"),
    ],
)
def test_unreadable_locations_are_one_line_parse_errors(location: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason) as info:
        parse_location(location, today=TODAY)
    assert "\n" not in str(info.value)


class _MisbehavingServer(http.server.BaseHTTPRequestHandler):
    """Answers that break HTTP or lead away from it."""

    def do_GET(self) -> None:
        if self.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(b"<rss version='2.0'><channel>")  # then hangs up
        elif self.path.startswith("/redirect-"):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/redirect-").replace("~", "/"))
            self.end_headers()
        else:
            self.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def misbehaving() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MisbehavingServer)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "path,reason",
    [
        ("/truncated", "cannot fetch: connection closed after 28 of 5000 bytes"),
        ("/redirect-file:~~~etc~passwd", "Redirection to url 'file:///etc/passwd' is not allowed"),
        ("/redirect-ftp:~~127.0.0.1~x", "cannot fetch: unknown url type: ftp"),
        ("/bad-status", "cannot fetch: BadStatusLine"),
    ],
)
def test_servers_that_break_http_are_parse_errors(misbehaving: str, path: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason) as info:
        parse_location(misbehaving + path, today=TODAY)
    assert str(info.value).startswith(misbehaving + path)
    assert "root:" not in str(info.value)


def test_feedparser_failures_are_parse_errors(tmp_path: Path) -> None:
    """feedparser raises ValueError for an encoding name holding a NUL byte."""
    path = tmp_path / "nul-encoding.xml"
    path.write_bytes(b'<?xml version="1.0" encoding="\x00TF-8"?>\n<rss><channel></channel></rss>')
    with pytest.raises(ParseError, match="not a readable feed: ValueError"):
        parse_location(str(path), today=TODAY)
