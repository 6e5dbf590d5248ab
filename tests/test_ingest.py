"""Ingest into a real SQLite file: the seed ground truth, idempotence, failures."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import FIXTURES, SEEDS, TODAY

from digest.ingest import ingest
from digest.store import Store


def _snapshot(store: Store) -> dict[str, list]:
    tables = ("items", "records", "item_keys", "sources")
    return {t: store.conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}


def test_seed_dumps_ground_truth(store: Store) -> None:
    """426 entries, 383 distinct papers; new per dump 85, 88, 86, 61, 63."""
    files = sorted(str(p) for p in SEEDS.glob("*.txt"))
    summary = ingest(store, files, today=TODAY)
    assert summary.failed == 0
    assert summary.entries == 426
    assert summary.new == 383
    assert [f.new for f in summary.files] == [85, 88, 86, 61, 63]
    assert store.conn.execute("SELECT count(*) FROM items").fetchone()[0] == 383


def test_seed_directory_is_taken_in_date_order(store: Store) -> None:
    summary = ingest(store, [str(SEEDS)], today=TODAY)
    assert [Path(f.path).name[:3] for f in summary.files] == ["000", "001", "002", "003", "004"]
    assert [f.day for f in summary.files] == [
        "2026-03-11", "2026-03-11", "2026-03-12", "2026-03-13", "2026-07-31",
    ]  # fmt: skip


def test_ingesting_the_same_file_twice_changes_nothing(store: Store, tmp_path: Path) -> None:
    ingest(store, [str(SEEDS)], today=TODAY)
    before = _snapshot(store)
    again = ingest(store, [str(SEEDS)], today=TODAY)
    assert again.new == 0
    assert {f.status for f in again.files} == {"unchanged"}
    assert _snapshot(store) == before
    # Same content with other line endings is a different file but the same records.
    copy = tmp_path / "crlf.txt"
    copy.write_bytes(next(SEEDS.glob("002_*.txt")).read_bytes().replace(b"\n", b"\r\n"))
    ingest(store, [str(copy)], today=TODAY)
    assert _snapshot(store)["items"] == before["items"]
    assert _snapshot(store)["records"] == before["records"]


def test_duplicates_keep_a_link_to_the_first_sighting(store: Store) -> None:
    ingest(store, [str(SEEDS)], today=TODAY)
    item_id, count = store.conn.execute(
        "SELECT item_id, count(DISTINCT seen_on) c FROM records GROUP BY item_id "
        "ORDER BY c DESC LIMIT 1"
    ).fetchone()
    assert count >= 2
    linked = store.duplicates_of(item_id)
    assert linked[0]["match"] == "new"
    assert any(r["match"].startswith("exact") for r in linked[1:])


def test_repeat_from_another_source_is_not_new(store: Store) -> None:
    examples = Path(__file__).resolve().parent.parent / "examples"
    summary = ingest(store, [str(examples / "dumps"), str(examples / "feeds")], today=TODAY)
    by_name = {Path(f.path).name: f for f in summary.files}
    # QuantPrune appears in two dumps and in the arXiv feed; the renamed MoE and
    # KV-cache papers are near-duplicate titles.
    assert by_name["2026-03-10.txt"].new == 3
    assert by_name["2026-03-11.txt"].new == 3
    assert by_name["arxiv-cs-lg.xml"].new == 1
    row = store.conn.execute("SELECT arxiv_id FROM items WHERE title LIKE 'QuantPrune%'").fetchone()
    assert row[0] == "2603.00042"  # the later arXiv record enriched the first sighting


def test_bad_file_fails_alone_and_leaves_nothing_half_written(store: Store, tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    shutil.copy(FIXTURES / "dumps" / "no_abstract.txt", good)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "first row is fine"}\n{"title": 3}\n')
    summary = ingest(store, [str(bad), str(good)], today=TODAY)
    assert summary.failed == 1
    assert summary.new == 3
    titles = [r[0] for r in store.conn.execute("SELECT title FROM items")]
    assert "first row is fine" not in titles
    error = store.conn.execute("SELECT error FROM ingest_runs WHERE status = 'error'").fetchone()[0]
    assert "bad.jsonl:2" in error


def test_store_records_migrations_and_uses_wal(db_path: Path) -> None:
    with Store.open(db_path) as store:
        assert store.applied_migrations() == [
            "m001_initial", "m002_readers_feedback", "m003_item_keys_by_key",
            "m004_fts_detail_column", "m005_digest_ledger", "m006_embeddings",
        ]  # fmt: skip
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Store.open(db_path) as store:  # reopening applies nothing twice
        assert store.migrate() == []


def test_database_from_first_release_migrates_with_its_data(db_path: Path, monkeypatch) -> None:
    from digest import store as store_module

    dumps = sorted(str(p) for p in SEEDS.glob("*.txt"))
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:2])
    with Store.open(db_path) as old:
        assert ingest(old, dumps[:1], today=TODAY).new == 85
        old_keys = sorted(old.all_keys())
        word = max(old.items()[0]["title"].split(), key=len)
        first, second = (row["id"] for row in old.items()[:2])
        old.conn.execute(  # the first release kept imported 'sent' rows as events
            "INSERT INTO readers VALUES ('ada', NULL, NULL, 'feedback', '2026-03-09')"
        )
        old.conn.executemany(
            "INSERT INTO events (reader, item_id, event, tag, time) VALUES (?, ?, ?, '', ?)",
            [("ada", first, "sent", "2026-03-09T07:00:00Z"),
             ("ada", second, "click", "2026-03-09T08:00:00Z")],
        )  # fmt: skip
    monkeypatch.undo()
    with Store.open(db_path) as store:
        applied = store.applied_migrations()
        assert applied[-4:] == [
            "m003_item_keys_by_key", "m004_fts_detail_column", "m005_digest_ledger",
            "m006_embeddings",
        ]  # fmt: skip
        assert store.sends() == [("ada", first, "2026-03-09")]  # moved to the ledger
        assert [e[2] for e in store.events()] == ["click"]
        assert sorted(store.all_keys()) == old_keys and old_keys
        assert store.items(search=word)  # the rebuilt index covers old rows
        again = ingest(store, dumps, today=TODAY)
        assert [f.new for f in again.files] == [0, 88, 86, 61, 63]


def test_another_writer_between_files_is_seen(db_path: Path) -> None:
    """Two connections ingest overlapping dumps: the second must not re-add papers."""
    first, second = Store.open(db_path), Store.open(db_path)
    try:
        from digest.ingest import KeyIndex

        dumps = sorted(str(p) for p in SEEDS.glob("*.txt"))
        index = KeyIndex(second)
        index.refresh()  # loaded while the database is still empty
        assert ingest(first, dumps[:1], today=TODAY).new == 85
        index.refresh()  # another connection committed: reloaded
        assert len(index.keys) == len(second.all_keys()) > 0
        assert ingest(second, dumps[:2], today=TODAY).new == 88
    finally:
        first.close()
        second.close()


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    from digest.errors import StorageError

    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="not a usable digest database"):
        Store.open(path)


def test_full_text_search(store: Store) -> None:
    ingest(store, [str(SEEDS)], today=TODAY)
    hits = store.items(search="checkpointing")
    assert hits
    assert all("checkpoint" in (h["title"] + h["abstract"]).lower() for h in hits)
    assert isinstance(store.items(search='"unbalanced quote AND'), list)  # quoted, no error
    hyphen = store.items(search="check-pointing")  # two words, both required, no phrase
    assert {h["id"] for h in hyphen} <= {h["id"] for h in hits}
    assert store.items(search="!!!") == []


def test_feed_from_loopback_http_server(store: Store) -> None:
    import http.server
    import threading
    from functools import partial

    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(FIXTURES / "feeds"))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/arxiv_rss.xml"
        summary = ingest(store, [url], today=TODAY)
        missing = ingest(store, [url.replace("arxiv_rss", "missing")], today=TODAY)
    finally:
        server.shutdown()
    assert summary.new == 2
    assert missing.failed == 1
    assert "HTTP 404" in missing.files[0].error


def test_database_is_consistent_sqlite(db_path: Path, store: Store) -> None:
    ingest(store, [str(SEEDS)], today=TODAY)
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    fts = conn.execute("SELECT count(*) FROM items_fts").fetchone()[0]
    assert fts == 383
