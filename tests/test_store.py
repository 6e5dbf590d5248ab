"""Opening the database: must-exist opens, foreign SQLite files, migrations under a race."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from digest import store as store_module
from digest.errors import ForeignDatabase, NoDatabase, StorageError
from digest.store import MIGRATIONS, Store

ALL_MIGRATIONS = [m.__name__ for m in MIGRATIONS]


def test_must_exist_open_refuses_a_missing_file_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(NoDatabase, match=r"no database at .*typo\.db; run 'digest ingest' first"):
        Store.open(path, create=False)
    assert sorted(tmp_path.iterdir()) == []


def test_must_exist_open_takes_an_empty_file_for_no_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with pytest.raises(NoDatabase):
        Store.open(path, create=False)
    assert path.stat().st_size == 0


def test_must_exist_open_reads_an_existing_database(db_path: Path) -> None:
    Store.open(db_path).close()
    with Store.open(db_path, create=False) as store:
        assert store.applied_migrations() == ALL_MIGRATIONS


def test_an_empty_file_becomes_a_new_database(tmp_path: Path) -> None:
    path = tmp_path / "touched.db"
    path.touch()
    with Store.open(path) as store:
        assert store.applied_migrations() == ALL_MIGRATIONS


def _foreign(path: Path) -> bytes:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.execute("INSERT INTO people VALUES ('ada')")
    conn.commit()
    conn.close()
    return path.read_bytes()


@pytest.mark.parametrize("create", [True, False])
def test_someone_elses_sqlite_file_is_refused_and_left_unchanged(
    tmp_path: Path, create: bool
) -> None:
    path = tmp_path / "theirs.sqlite"
    before = _foreign(path)
    with pytest.raises(ForeignDatabase, match=r"theirs\.sqlite: .*not create \(tables: people\)"):
        Store.open(path, create=create)
    assert path.read_bytes() == before  # no tables added, journal mode not switched to WAL
    assert not Path(f"{path}-wal").exists()
    conn = sqlite3.connect(path)
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["people"]
    conn.close()


def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a directory"):
        Store.open(tmp_path)


def test_a_failing_migration_leaves_nothing_half_applied(db_path: Path, monkeypatch) -> None:
    """Each migration is one transaction: its statements commit together or not at all."""

    def m999_broken(db) -> None:
        db.executescript("CREATE TABLE half_done (x); CREATE TABLE items (duplicate);")

    Store.open(db_path).close()
    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, m999_broken])
    with pytest.raises(StorageError, match="table items already exists"):
        Store.open(db_path)
    monkeypatch.undo()
    with Store.open(db_path) as store:
        tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
        assert "half_done" not in tables
        assert store.applied_migrations() == ALL_MIGRATIONS


def test_opening_a_migrated_database_takes_no_write_lock(db_path: Path, monkeypatch) -> None:
    """Readers open while a writer holds the lock (an ingest running elsewhere)."""
    Store.open(db_path).close()
    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(store_module, "_BUSY_SECONDS", 0.2)
    try:
        with Store.open(db_path, create=False) as store:
            assert store.stats()["items"] == 0
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def _open_each(paths: list[str], barrier, results) -> None:
    errors = []
    for path in paths:
        barrier.wait()  # both processes open the same new file at the same moment
        try:
            with Store.open(path) as store:
                if store.applied_migrations() != ALL_MIGRATIONS:
                    errors.append(f"{path}: {store.applied_migrations()}")
        except Exception as exc:  # reported to the parent, which fails the test
            errors.append(f"{path}: {type(exc).__name__}: {exc}")
    results.put(errors)


def test_two_processes_creating_one_database_at_once_both_succeed(tmp_path: Path) -> None:
    paths = [str(tmp_path / f"race{n}.db") for n in range(40)]
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    results = context.Queue()
    workers = [context.Process(target=_open_each, args=(paths, barrier, results)) for _ in "ab"]
    for worker in workers:
        worker.start()
    errors = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert errors == [[], []]
    assert all(w.exitcode == 0 for w in workers)
    for path in paths:
        conn = sqlite3.connect(path)
        names = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
        conn.close()
        assert names == ALL_MIGRATIONS


@pytest.mark.parametrize("path", ["", "  ", "bad\x00name.db"])
def test_an_empty_or_nul_path_is_not_taken_for_the_default(
    tmp_path: Path, monkeypatch, path: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError, match="not a usable database path"):
        Store.open(path)
    assert sorted(tmp_path.iterdir()) == []  # no ./digest.db either
