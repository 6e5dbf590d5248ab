"""The input side of the CLI: read-only commands, bad arguments, standard input."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from digest.cli import cli
from digest.store import Store, remove_if_unused

GOOD = FIXTURES / "dumps" / "crlf.txt"  # two papers, Mar 11


def _invoke(runner: CliRunner, db: Path, *args: str, stdin: bytes | None = None):
    result = runner.invoke(cli, ["--db", str(db), *args], input=stdin, catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize("command", [["items"], ["stats"], ["stats", "--json"]])
def test_read_only_commands_never_create_a_database(
    runner: CliRunner, tmp_path: Path, command: list[str]
) -> None:
    typo = tmp_path / "digets.db"
    result = _invoke(runner, typo, *command)
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"error: no database at {typo}; run 'digest ingest' first (or check --db)\n"
    )
    assert not typo.exists()


def test_read_only_commands_refuse_someone_elses_database(
    runner: CliRunner, tmp_path: Path
) -> None:
    theirs = tmp_path / "app.sqlite"
    conn = sqlite3.connect(theirs)
    conn.execute("CREATE TABLE accounts (id INTEGER)")
    conn.commit()
    conn.close()
    for command in (["stats"], ["ingest", str(GOOD)]):
        result = _invoke(runner, theirs, *command)
        assert result.exit_code == 1
        assert result.stderr.startswith(f"error: {theirs}: an SQLite database digest did not")
    conn = sqlite3.connect(theirs)
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["accounts"]
    conn.close()


def test_ingest_dash_reads_standard_input(runner: CliRunner, db_path: Path) -> None:
    result = _invoke(runner, db_path, "ingest", "-", stdin=GOOD.read_bytes())
    assert result.exit_code == 0
    assert (
        result.stdout.splitlines()[0]
        == "<stdin>: dump 2026-03-11: 2 entries, 2 new, 0 already seen"
    )
    feed = (FIXTURES / "feeds" / "jsonfeed_1.json").read_bytes().decode().encode("utf-16")
    result = _invoke(runner, db_path, "ingest", "--date", "2026-03-12", "-", stdin=feed)
    assert result.exit_code == 0 and "<stdin>: feed 2026-03-12: 1 entries, 1 new" in result.stdout
    rows = [
        json.loads(line) for line in _invoke(runner, db_path, "items", "--json").stdout.splitlines()
    ]
    assert [(r["title"], r["first_seen"]) for r in rows] == [
        ("A CRLF Title", "2026-03-11"),
        ("Second CRLF Paper", "2026-03-11"),
        ("Version One Item", "2026-03-12"),
    ]


@pytest.mark.parametrize("empty", ["", "  "])
def test_ingest_refuses_an_empty_path(runner: CliRunner, db_path: Path, empty: str) -> None:
    result = _invoke(runner, db_path, "ingest", empty, str(GOOD))
    assert result.exit_code == 1
    assert (
        result.stderr == f"error: {empty!r}: empty path (an unset shell variable?); nothing read\n"
    )
    assert result.stdout.splitlines()[-1] == "2 file(s), 1 failed: 2 entries, 2 new, 0 already seen"


def test_stats_follow_first_seen_back_across_calls(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """The Mar 12 copy arrives first; the Mar 11 original in a later call moves the day back."""
    later = tmp_path / "later.txt"
    later.write_text(GOOD.read_text().replace("Mar 11", "Mar 12"))
    _invoke(runner, db_path, "ingest", str(later))
    result = _invoke(runner, db_path, "ingest", str(GOOD))
    assert "2 entries, 0 new, 2 already seen" in result.stdout
    stats = json.loads(_invoke(runner, db_path, "stats", "--json").stdout)
    assert stats["new_per_day"] == {"2026-03-11": 2}
    assert _invoke(runner, db_path, "items", "--new-on", "2026-03-12").stdout == ""
    assert len(_invoke(runner, db_path, "items", "--new-on", "2026-03-11").stdout.splitlines()) == 2


def test_a_dump_with_two_days_is_reported_with_both(runner: CliRunner, db_path: Path) -> None:
    result = _invoke(runner, db_path, "ingest", str(FIXTURES / "dumps" / "two_days.txt"))
    assert "dump 2026-03-11..2026-03-12: 4 entries, 4 new" in result.stdout
    stats = json.loads(_invoke(runner, db_path, "stats", "--json").stdout)
    assert stats["new_per_day"] == {"2026-03-11": 2, "2026-03-12": 2}


def test_an_empty_db_option_is_refused(runner: CliRunner, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["--db", "", "ingest", str(GOOD)], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stderr == "error: '': not a usable database path (an unset variable?)\n"
    assert sorted(tmp_path.iterdir()) == []


CITEULIKE = str(FIXTURES / "citeulike")
#: Every command option or argument naming a file digest writes, with {} for the path.
FILE_TARGETS = [
    ["train", "--embeddings", "off", "--model", "{}"],
    ["preview", "--user", "ada", "--out", "{}"],
    ["init", "{}"],
    ["init", "--force", "{}"],
    ["evaluate", "--citeulike", CITEULIKE, "--write", "{}"],
]
#: `fifo` stands for any file that is not a regular one (never /dev/null: a regression
#: would replace the real one when the tests run as root).
BAD_FILES = ["/", "dir", "db/x.out", "/proc/x.out", "", "fifo"]
BAD_FOLDERS = ["db", "db/x", "/proc/x", ""]


def _fail_if_called(*args, **kwargs):
    raise AssertionError("the long work started before the output path was checked")


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with a database `db` (a file), a folder `dir` and a named pipe."""
    monkeypatch.chdir(tmp_path)
    # Where the CLI imports them from, and its own names for them if it has any.
    for name in ("training.train", "evaluate.evaluate", "evaluate.read_citeulike",
                 "daily.preview", "cli.train", "cli.evaluate", "cli.read_citeulike"):  # fmt: skip
        monkeypatch.setattr(f"digest.{name}", _fail_if_called, raising=False)
    assert CliRunner().invoke(cli, ["--db", "db", "ingest", str(GOOD)]).exit_code == 0
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    return tmp_path


def _refused(place: Path, args: list[str], target: str) -> None:
    before = sorted(p.name for p in place.iterdir())
    result = CliRunner().invoke(cli, ["--db", "db", *args], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    shown = target if target else repr(target)
    assert result.stderr.startswith(f"error: {shown}: ") and len(result.stderr.splitlines()) == 1
    assert sorted(p.name for p in place.iterdir()) == before  # nothing half-written


@pytest.mark.parametrize("target", BAD_FILES)
@pytest.mark.parametrize(
    "command", FILE_TARGETS, ids=["train", "preview", "init", "init --force", "evaluate"]
)
def test_every_output_file_is_checked_before_any_work(
    place: Path, command: list[str], target: str
) -> None:
    _refused(place, [a.replace("{}", target) for a in command], target)


@pytest.mark.parametrize("target", BAD_FOLDERS)
def test_every_output_folder_is_checked_before_any_work(place: Path, target: str) -> None:
    _refused(place, ["dataset", CITEULIKE, "--out", target], target)


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--embeddings", "off"],
        ["feedback", "add", "ada", "x", "click"],
        ["feedback", "import", "{fixture}"],
        ["ingest", "no-such-file.txt"],
        ["ingest", "{fixture}"],  # a CSV is not an ingestible format
        ["ingest", "--format", "json", str(GOOD)],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_failing_command_leaves_no_new_database(
    runner: CliRunner, tmp_path: Path, command: list[str]
) -> None:
    """A typo'd --db: the command fails, and no empty database is left behind."""
    fixture = str(FIXTURES / "feedback" / "events.csv")
    typo = tmp_path / "digets.db"
    result = _invoke(runner, typo, *[a.replace("{fixture}", fixture) for a in command])
    assert result.exit_code == 1 and result.stderr.startswith("error: ")
    assert sorted(tmp_path.iterdir()) == []  # no file, no -wal, no -shm


def test_a_partly_failing_ingest_keeps_the_database_it_filled(
    runner: CliRunner, tmp_path: Path
) -> None:
    db = tmp_path / "new.db"
    result = _invoke(runner, db, "ingest", "no-such-file.txt", str(GOOD))
    assert result.exit_code == 1 and "2 new" in result.stdout
    assert db.exists()


def test_only_an_unused_digest_database_is_removed(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.db"
    conn = sqlite3.connect(theirs)
    conn.execute("CREATE TABLE accounts (id INTEGER)")
    conn.close()
    ours = tmp_path / "ours.db"
    Store.open(ours).close()
    full = tmp_path / "full.db"
    with Store.open(full) as store, store.transaction():
        store.ensure_reader("ada", origin="cli")
    assert not remove_if_unused(str(theirs)) and theirs.exists()
    assert not remove_if_unused(str(full)) and full.exists()
    assert not remove_if_unused(str(tmp_path / "missing.db"))
    assert remove_if_unused(str(ours)) and not ours.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.db", "theirs.db"]


def test_an_os_error_no_library_named_is_still_one_line(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's last net: a raw OSError (here from a full disk) names its file, in one line."""

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "out" / "items.jsonl"))

    for name in ("digest.evaluate.write_dataset", "digest.cli.write_dataset"):
        monkeypatch.setattr(name, full_disk, raising=False)
    monkeypatch.setattr("digest.cli.read_citeulike", lambda folder: None, raising=False)
    monkeypatch.setattr("digest.evaluate.read_citeulike", lambda folder: None)
    result = runner.invoke(cli, ["dataset", CITEULIKE, "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'out' / 'items.jsonl'}: No space left on device\n"
