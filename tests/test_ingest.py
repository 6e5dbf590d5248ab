"""Ingest into a real SQLite file: the seed ground truth, idempotence, failures."""

from __future__ import annotations

import io
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
            "m007_canonical_event_times", "m008_embedding_text_hash", "m009_team_feed_tokens",
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
        assert applied[2:] == [
            "m003_item_keys_by_key", "m004_fts_detail_column", "m005_digest_ledger",
            "m006_embeddings", "m007_canonical_event_times", "m008_embedding_text_hash",
            "m009_team_feed_tokens",
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


# -- days: several in one dump, and files arriving in any order -----------------------------

IN_ORDER = {"2026-03-11": 173, "2026-03-12": 86, "2026-03-13": 61, "2026-07-31": 63}


def _first_seen_is_earliest_sighting(store: Store) -> bool:
    wrong = store.conn.execute(
        "SELECT count(*) FROM items WHERE first_seen != "
        "(SELECT min(seen_on) FROM records WHERE records.item_id = items.id)"
    ).fetchone()[0]
    return wrong == 0


@pytest.mark.parametrize("order", [[4, 3, 2, 1, 0], [2, 4, 0, 3, 1]], ids=["reversed", "mixed"])
def test_first_seen_is_the_earliest_sighting_whatever_order_files_arrive(
    store: Store, order: list[int]
) -> None:
    """One call per file, older days after newer ones: the days still come out right."""
    dumps = sorted(str(p) for p in SEEDS.glob("*.txt"))
    for n in order:
        assert ingest(store, [dumps[n]], today=TODAY).failed == 0
    assert store.stats()["new_per_day"] == IN_ORDER
    assert len(store.items(new_on="2026-03-11")) == 173
    assert _first_seen_is_earliest_sighting(store)


def test_an_older_sighting_from_another_source_moves_first_seen_back(
    store: Store, tmp_path: Path
) -> None:
    from datetime import date

    feed = str(FIXTURES / "feeds" / "arxiv_rss.xml")
    ingest(store, [feed], given=date(2026, 3, 20), today=TODAY)
    ingest(store, [feed.replace("arxiv_rss", "hf_atom")], given=date(2026, 3, 20), today=TODAY)
    dump = tmp_path / "old.txt"
    dump.write_text("Mar 2\n\nPaper Two\n")  # a title-only entry: the title key decides
    summary = ingest(store, [str(dump)], today=TODAY)
    assert summary.new == 0  # the same paper (exact title): not new ...
    rows = dict(store.conn.execute("SELECT title, first_seen FROM items").fetchall())
    assert rows["Paper Two"] == "2026-03-02"  # ... but first seen on the dump's day
    assert rows["Paper One & Friends"] == "2026-03-20"
    assert store.stats()["new_per_day"] == {"2026-03-02": 1, "2026-03-20": 2}


def test_a_dump_with_two_days_stores_each_item_under_its_own_day(store: Store) -> None:
    summary = ingest(store, [str(FIXTURES / "dumps" / "two_days.txt")], today=TODAY)
    assert summary.files[0].day == "2026-03-11..2026-03-12"
    assert summary.new == 4
    assert store.stats()["new_per_day"] == {"2026-03-11": 2, "2026-03-12": 2}
    seen = store.conn.execute("SELECT title, seen_on FROM records ORDER BY id").fetchall()
    assert seen == [
        ("First Day Paper One", "2026-03-11"),
        ("First Day Paper Two", "2026-03-11"),
        ("Second Day Paper One", "2026-03-12"),
        ("Second Day Paper Two", "2026-03-12"),
    ]
    titles = {r["title"] for r in store.items()}
    assert not titles & {"new", "Subscribe", "Daily Papers"}


def test_two_seed_days_pasted_into_one_file_match_the_separate_files(
    store: Store, tmp_path: Path
) -> None:
    dumps = sorted(SEEDS.glob("*.txt"))
    pasted = tmp_path / "pasted.txt"
    pasted.write_text(dumps[2].read_text() + "\n\n" + dumps[3].read_text())
    summary = ingest(store, [str(pasted)], today=TODAY)
    with Store.open(tmp_path / "separate.db") as separate:
        apart = ingest(separate, [str(dumps[2]), str(dumps[3])], today=TODAY)
        assert summary.new == apart.new and summary.entries == apart.entries
        assert store.stats()["new_per_day"] == separate.stats()["new_per_day"]
    assert sorted(store.stats()["new_per_day"]) == ["2026-03-12", "2026-03-13"]


# -- where the bytes come from -------------------------------------------------------------

GOOD = FIXTURES / "dumps" / "crlf.txt"


def _stdin(data: bytes) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(data))


def test_dash_reads_standard_input_once(store: Store, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", _stdin(GOOD.read_bytes()))
    summary = ingest(store, ["-", "-"], today=TODAY)
    assert [f.path for f in summary.files] == ["<stdin>", "<stdin>"]
    assert [f.status for f in summary.files] == ["ok", "unchanged"]
    assert summary.new == 2
    source = store.conn.execute("SELECT name, kind FROM sources").fetchall()
    assert source == [("daily-dump", "dump")]


def test_json_from_standard_input_is_detected(store: Store, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", _stdin(b'{"title": "Piped In"}\n'))
    summary = ingest(store, ["-"], today=TODAY)
    assert summary.files[0].format == "json"
    assert store.conn.execute("SELECT name FROM sources").fetchall() == [("stdin",)]


def test_a_named_pipe_is_read_once_and_parsed_whole(store: Store, tmp_path: Path) -> None:
    import os
    import signal
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    data = next(SEEDS.glob("003_*.txt")).read_bytes()

    def write() -> None:
        with open(fifo, "wb") as handle:
            handle.write(data)

    def hung(*_: object) -> None:
        raise TimeoutError("ingest hung on the pipe: was it read twice?")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        summary = ingest(store, [str(fifo), str(GOOD)], today=TODAY)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    writer.join(timeout=10)
    by_path = {f.path: f for f in summary.files}
    assert by_path[str(fifo)].entries == 77 and by_path[str(fifo)].day == "2026-03-13"
    assert summary.failed == 0 and summary.new == 77 + 2


@pytest.mark.parametrize("empty", ["", " ", "\t"])
def test_an_empty_path_is_refused_not_taken_for_the_current_folder(
    store: Store, tmp_path: Path, monkeypatch, empty: str
) -> None:
    shutil.copy(next(SEEDS.glob("000_*.txt")), tmp_path / "would-be-ingested.txt")
    monkeypatch.chdir(tmp_path)
    summary = ingest(store, [empty, str(GOOD)], today=TODAY)
    by_status = {f.status: f for f in summary.files}
    assert sorted(by_status) == ["error", "ok"]
    assert (
        by_status["error"].error
        == f"{empty!r}: empty path (an unset shell variable?); nothing read"
    )
    assert store.stats()["items"] == 2  # the good file, and nothing from the folder


# -- failures stay with their file ---------------------------------------------------------


def test_a_bug_while_parsing_fails_that_file_alone(store: Store, monkeypatch) -> None:
    import digest.parsers as parsers

    real = parsers.parse_feed

    def broken(data: bytes, *, path: str):
        if "malformed" in path:
            raise KeyError("boom")
        return real(data, path=path)

    monkeypatch.setattr(parsers, "parse_feed", broken)
    feeds = FIXTURES / "feeds"
    summary = ingest(
        store, [str(feeds / "malformed.xml"), str(feeds / "arxiv_rss.xml")], today=TODAY
    )
    by_name = {Path(f.path).name: f for f in summary.files}
    assert by_name["arxiv_rss.xml"].status == "ok" and summary.new == 2
    assert by_name["malformed.xml"].error == (
        f"{feeds / 'malformed.xml'}: internal error (KeyError: 'boom'); please report this bug"
    )


def test_a_database_error_fails_that_file_alone(store: Store) -> None:
    store.conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON items WHEN new.title = 'A CRLF Title' "
        "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
    )
    other = FIXTURES / "dumps" / "no_abstract.txt"
    summary = ingest(store, [str(GOOD), str(other)], today=TODAY)
    by_name = {Path(f.path).name: f for f in summary.files}
    assert by_name["no_abstract.txt"].status == "ok"
    assert by_name["crlf.txt"].error == f"{GOOD}: database: disk on fire"
    assert store.stats()["items"] == 3  # no_abstract.txt only; nothing of crlf.txt


def test_no_stored_link_is_anything_but_http(store: Store) -> None:
    unsafe = [
        FIXTURES / "dumps" / "unsafe_links.txt",
        FIXTURES / "feeds" / "unsafe_links.xml",
        FIXTURES / "feeds" / "jsonfeed_1_1.json",
        FIXTURES / "json" / "unsafe_links.jsonl",
    ]
    summary = ingest(store, [str(p) for p in unsafe], today=TODAY)
    assert summary.failed == 0 and summary.entries == 16
    links = [r["url"] for r in store.items()] + [r["code_url"] for r in store.items()]
    links += [u for r in store.items() for u in r["project_urls"]]
    links += [r[0] for r in store.conn.execute("SELECT url FROM records")]
    assert {link.split("://")[0] for link in links if link} == {"https"}
    assert any("javascript:alert(1)" in r["abstract"] for r in store.items())  # inert text


def test_a_worker_process_killed_by_an_input_fails_that_input_alone(
    store: Store, monkeypatch
) -> None:
    """As when the out-of-memory killer ends the parsing process: the rest still ingest."""
    import os

    import digest.parsers as parsers

    real = parsers.parse_json_items

    def dies(text: str, *, path: str):
        if "items.jsonl" in path:
            os._exit(9)  # in the worker process
        return real(text, path=path)

    monkeypatch.setattr(parsers, "parse_json_items", dies)
    inputs = [FIXTURES / "json" / "items.jsonl", FIXTURES / "json" / "array.json", *SEEDS.glob("*")]
    summary = ingest(store, [str(p) for p in inputs], today=TODAY)
    by_name = {Path(f.path).name: f for f in summary.files}
    assert "stopped abruptly" in by_name["items.jsonl"].error
    assert summary.failed == 1 and len(summary.files) == 7
    assert summary.new == 383 + 1
