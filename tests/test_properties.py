"""Fuzzing the parsers: any input gives items or our own error, never another exception."""

from __future__ import annotations

import json
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.errors import ParseError
from digest.parsers import detect_format
from digest.parsers.dump import parse_dump
from digest.parsers.feeds import parse_feed
from digest.parsers.jsonitems import parse_json_items

TODAY = date(2026, 11, 22)
_LINES = st.one_of(
    st.sampled_from(["", " ", "new", "Subscribe", "Mar 11", "Feb 29", "Dec 31, 1999", "\r"]),
    st.text(max_size=300),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINES, max_size=30), st.sampled_from(["\n", "\r\n", "\r"]))
def test_dump_parser_never_raises_anything_else(lines: list[str], newline: str) -> None:
    text = newline.join(lines)
    try:
        result = parse_dump(text, path="fuzz.txt", today=TODAY)
    except ParseError as exc:
        assert str(exc).startswith("fuzz.txt")
        return
    assert result.day is not None and result.day <= TODAY
    for record in result.items:
        assert record.title.strip() == record.title and record.title


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_format_detection_never_raises_anything_else(data: bytes) -> None:
    try:
        assert detect_format(data, "fuzz.bin") in {"feed", "json", "dump"}
    except ParseError as exc:
        assert "fuzz.bin" in str(exc)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_feed_parser_never_raises_anything_else(data: bytes) -> None:
    try:
        result = parse_feed(b"<rss>" + data, path="fuzz.xml")
    except ParseError:
        return
    assert all(r.title for r in result.items)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_json_parser_never_raises_anything_else(text: str) -> None:
    try:
        result = parse_json_items(text, path="fuzz.jsonl")
    except ParseError:
        return
    assert all(r.title for r in result.items)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_any_search_text_is_a_list_never_a_query_error(tmp_path_factory, text: str) -> None:
    from digest.store import Store

    with Store.open(tmp_path_factory.mktemp("fts") / "d.db") as store:
        assert isinstance(store.items(search=text), list)


# -- several days in one dump, header lines anywhere ----------------------------------------

_HEADERS = ["new", "Subscribe", "Daily Papers", "byAK and the research community"]
_TITLE = st.from_regex(r"[A-Z][a-z]{2,9}( [A-Za-z][a-z]{1,9}){1,6}", fullmatch=True).filter(
    lambda t: t.lower() not in {h.lower() for h in _HEADERS}
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dates(min_value=date(2020, 1, 1), max_value=TODAY),
            st.lists(_TITLE, min_size=0, max_size=4),
        ),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.sampled_from(_HEADERS), max_size=3),
    st.randoms(use_true_random=False),
)
def test_every_item_keeps_the_day_of_the_date_line_above_it(days, headers, rng) -> None:
    lines: list[str] = list(headers)
    expected: list[tuple[str, date]] = []
    for day, titles in days:
        lines += [day.strftime("%B %d, %Y"), ""]
        for title in titles:
            lines += [title, ""]
            if rng.random() < 0.5:
                lines += [rng.choice(_HEADERS), ""]  # chrome between items
            expected.append((title, day))
    result = parse_dump("\n".join(lines), path="days.txt", today=TODAY)
    assert [(r.title, r.day) for r in result.items] == expected
    assert result.day == days[0][0]


# -- encodings and JSON Feed ----------------------------------------------------------------

_BOMS = [b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_BOMS), st.binary(max_size=300))
def test_decoding_any_bytes_is_text_or_a_parse_error(bom: bytes, data: bytes) -> None:
    from digest.parsers import decode_text

    try:
        text = decode_text(bom + data, "fuzz.bin")
    except ParseError as exc:
        assert str(exc).startswith("fuzz.bin: ") and "\n" not in str(exc)
        return
    assert "\x00" not in text and text.strip()


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=40),
)
def test_json_items_read_the_same_in_every_unicode_encoding(codec: str, title: str) -> None:
    from digest.parsers import parse_bytes
    from digest.text import clean_text

    data = json.dumps([{"title": title}]).encode(codec)
    try:
        result = parse_bytes(data, "items.json", today=TODAY)
    except ParseError:
        assert not clean_text(title)  # only a blank title is refused
        return
    assert [r.title for r in result.items] == [clean_text(title)]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
_ITEM_KEYS = ["id", "url", "external_url", "title", "content_text", "content_html", "summary"]
_ITEM = (
    st.dictionaries(
        st.sampled_from([*_ITEM_KEYS, "date_published", "authors", "author", "tags"]), _JSON
    )
    | _JSON
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_ITEM, max_size=5))
def test_json_feed_parser_never_raises_and_never_stores_a_bad_link(items: list) -> None:
    from digest.links import safe_url
    from digest.parsers.jsonfeed import parse_json_feed_document

    doc = {"version": "https://jsonfeed.org/version/1.1", "items": items}
    result = parse_json_feed_document(doc, path="feed.json")
    assert len(result.items) <= len(items)
    for record in result.items:
        assert record.title and record.title == record.title.strip()
        assert record.url is None or safe_url(record.url) == record.url
