"""Fuzzing the parsers: any input gives items or our own error, never another exception."""

from __future__ import annotations

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
