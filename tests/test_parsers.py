"""Fixture files state their expected result; one parametrized test per format reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURES, TODAY

from digest.errors import ParseError
from digest.parsers import parse_location
from digest.records import ItemRecord


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
            assert actual == value, f"{key}: {actual!r} != {value!r}"


def _expected(path: Path) -> dict:
    stem = path.name.split(".")[0]
    return json.loads((path.parent / f"{stem}.expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", _cases("dumps", "*.txt"), ids=lambda p: p.name)
def test_dump_fixtures(path: Path) -> None:
    expected = _expected(path)
    result = parse_location(str(path), today=TODAY)
    assert result.format == "dump"
    assert result.day.isoformat() == expected["day"]
    assert len(result.items) == len(expected["items"])
    for record, want in zip(result.items, expected["items"], strict=True):
        _check_item(record, want)


@pytest.mark.parametrize("path", _cases("feeds", "*.xml"), ids=lambda p: p.name)
def test_feed_fixtures(path: Path) -> None:
    expected = _expected(path)
    result = parse_location(str(path), today=TODAY)
    assert result.format == "feed"
    assert bool(result.warnings) == expected["bozo"]
    assert len(result.items) == len(expected["items"])
    for record, want in zip(result.items, expected["items"], strict=True):
        _check_item(record, want)


@pytest.mark.parametrize(
    "path",
    [p for p in _cases("json", "*.json*") if ".expected." not in p.name],
    ids=lambda p: p.name,
)
def test_json_fixtures(path: Path) -> None:
    expected = _expected(path)
    result = parse_location(str(path), today=TODAY)
    assert result.format == "json"
    for record, want in zip(result.items, expected["items"], strict=True):
        _check_item(record, want)


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
    from datetime import date

    path = FIXTURES / "dumps" / "crlf.txt"
    result = parse_location(str(path), given=date(2024, 1, 5), today=TODAY)
    assert result.day == date(2024, 3, 11)


def test_yearless_date_is_most_recent_not_after_today() -> None:
    from datetime import date

    from digest.parsers.dump import resolve_day

    assert resolve_day(12, 30, None, given=None, today=date(2026, 1, 2)) == date(2025, 12, 30)
    assert resolve_day(1, 2, None, given=None, today=date(2026, 1, 2)) == date(2026, 1, 2)
    assert resolve_day(2, 29, None, given=None, today=date(2026, 3, 1)) == date(2024, 2, 29)
