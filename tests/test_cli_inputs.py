"""The input side of the CLI: read-only commands, bad arguments, standard input."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from digest.cli import cli

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
