"""Feedback input: one rule for handles, events and times on every way in; hostile files
are reported row by row and never raise; importing a file twice adds nothing."""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import FIXTURES, TODAY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.cli import cli
from digest.errors import ParseError, ValidationError
from digest.feedback import (
    EVENTS,
    MAX_CSV_FIELD,
    add_feedback,
    check_row,
    check_time,
    import_feedback,
    read_feedback,
    record_event,
)
from digest.ingest import ingest
from digest.profiles import valid_handle
from digest.store import Store

FEEDBACK = FIXTURES / "feedback"
EXPECTED = json.loads((FEEDBACK / "expected.json").read_text(encoding="utf-8"))
CASES = sorted(name for name in EXPECTED if not name.startswith("_"))
CRLF = FIXTURES / "dumps" / "crlf.txt"
TITLES = ("A CRLF Title", "Second CRLF Paper")

#: One of each class of bad handle named in the issue, and then some.
BAD_HANDLES = [
    "../../etc/passwd", "ada/bob", "a\\b", "", "   ", "\u202eada", "ad\u200ba", "ada\u200d",
    "\u2066ada\u2069", "['ada']", "\u0430da", "\uff41da", "\u212aate", "ada\x00", "a\nb",
    ".ada", "-ada", "_ada", "..", "a" * 65, "ada bob", "ada%2fbob", "ada@example.org",
]  # fmt: skip


@pytest.fixture
def items(store: Store) -> Store:
    ingest(store, [str(CRLF)], today=TODAY)
    return store


def _item_id(store: Store, title: str) -> str:
    return next(row["id"] for row in store.items() if row["title"] == title)


# -- the fixture files ----------------------------------------------------------------------


def test_every_fixture_file_states_its_result() -> None:
    on_disk = {p.name for p in FEEDBACK.iterdir() if p.name != "expected.json"}
    assert on_disk == set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_fixture_file(items: Store, name: str) -> None:
    want, path = EXPECTED[name], str(FEEDBACK / name)
    if "error" in want:
        with pytest.raises(ParseError, match=re.escape(want["error"])):
            import_feedback(items, path)
        assert items.stats()["events"] == 0
        return
    report = import_feedback(items, path)
    assert (report.imported, report.already_known) == (want["imported"], want["already_known"])
    got = dict(report.problems)
    assert sorted(got) == sorted(int(line) for line in want["problems"])
    for line, part in want["problems"].items():
        assert part in got[int(line)], (line, got[int(line)])
    again = import_feedback(items, path)  # the same file again adds nothing
    assert again.imported == 0
    assert again.already_known == report.imported + report.already_known
    assert again.problems == report.problems


# -- 1. one handle rule, on every way in ----------------------------------------------------


@pytest.mark.parametrize(
    "text,handle", [("ada", "ada"), ("ADA", "ada"), ("a" * 64, "a" * 64), ("x.y_z-0", "x.y_z-0")]
)
def test_valid_handles_fold_case(text: str, handle: str) -> None:
    assert valid_handle(text) == handle


@pytest.mark.parametrize("text", [*BAD_HANDLES, "ada\n", " ada", None, 3, ["ada"]])
def test_invalid_handles(text: object) -> None:
    with pytest.raises(ValidationError):
        valid_handle(text)


@pytest.mark.parametrize("bad", BAD_HANDLES)
def test_every_way_in_refuses_a_bad_handle(
    items: Store, tmp_path: Path, runner: CliRunner, bad: str
) -> None:
    if "\x00" not in bad:  # a NUL makes a CSV file binary, and cannot be an argument
        path = tmp_path / "fb.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows([["user", "item", "event"], [bad, TITLES[0], "click"]])
        report = import_feedback(items, str(path))
        assert report.imported == 0 and [line for line, _ in report.problems] == [2]
        result = runner.invoke(
            cli, ["--db", items.path, "feedback", "add", "--", bad, TITLES[0], "click"]
        )
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    jsonl = tmp_path / "fb.jsonl"
    jsonl.write_text(json.dumps({"user": bad, "item": TITLES[0], "event": "click"}) + "\n")
    assert import_feedback(items, str(jsonl)).problems[0][0] == 1
    with pytest.raises(ValidationError):
        add_feedback(items, bad, TITLES[0], "click")
    with pytest.raises(ValidationError):
        record_event(items, bad, _item_id(items, TITLES[0]), "click", "2026-03-11")
    assert items.reader_handles() == [] and items.stats()["events"] == 0


def test_handle_in_messages_is_escaped(items: Store, tmp_path: Path) -> None:
    """A bidi override in an error message would reorder the message itself."""
    with pytest.raises(ValidationError) as caught:
        add_feedback(items, "\u202eada", TITLES[0], "click")
    assert "\u202e" not in str(caught.value) and "\\u202e" in str(caught.value)


# -- 4. one check for import rows and `feedback add` ----------------------------------------


@pytest.mark.parametrize(
    "fields,reason",
    [
        ({"event": "explode"}, "unknown event 'explode'"),
        ({"event": "click\u200b"}, "unknown event"),
        ({"time": "garbage"}, "time: bad time 'garbage'"),
        ({"time": "2026-13-01"}, "time: bad time"),
        ({"time": "\uff12\uff10\uff12\uff16-03-11"}, "time: bad time"),
        ({"event": "tag"}, "a 'tag' event needs a tag"),
        ({"tag": "moe"}, "tag: only a 'tag' event has a tag"),
        ({"event": "tag", "tag": "m\u202eoe"}, "tag: contains a control or format character"),
        ({"item": "x" * 5000}, "item: longer than 4096"),
        ({"item": "No Such Paper"}, "unknown item 'No Such Paper'"),
    ],
)
def test_add_and_import_refuse_the_same_fields_the_same_way(
    items: Store, tmp_path: Path, fields: dict[str, str], reason: str
) -> None:
    row = {"user": "ada", "item": TITLES[0], "event": "click", "time": "", "tag": ""} | fields
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(row) + "\n")
    [(_, problem)] = import_feedback(items, str(path)).problems
    with pytest.raises(ValidationError) as caught:
        add_feedback(
            items, row["user"], row["item"], row["event"], time=row["time"], tag=row["tag"]
        )
    assert reason in problem and str(caught.value) == problem
    assert items.stats()["events"] == 0


@pytest.mark.parametrize(
    "stamp,stored",
    [
        ("2026-03-11", "2026-03-11T00:00:00.000000+00:00"),
        ("2026-03-11T09:00:00", "2026-03-11T09:00:00.000000+00:00"),  # no offset: UTC
        ("2026-03-11T09:00:00Z", "2026-03-11T09:00:00.000000+00:00"),
        ("2026-03-11 09:00+01:00", "2026-03-11T08:00:00.000000+00:00"),
        ("2026-03-11T00:30-05:00", "2026-03-11T05:30:00.000000+00:00"),
        ("2026-03-11T09:00:00.25Z", "2026-03-11T09:00:00.250000+00:00"),
    ],
)
def test_good_times_are_stored_in_one_utc_spelling(stamp: str, stored: str) -> None:
    assert check_time(stamp) == stored
    assert check_time(stored) == stored


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00+01:00", "9999-12-31T23:00-05:00"])
def test_a_time_outside_the_utc_calendar_is_refused(stamp: str) -> None:
    with pytest.raises(ValidationError, match="bad time"):
        check_time(stamp)


def test_check_row_normalises() -> None:
    row = check_row({"user": " ADA ", "item": " x ", "event": "LIKE", "time": None}, line=7)
    assert (row.line, row.user, row.item, row.event, row.time, row.tag) == (
        7, "ada", "x", "like", "", "",
    )  # fmt: skip
    with pytest.raises(ValidationError, match="time: must be a string"):
        check_row({"user": "ada", "item": "x", "event": "click", "time": 1710000000})


def test_cli_add_validates_time_and_event(items: Store, runner: CliRunner) -> None:
    db = ["--db", items.path]
    bad = runner.invoke(cli, [*db, "feedback", "add", "ada", TITLES[0], "click", "--time", "x"])
    assert bad.exit_code == 1 and bad.stderr == "error: time: bad time 'x' (ISO 8601 expected)\n"
    bad = runner.invoke(cli, [*db, "feedback", "add", "ada", TITLES[0], "explode"])
    assert bad.exit_code == 1 and "unknown event 'explode'" in bad.stderr
    assert items.stats()["events"] == 0
    ok = runner.invoke(cli, [*db, "feedback", "add", "ADA", TITLES[0], "LIKE"])
    assert ok.exit_code == 0 and ok.stdout.startswith("recorded: ada like ")
    again = runner.invoke(cli, [*db, "feedback", "add", "ada", TITLES[0], "like"])
    assert again.exit_code == 0 and again.stdout.startswith("already recorded: ada like ")


def test_record_event_checks_its_arguments_and_sends_sent_to_the_ledger(items: Store) -> None:
    item = _item_id(items, TITLES[0])
    for args in [("Ada", "click", "2026-03-11"), ("ada", "clik", "2026-03-11"),
                 ("ada", "click", "yesterday")]:  # fmt: skip
        with pytest.raises(ValidationError):
            record_event(items, args[0], item, args[1], args[2])
    assert record_event(items, "ada", item, "sent", "2026-03-11T07:00:00Z", origin="email")
    assert not record_event(items, "ada", item, "sent", "2026-03-12T07:00:00Z")  # once
    assert items.events("ada") == []  # the ledger, not the events, holds what was sent
    assert items.sends() == [("ada", item, "2026-03-11")]
    assert items.seen_by_all() == {"ada": {item}}


# -- 3. importing the same feedback twice adds nothing ----------------------------------------


def test_rows_without_time_are_the_event_already_stored(items: Store, tmp_path: Path) -> None:
    """Rule: a row without a time is the same event as any stored event with the same
    reader, item, event and tag, whatever its time."""
    item = _item_id(items, TITLES[0])
    assert add_feedback(items, "ada", item, "click", time="2026-01-01T00:00:00Z").added
    path = tmp_path / "fb.csv"
    path.write_text(
        f"user,item,event,time,tag\nada,{item},click,,\nada,{item},like,,\n"
        f"ada,{item},tag,,moe\nada,{item},tag,,rag\nada,{item},tag,,moe\n"
    )
    first = import_feedback(items, str(path))
    assert (first.imported, first.already_known) == (3, 2)
    for _ in range(2):
        again = import_feedback(items, str(path))
        assert (again.imported, again.already_known) == (0, 5)
    assert not add_feedback(items, "ada", TITLES[0], "like").added
    assert add_feedback(items, "ada", TITLES[0], "like", time="2026-03-12T00:00:00Z").added
    assert len(items.events("ada")) == 5


#: (first spelling, second spelling) of one time, or of one tag.
SAME_TIME = [
    ("2026-03-11T09:00+01:00", "2026-03-11T08:00Z"),
    ("2026-03-11 08:00", "2026-03-11T08:00:00Z"),
    ("2026-03-11T08:00:00.000+00:00", "2026-03-11T08:00:00Z"),
    ("2026-03-10T20:00-12:00", "2026-03-11 08:00:00+00:00"),
    ("2026-03-11", "2026-03-11T00:00:00Z"),
]
SAME_TAG = [("MoE", "moe"), ("Mixture  of Experts", "mixture of experts"),
            ("\uff2d\uff4f\uff25", "moe"), ("STRASSE", "Straße")]  # fmt: skip


@pytest.mark.parametrize(
    "first,second,column",
    [*((a, b, "time") for a, b in SAME_TIME), *((a, b, "tag") for a, b in SAME_TAG)],
)
def test_one_event_spelled_two_ways_is_stored_once(
    items: Store, tmp_path: Path, first: str, second: str, column: str
) -> None:
    item = _item_id(items, TITLES[0])
    rows = []
    for n, value in enumerate((first, second)):
        path = tmp_path / f"fb{n}.csv"
        time, tag = (value, "x") if column == "time" else ("2026-03-11T08:00Z", value)
        path.write_text(f"user,item,event,time,tag\nada,{item},tag,{time},{tag}\n")
        rows.append(import_feedback(items, str(path)))
    assert (rows[0].imported, rows[1].imported, rows[1].already_known) == (1, 0, 1)
    time, tag = (second, "x") if column == "time" else ("2026-03-11T08:00Z", second)
    assert not add_feedback(items, "ada", item, "tag", time=time, tag=tag).added
    assert len(items.events("ada")) == 1


def test_stored_spellings_are_made_one_by_a_migration(db_path: Path, monkeypatch) -> None:
    """A database from before m007 holds the same events spelled apart; opening it merges them."""
    from digest import store as store_module

    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:6])
    with Store.open(db_path) as old:
        ingest(old, [str(CRLF)], today=TODAY)
        item = _item_id(old, TITLES[0])
        old.ensure_reader("ada", origin="feedback")
        old.conn.executemany(
            "INSERT INTO events (reader, item_id, event, tag, time, origin) "
            "VALUES ('ada', ?, ?, ?, ?, 'import')",
            [(item, "click", "", "2026-03-11T09:00+01:00"),
             (item, "click", "", "2026-03-11T08:00:00Z"),  # the same instant
             (item, "click", "", "2026-03-11T08:00:00.000000+00:00"),  # already canonical
             (item, "tag", "MoE", "2026-03-11"),
             (item, "tag", "moe", "2026-03-11T00:00:00Z"),  # the same tag and time
             (item, "tag", "RAG", "2026-03-12T10:00:00+02:00"),
             (item, "like", "", "not a time")],  # kept as it is
        )  # fmt: skip
    monkeypatch.undo()
    with Store.open(db_path) as store:
        assert "m007_canonical_event_times" in store.applied_migrations()[6:]
        assert sorted(store.events("ada")) == sorted([
            ("ada", item, "click", "", "2026-03-11T08:00:00.000000+00:00"),
            ("ada", item, "tag", "moe", "2026-03-11T00:00:00.000000+00:00"),
            ("ada", item, "tag", "rag", "2026-03-12T08:00:00.000000+00:00"),
            ("ada", item, "like", "", "not a time"),
        ])  # fmt: skip
        path = db_path.with_name("again.csv")
        path.write_text(f"user,item,event,time,tag\nada,{item},tag,2026-03-11,MOE\n")
        assert import_feedback(store, str(path)).already_known == 1


# -- 2. hostile files: rows reported, good rows kept, never a traceback -----------------------


def test_csv_field_over_the_csv_limit_is_one_bad_row(items: Store, tmp_path: Path) -> None:
    huge = "x" * (MAX_CSV_FIELD + 1)
    path = tmp_path / "big.csv"
    path.write_text(
        "user,item,event,time\n"
        f"ada,{TITLES[0]},click,2026-03-11T09:00:00Z\n"
        f"ada,{huge},click,\n"
        f'ada,"{huge}\nlin,{TITLES[1]},click,",click,\n'  # a quoted field over two lines
        f"ada,{TITLES[1]},like,2026-03-11T09:00:00Z\n"
    )
    report = import_feedback(items, str(path))
    assert report.imported == 2
    assert report.problems == [
        (3, f"a field is longer than {MAX_CSV_FIELD} characters"),
        (4, f"a field is longer than {MAX_CSV_FIELD} characters"),
    ]
    assert items.reader_handles() == ["ada"]  # the line inside the quoted field is no row


def test_csv_line_endings_and_line_numbers(items: Store, tmp_path: Path) -> None:
    path = tmp_path / "mac.csv"
    path.write_bytes(f"user,item,event\rada,{TITLES[0]},click\rbad/x,{TITLES[0]},click\r".encode())
    assert import_feedback(items, str(path)).problems[0][0] == 3
    jsonl = tmp_path / "sep.jsonl"  # U+2028 inside a JSON string does not end the line
    row = {"user": "ada", "item": TITLES[1], "event": "click", "note": "a\u2028b"}
    jsonl.write_text(json.dumps(row, ensure_ascii=False) + "\r\n" + "oops\r\n", encoding="utf-8")
    report = import_feedback(items, str(jsonl))
    assert report.imported == 1 and report.problems == [(2, "invalid JSON: Expecting value")]


@pytest.mark.parametrize(
    "row,reason",
    [
        ("ad\x00a,{t},click,", "not a valid handle"),
        ("ada,{t}\x00,click,", "control character or surrogate U+0000"),
        ("ada,{t},cl\x00ick,", "unknown event"),
        ("ada,{t},click,2026-03-11\x00", "bad time"),
        ("ada,{t},tag,,mo\x00e", "control or format character U+0000"),
        ("\x00", "missing 'item'"),
        ("\x00,\x00,\x00,\x00", "not a valid handle"),
    ],
)
@pytest.mark.parametrize("padding", [0, 1000, 70_000], ids=["first", "early", "late"])
def test_a_nul_byte_is_one_bad_row(
    items: Store, tmp_path: Path, row: str, reason: str, padding: int
) -> None:
    """Wherever it is (first row, first 64 KiB or later), a NUL costs its own row only."""
    filler = "".join(
        f"ada,{TITLES[1]},click,2026-03-{n % 28 + 1:02d}\n" for n in range(padding // 40)
    )
    path = tmp_path / "nul.csv"
    path.write_bytes(
        (
            f"user,item,event,time,tag\n{filler}{row.format(t=TITLES[0])}\n"
            f"grace,{TITLES[0]},like,,\n"
        ).encode()
    )
    report = import_feedback(items, str(path))
    line = 2 + filler.count("\n")
    assert [n for n, _ in report.problems] == [line] and reason in report.problems[0][1]
    assert ("grace", _item_id(items, TITLES[0]), "like") in {e[:3] for e in items.events()}
    jsonl = tmp_path / "nul.jsonl"
    jsonl.write_text(
        '{"user": "ada", "item": "A CRLF Title", "event": "click"}\n'
        + json.dumps({"user": "ada\x00", "item": TITLES[1], "event": "like"})
        + "\n"
        + '{"user": "lin", "item": "A CRLF\x00 Title", "event": "click"}\n'  # raw NUL: bad JSON
    )
    report = import_feedback(items, str(jsonl))
    assert [n for n, _ in report.problems] == [2, 3]


def test_unreadable_file_is_one_error_line(items: Store, runner: CliRunner) -> None:
    for name in ("latin1.csv", "binary.csv", "header-missing.csv"):
        result = runner.invoke(
            cli, ["--db", items.path, "feedback", "import", str(FEEDBACK / name)]
        )
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        assert len(result.stderr.splitlines()) == 1 and name in result.stderr
    missing = runner.invoke(cli, ["--db", items.path, "feedback", "import", "/nonexistent.csv"])
    assert missing.exit_code == 1 and missing.stderr == "error: /nonexistent.csv: no such file\n"


def test_cli_import_names_file_and_line(items: Store, runner: CliRunner) -> None:
    path = str(FEEDBACK / "handles.csv")
    result = runner.invoke(cli, ["--db", items.path, "feedback", "import", path])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 11 and all(line.startswith(f"error: {path}:") for line in lines)
    assert f"error: {path}:4: user: '../../etc/passwd' is not a valid handle" in result.stderr
    assert result.stdout == "2 imported, 0 already known, 11 rejected\n"


def test_evaluate_reads_rows_without_times(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("user,item,event\nu1,i1,click\n")
    rows, problems = read_feedback(str(path))
    assert problems == [] and rows[0].time == ""


# -- property tests through the real CLI ----------------------------------------------------

_STAMPS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)).map(
    lambda d: d.isoformat(timespec="seconds")
)
_GOOD = st.tuples(
    st.sampled_from(["ada", "grace", "lin", "x.y_z-0"]),
    st.sampled_from(TITLES),
    st.sampled_from(["click", "like", "dislike", "sent"]),
    _STAMPS,
)
_HANDLE_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # the rule, restated
_BAD_HANDLE = st.one_of(
    st.sampled_from(BAD_HANDLES),
    st.text(max_size=80).filter(lambda t: not _HANDLE_RULE.fullmatch(t.strip())),
)
_BAD_EVENT = st.text(max_size=20).filter(lambda t: t.strip() and t.strip().lower() not in EVENTS)
_BAD_TIME = st.text(max_size=30).filter(lambda t: t.strip() and not t.strip()[:1].isdigit())
_LINE = st.text(st.characters(exclude_characters='\n\r"', codec="utf-8"), min_size=1, max_size=200)
_DEEP = st.integers(1000, 20000).map(lambda n: "[" * n)
_DEEP_OBJECT = st.integers(1000, 5000).map(lambda n: '{"user": ' + '{"a": ' * n)
_HUGE = st.integers(MAX_CSV_FIELD + 1, 3 * MAX_CSV_FIELD)


def _bad_row(good: tuple[str, str, str, str]) -> st.SearchStrategy[list[str]]:
    user, item, event, stamp = good
    return st.one_of(
        _BAD_HANDLE.map(lambda u: [u, item, event, stamp]),
        _BAD_EVENT.map(lambda e: [user, item, e, stamp]),
        _BAD_TIME.map(lambda t: [user, item, event, t]),
        st.text(max_size=50).map(lambda t: [user, "no such paper " + t, event, stamp]),
        _HUGE.map(lambda n: [user, "x" * n, event, stamp]),
    )


@st.composite
def _csv_file(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, str, str, str]], bool]:
    good = draw(st.lists(_GOOD, min_size=1, max_size=4))
    lines: list[str] = []
    for row in good:
        lines.append(_csv_line(list(row)))
    garbage = draw(
        st.lists(
            st.one_of(
                _LINE, _DEEP, _HUGE.map(lambda n: "ada," + "x" * n + ",click"),
                _HUGE.map(lambda n: 'ada,"' + "y" * n + '",click'),
                st.sampled_from(good).flatmap(_bad_row).map(_csv_line),
            ),
            max_size=4,
        )
    )  # fmt: skip
    for line in garbage:
        lines.insert(draw(st.integers(0, len(lines))), line)
    text = "user,item,event,time\n" + "\n".join(lines) + draw(st.sampled_from(["", "\n"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return text.replace("\n", newline).encode(), good, bool(garbage)


def _csv_line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    return out.getvalue()


@st.composite
def _jsonl_file(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, str, str, str]], bool]:
    good = draw(st.lists(_GOOD, min_size=1, max_size=4))
    keys = ("user", "item", "event", "time")
    lines = [json.dumps(dict(zip(keys, row, strict=True))) for row in good]
    odd_values = st.one_of(
        st.lists(st.text(max_size=5), max_size=3), st.integers(), st.floats(), st.booleans(),
        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    )  # fmt: skip
    garbage = draw(
        st.lists(
            st.one_of(
                st.text(st.characters(exclude_characters="\n"), max_size=200).filter(str.strip),
                _DEEP, _DEEP_OBJECT,
                st.integers(4301, 9000).map(lambda n: '{"user": ' + "7" * n + "}"),
                st.sampled_from(['{"user": "ada", "item": "\\ud800", "event": "click"}']),
                st.sampled_from(good).flatmap(_bad_row).map(
                    lambda r: json.dumps(dict(zip(keys, r, strict=True)))
                ),
                st.tuples(st.sampled_from(keys[:3]), odd_values).map(
                    lambda kv: json.dumps(
                        {"user": "ada", "item": TITLES[0], "event": "click", kv[0]: kv[1]}
                    )
                ),
            ),
            max_size=4,
        )
    )  # fmt: skip
    for line in garbage:  # after the first line: a file is JSONL when it starts with '{'
        lines.insert(draw(st.integers(1, len(lines))), line)
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"), good, bool(garbage)


@pytest.fixture(scope="module")
def fuzz_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("fuzz") / "digest.db"
    with Store.open(path) as store:
        ingest(store, [str(CRLF)], today=TODAY)
    yield str(path)


def _import(db: str, data: bytes, suffix: str) -> tuple[Result, str]:
    with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as handle:
        handle.write(data)
    result = CliRunner().invoke(cli, ["--db", db, "feedback", "import", handle.name])
    Path(handle.name).unlink()
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    assert all(line.startswith("error: ") for line in result.stderr.splitlines())
    assert result.exit_code == (1 if result.stderr else 0)
    return result, handle.name


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _stored(db: str, rows: list[tuple[str, str, str, str]]) -> None:
    with Store.open(db) as store:
        ids = {row["title"]: row["id"] for row in store.items()}
        events = set(store.events())
        sends = {(reader, item) for reader, item, _day in store.sends()}
    for user, title, event, stamp in rows:
        if event == "sent":  # the ledger keeps one row per reader and item: the first send
            assert (user, ids[title]) in sends
        else:
            assert (user, ids[title], event, "", check_time(stamp)) in events


_FUZZ = settings(
    max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip


@_FUZZ
@given(case=st.one_of(_csv_file(), _jsonl_file()))
def test_import_garbage_keeps_good_rows(fuzz_db: str, case: tuple) -> None:
    data, good, has_garbage = case
    result, _ = _import(fuzz_db, data, ".txt")
    if not _utf8(data):  # the whole file is refused, on one line
        assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
        return
    assert result.exit_code == (1 if has_garbage else 0), result.output
    _stored(fuzz_db, good)


@_FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=3000),
        st.binary(max_size=40).map(lambda b: b"user,item,event\n" + b),
        st.binary(max_size=40).map(lambda b: b'{"user": "ada"' + b),
        st.tuples(st.binary(min_size=1, max_size=20), st.integers(0, 120)).map(
            lambda t: (FEEDBACK / "handles.csv").read_bytes()[: t[1]] + t[0]
            + (FEEDBACK / "handles.csv").read_bytes()[t[1] :]
        ),
    )
)  # fmt: skip
def test_import_random_bytes_never_raises(fuzz_db: str, data: bytes) -> None:
    _import(fuzz_db, data, ".csv")


def test_jsonl_keys_are_case_insensitive_like_the_csv_header(items: Store, tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    path.write_text(json.dumps({"User": "ada", " ITEM ": TITLES[0], "Event": "click"}) + "\n")
    assert import_feedback(items, str(path)).imported == 1
