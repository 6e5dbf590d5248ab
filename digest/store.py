"""All SQL lives here: the schema, its named migrations, and every query.

The database is one SQLite file in WAL mode, opened through sqlite-utils. Hot paths
(ingest, key lookups) use prepared statements on the same connection.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from digest.dedup import Candidate
from digest.errors import ForeignDatabase, NoDatabase, StorageError

DEFAULT_DB = "digest.db"
ENV_DB = "DIGEST_DB"


def now_iso() -> str:
    """UTC timestamp for audit columns."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


_FTS_TRIGGERS = """
        CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN
            INSERT INTO items_fts (items_fts, rowid, title, abstract)
            VALUES ('delete', old.rowid, old.title, old.abstract);
        END;
        CREATE TRIGGER items_fts_update AFTER UPDATE OF title, abstract ON items BEGIN
            INSERT INTO items_fts (items_fts, rowid, title, abstract)
            VALUES ('delete', old.rowid, old.title, old.abstract);
            INSERT INTO items_fts (rowid, title, abstract)
            VALUES (new.rowid, new.title, new.abstract);
        END;
        """


def m001_initial(db: sqlite_utils.Database) -> None:
    """Items, their dedup keys, every record seen, sources and ingest runs."""
    db.executescript(
        """
        CREATE TABLE sources (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            location TEXT,
            created_at TEXT NOT NULL
        );
        CREATE TABLE items (
            id TEXT PRIMARY KEY,
            canonical_key TEXT NOT NULL,
            title TEXT NOT NULL,
            abstract TEXT NOT NULL DEFAULT '',
            url TEXT,
            authors TEXT NOT NULL DEFAULT '[]',
            tags TEXT NOT NULL DEFAULT '[]',
            source_id INTEGER REFERENCES sources(id),
            first_seen TEXT NOT NULL,
            published TEXT,
            content_hash TEXT NOT NULL,
            arxiv_id TEXT,
            doi TEXT,
            code_url TEXT,
            project_urls TEXT NOT NULL DEFAULT '[]',
            external_id TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX items_first_seen ON items(first_seen);
        CREATE TABLE item_keys (
            key TEXT NOT NULL UNIQUE,
            item_id TEXT NOT NULL REFERENCES items(id)
        );
        CREATE TABLE ingest_runs (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            format TEXT,
            source_id INTEGER REFERENCES sources(id),
            file_hash TEXT,
            day TEXT,
            status TEXT NOT NULL,
            entries INTEGER NOT NULL DEFAULT 0,
            new INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            errors INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            warnings TEXT NOT NULL DEFAULT '[]',
            started_at TEXT NOT NULL,
            finished_at TEXT
        );
        CREATE INDEX ingest_runs_hash ON ingest_runs(file_hash, status);
        CREATE TABLE records (
            id INTEGER PRIMARY KEY,
            item_id TEXT NOT NULL REFERENCES items(id),
            source_id INTEGER NOT NULL REFERENCES sources(id),
            run_id INTEGER REFERENCES ingest_runs(id),
            seen_on TEXT NOT NULL,
            title TEXT NOT NULL,
            abstract TEXT NOT NULL DEFAULT '',
            url TEXT,
            record_hash TEXT NOT NULL,
            match TEXT NOT NULL,
            score REAL,
            UNIQUE(source_id, record_hash)
        );
        CREATE INDEX records_item ON records(item_id);
        """
    )
    db["items"].enable_fts(["title", "abstract"], create_triggers=False, tokenize="porter")
    # Hand-written triggers so that filling an empty url or code link later does not
    # re-index the text: only a change of title or abstract does. New rows are indexed
    # by `insert_items` in one statement per batch, about 3x faster than a per-row
    # insert trigger.
    db.executescript(_FTS_TRIGGERS)


def m002_readers_feedback(db: sqlite_utils.Database) -> None:
    """Readers (by handle), feedback events, and the send ledger ranking reads."""
    db.executescript(
        """
        CREATE TABLE readers (
            handle TEXT PRIMARY KEY,
            name TEXT,
            email TEXT,
            origin TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            reader TEXT NOT NULL REFERENCES readers(handle),
            item_id TEXT NOT NULL REFERENCES items(id),
            event TEXT NOT NULL,
            tag TEXT NOT NULL DEFAULT '',
            time TEXT NOT NULL,
            origin TEXT,
            UNIQUE(reader, item_id, event, tag, time)
        );
        CREATE INDEX events_reader ON events(reader, event);
        CREATE INDEX events_item ON events(item_id);
        CREATE TABLE sends (
            reader TEXT NOT NULL REFERENCES readers(handle),
            item_id TEXT NOT NULL REFERENCES items(id),
            channel TEXT NOT NULL,
            digest_date TEXT NOT NULL,
            sent_at TEXT NOT NULL,
            PRIMARY KEY (reader, item_id, channel)
        ) WITHOUT ROWID;
        CREATE INDEX sends_item ON sends(item_id);
        """
    )


def m003_item_keys_by_key(db: sqlite_utils.Database) -> None:
    """Dedup keys stored in one b-tree keyed by the key (no rowid, no second index).

    Every ingested record writes several keys at random positions; one tree instead
    of a table plus a unique index halves that work.
    """
    db.executescript(
        """
        CREATE TABLE item_keys_new (
            key TEXT PRIMARY KEY,
            item_id TEXT NOT NULL REFERENCES items(id)
        ) WITHOUT ROWID;
        INSERT OR IGNORE INTO item_keys_new (key, item_id)
            SELECT key, item_id FROM item_keys WHERE key NOT LIKE 'rec:%' ORDER BY rowid;
        DROP TABLE item_keys;
        ALTER TABLE item_keys_new RENAME TO item_keys;
        """
    )


def m004_fts_detail_column(db: sqlite_utils.Database) -> None:
    """Rebuild the full-text index without token positions (detail=column).

    Searches match every word of the query anywhere in a column; positions would
    only serve phrase queries, which `Store.items` never issues, and they cost
    about a quarter of the indexing time.
    """
    db.executescript(
        """
        DROP TRIGGER items_fts_delete;
        DROP TRIGGER items_fts_update;
        DROP TABLE items_fts;
        CREATE VIRTUAL TABLE items_fts USING fts5(
            title, abstract, content='items', tokenize='porter', detail='column'
        );
        INSERT INTO items_fts (items_fts) VALUES ('rebuild');
        """
    )
    db.executescript(_FTS_TRIGGERS)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    m001_initial,
    m002_readers_feedback,
    m003_item_keys_by_key,
    m004_fts_detail_column,
]


@dataclass(frozen=True)
class NewItem:
    """The columns of a brand-new item row."""

    id: str
    canonical_key: str
    title: str
    abstract: str
    url: str | None
    authors: tuple[str, ...]
    tags: tuple[str, ...]
    source_id: int
    first_seen: str
    published: str | None
    content_hash: str
    arxiv_id: str | None
    doi: str | None
    code_url: str | None
    project_urls: tuple[str, ...]
    external_id: str | None


def _json_list(values: tuple[str, ...]) -> str:
    return json.dumps(list(values)) if values else "[]"


def fts_query(text: str) -> str:
    """Every word of the user's text, each quoted: no query syntax, no phrases.

    The index keeps no token positions (m004), so a multi-word phrase such as the
    two tokens of "self-attention" must become two words, both required.
    """
    words = re.findall(r"[^\W_]+", text)  # letters and digits, as FTS5 tokenizes
    return " ".join(f'"{w}"' for w in words) or '""'


#: How long a connection waits for another process's write lock before giving up.
_BUSY_SECONDS = 30


def _check_location(location: str, *, create: bool) -> None:
    """Refuse paths that cannot be (or, for readers, are not yet) a database file."""
    if not location.strip() or "\x00" in location:
        raise StorageError(f"{location!r}: not a usable database path (an unset variable?)")
    target = Path(location)
    try:
        if not target.parent.exists():
            raise StorageError(f"{location}: directory does not exist")
        if target.is_dir():
            raise StorageError(f"{location}: is a directory, not a database file")
        missing = not target.exists() or target.stat().st_size == 0
    except OSError as exc:
        raise StorageError(f"{location}: cannot access ({exc.strerror or exc})") from None
    if missing and not create:
        raise NoDatabase(f"no database at {location}; run 'digest ingest' first (or check --db)")


def _refuse_foreign(conn: sqlite3.Connection, location: str) -> None:
    """Raise when the file holds tables but no `_migrations`: someone else's database.

    An empty file (or one with no tables yet) is a new digest database.
    """
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name"
        )
    ]
    if names and "_migrations" not in names:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise ForeignDatabase(
            f"{location}: an SQLite database digest did not create (tables: {shown}); "
            "left unchanged, choose another --db"
        )


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, retrying while another process holds the lock.

    Changing the journal mode needs an exclusive lock and SQLite does not wait for it
    through the busy timeout, so two processes opening a new file at once would see
    "database is locked" here.
    """
    deadline = time.monotonic() + _BUSY_SECONDS
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = wal").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
            continue
        if mode == "wal":
            return
        raise StorageError(f"cannot switch the database to WAL mode (journal mode is {mode})")


def _close(conn: sqlite3.Connection | None) -> None:
    if conn is not None:
        conn.close()


class Store:
    """The digest database. Use `Store.open(path)`; close it when done."""

    def __init__(self, db: sqlite_utils.Database, path: str):
        self.db = db
        self.path = path
        self.conn: sqlite3.Connection = db.conn

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, create: bool = True) -> Store:
        """Open and migrate the database at `path`, creating it only when `create` is true.

        Commands that only read pass `create=False`, so a mistyped `--db` is an error
        rather than a new, empty database. An SQLite file that digest did not create
        (tables but no `_migrations`) is refused before anything is written to it.
        """
        location = str(os.environ.get(ENV_DB) or DEFAULT_DB) if path is None else str(path)
        if location != ":memory:":
            _check_location(location, create=create)
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(location, isolation_level=None, timeout=_BUSY_SECONDS)
            _refuse_foreign(conn, location)
            # Items carry kilobyte abstracts: 16 KiB pages mean fewer b-tree splits and
            # cheaper full-text segments. Takes effect only when the file is created.
            conn.execute("PRAGMA page_size = 16384")
            db = sqlite_utils.Database(conn)
            if location != ":memory:":
                _enable_wal(conn)
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            # The dedup-key index is probed at random; a 64 MB page cache keeps it hot.
            conn.execute("PRAGMA cache_size = -65536")
            store = cls(db, location)
            store.migrate()
        except sqlite3.DatabaseError as exc:
            _close(conn)
            raise StorageError(f"{location}: not a usable digest database ({exc})") from None
        except BaseException:
            _close(conn)
            raise
        return store

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply every migration not yet recorded; return the names applied.

        Safe when several processes open a new database at once: each migration runs
        under the write lock (BEGIN IMMEDIATE) and the list of applied migrations is
        read again under that lock, so a migration another process has just applied
        is skipped instead of run twice.
        """
        applied: list[str] = []
        if not self._pending_migrations():
            return applied  # the common case: no write lock taken
        for migration in MIGRATIONS:
            with self.transaction():
                self.conn.execute(
                    "CREATE TABLE IF NOT EXISTS _migrations "
                    "(name TEXT PRIMARY KEY, applied_at TEXT)"
                )
                if migration.__name__ in self._done_migrations():
                    continue
                migration(self.db)
                self.conn.execute(
                    "INSERT INTO _migrations VALUES (?, ?)", (migration.__name__, now_iso())
                )
            applied.append(migration.__name__)
        return applied

    def _done_migrations(self) -> set[str]:
        exists = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'"
        ).fetchone()
        if not exists:
            return set()
        return {row[0] for row in self.conn.execute("SELECT name FROM _migrations")}

    def _pending_migrations(self) -> list[str]:
        done = self._done_migrations()
        return [m.__name__ for m in MIGRATIONS if m.__name__ not in done]

    def applied_migrations(self) -> list[str]:
        """Names of the migrations recorded in this database, in order applied."""
        return [r[0] for r in self.conn.execute("SELECT name FROM _migrations ORDER BY rowid")]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit of work: everything inside commits together or not at all."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- sources and runs ---------------------------------------------------------------

    def source_id(self, name: str, kind: str, location: str | None) -> int:
        """The id of the named source, creating it on first use."""
        row = self.conn.execute("SELECT id FROM sources WHERE name = ?", (name,)).fetchone()
        if row:
            return row[0]
        cur = self.conn.execute(
            "INSERT INTO sources (name, kind, location, created_at) VALUES (?, ?, ?, ?)",
            (name, kind, location, now_iso()),
        )
        return int(cur.lastrowid)

    def file_seen(self, file_hash: str) -> bool:
        """True when a file with exactly these bytes was ingested successfully before."""
        row = self.conn.execute(
            "SELECT 1 FROM ingest_runs WHERE file_hash = ? AND status = 'ok' LIMIT 1",
            (file_hash,),
        ).fetchone()
        return row is not None

    def record_run(self, **fields: Any) -> int:
        """Insert an ingest-run row and return its id."""
        fields.setdefault("started_at", now_iso())
        if "warnings" in fields:
            fields["warnings"] = json.dumps(fields["warnings"])
        cols = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        cur = self.conn.execute(
            f"INSERT INTO ingest_runs ({cols}) VALUES ({marks})", tuple(fields.values())
        )
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, **fields: Any) -> None:
        """Fill in a run's counts and mark it finished."""
        fields["finished_at"] = now_iso()
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(f"UPDATE ingest_runs SET {sets} WHERE id = ?", (*fields.values(), run_id))

    # -- dedup keys and items -----------------------------------------------------------

    def all_keys(self) -> list[tuple[str, str]]:
        """Every dedup key and the item it belongs to."""
        return self.conn.execute("SELECT key, item_id FROM item_keys").fetchall()

    def data_version(self) -> int:
        """Changes whenever another connection commits (never for this one's own commits)."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def lookup_keys(self, keys: Iterable[str]) -> dict[str, str]:
        """Map each known dedup key to the item it belongs to."""
        keys = list(keys)
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        rows = self.conn.execute(f"SELECT key, item_id FROM item_keys WHERE key IN ({marks})", keys)
        return dict(rows.fetchall())

    def candidates(self, item_ids: Iterable[str]) -> list[Candidate]:
        """Existing items as dedup candidates (normalised text is recomputed by dedup)."""
        from digest.text import normalize

        ids = list(item_ids)
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            f"SELECT id, title, abstract, arxiv_id, doi FROM items WHERE id IN ({marks})", ids
        )
        return [Candidate(r[0], normalize(r[1]), normalize(r[2]), r[3], r[4]) for r in rows]

    def add_keys_bulk(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Attach dedup keys to items; a key already owned by another item stays there."""
        self.conn.executemany("INSERT OR IGNORE INTO item_keys (key, item_id) VALUES (?, ?)", pairs)

    def item_exists(self, item_id: str) -> bool:
        """True when an item with this id is stored."""
        row = self.conn.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone()
        return row is not None

    def insert_items(self, items: list[NewItem]) -> None:
        """Insert new items and index their text for full-text search.

        Call inside a transaction: the FTS rows are found by rowid after the insert.
        """
        if not items:
            return
        stamp = now_iso()
        before = self.conn.execute("SELECT coalesce(max(rowid), 0) FROM items").fetchone()[0]
        self.conn.executemany(
            """INSERT INTO items (id, canonical_key, title, abstract, url, authors, tags,
               source_id, first_seen, published, content_hash, arxiv_id, doi, code_url,
               project_urls, external_id, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                (
                    i.id, i.canonical_key, i.title, i.abstract, i.url,
                    _json_list(i.authors), _json_list(i.tags), i.source_id,
                    i.first_seen, i.published, i.content_hash, i.arxiv_id, i.doi,
                    i.code_url, _json_list(i.project_urls), i.external_id, stamp,
                )
                for i in items
            ],
        )  # fmt: skip
        self.conn.execute(
            "INSERT INTO items_fts (rowid, title, abstract) "
            "SELECT rowid, title, abstract FROM items WHERE rowid > ?",
            (before,),
        )

    _ENRICHABLE = ("url", "abstract", "arxiv_id", "doi", "code_url", "published")

    def enrich_item(self, item_id: str, fields: dict[str, str | None]) -> None:
        """Fill columns that are still empty with what a later record knows."""
        values = {k: v for k, v in fields.items() if v and k in self._ENRICHABLE}
        for column, value in values.items():
            self.conn.execute(
                f"UPDATE items SET {column} = ? WHERE id = ? "
                f"AND ({column} IS NULL OR {column} = '')",
                (value, item_id),
            )

    def move_first_seen_back(self, sightings: Iterable[tuple[str, str]]) -> None:
        """Set each item's first_seen to a (day, item id) sighting when that day is earlier.

        Files may arrive in any order: an older dump ingested after a newer one still
        makes its papers new on their own, earlier day.
        """
        self.conn.executemany(
            "UPDATE items SET first_seen = ?1 WHERE id = ?2 AND first_seen > ?1", sightings
        )

    def insert_records(self, records: list[dict[str, Any]]) -> None:
        """Store sightings; one this source already showed is ignored."""
        if not records:
            return
        cols = list(records[0])
        self.conn.executemany(
            f"INSERT OR IGNORE INTO records ({', '.join(cols)}) "
            f"VALUES ({', '.join('?' for _ in cols)})",
            [tuple(r[c] for c in cols) for r in records],
        )

    # -- readers, events and the send ledger --------------------------------------------

    def ensure_reader(
        self, handle: str, *, origin: str, name: str | None = None, email: str | None = None
    ) -> None:
        """Create the reader if unknown (a reader may exist only through feedback)."""
        self.conn.execute(
            "INSERT OR IGNORE INTO readers (handle, name, email, origin, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (handle, name, email, origin, now_iso()),
        )

    def add_event(
        self, reader: str, item_id: str, event: str, tag: str, time: str, origin: str
    ) -> bool:
        """Store one feedback event; False when the identical event is already stored."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO events (reader, item_id, event, tag, time, origin) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (reader, item_id, event, tag, time, origin),
        )
        return cur.rowcount == 1

    def record_send(self, reader: str, item_id: str, *, channel: str, digest_date: str) -> bool:
        """Add to the send ledger; False when this reader already got it on this channel."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO sends (reader, item_id, channel, digest_date, sent_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (reader, item_id, channel, digest_date, now_iso()),
        )
        return cur.rowcount == 1

    def events(self, reader: str | None = None) -> list[tuple[str, str, str, str, str]]:
        """(reader, item_id, event, tag, time) rows, oldest first."""
        sql = "SELECT reader, item_id, event, tag, time FROM events"
        params: tuple = ()
        if reader is not None:
            sql += " WHERE reader = ?"
            params = (reader,)
        return self.conn.execute(sql + " ORDER BY time, id", params).fetchall()

    def seen_by(self, reader: str) -> set[str]:
        """Items a reader must not be offered again: sent on any channel or acted on."""
        rows = self.conn.execute(
            "SELECT item_id FROM sends WHERE reader = ? "
            "UNION SELECT item_id FROM events WHERE reader = ?",
            (reader, reader),
        )
        return {r[0] for r in rows}

    def seen_by_all(self) -> dict[str, set[str]]:
        """`seen_by` for every reader at once (batch ranking)."""
        out: dict[str, set[str]] = {}
        rows = self.conn.execute(
            "SELECT reader, item_id FROM sends UNION SELECT reader, item_id FROM events"
        )
        for reader, item_id in rows:
            out.setdefault(reader, set()).add(item_id)
        return out

    def reader_handles(self) -> list[str]:
        """Every reader known to the database."""
        return [r[0] for r in self.conn.execute("SELECT handle FROM readers ORDER BY handle")]

    def item_ids(self, *, new_on: str | None = None) -> list[str]:
        """Ids of all items, or of those first seen on a day."""
        if new_on:
            rows = self.conn.execute(
                "SELECT id FROM items WHERE first_seen = ? ORDER BY rowid", (new_on,)
            )
        else:
            rows = self.conn.execute("SELECT id FROM items ORDER BY rowid")
        return [r[0] for r in rows]

    # -- queries ------------------------------------------------------------------------

    def items(
        self,
        *,
        new_on: str | None = None,
        search: str | None = None,
        ids: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Items, optionally those first seen on a day, matching a search, or by id."""
        where, params = [], []
        sql = "SELECT items.* FROM items"
        if search:
            sql += " JOIN items_fts ON items_fts.rowid = items.rowid"
            where.append("items_fts MATCH ?")
            params.append(fts_query(search))
        if new_on:
            where.append("items.first_seen = ?")
            params.append(new_on)
        if ids is not None:
            id_list = list(ids)
            where.append(f"items.id IN ({','.join('?' * len(id_list))})")
            params.extend(id_list)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY items.first_seen, items.rowid"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [_decode_item(row) for row in self.db.query(sql, params)]

    def duplicates_of(self, item_id: str) -> list[dict[str, Any]]:
        """Every record linked to an item, with how it was matched."""
        return list(
            self.db.query(
                "SELECT records.*, sources.name AS source FROM records "
                "JOIN sources ON sources.id = records.source_id WHERE item_id = ? "
                "ORDER BY records.id",
                [item_id],
            )
        )

    def stats(self) -> dict[str, Any]:
        """Counts for `digest stats`: table sizes and new items per day."""

        def count(table: str) -> int:
            return self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

        per_day = self.conn.execute(
            "SELECT first_seen, count(*) FROM items GROUP BY first_seen ORDER BY first_seen"
        ).fetchall()
        runs = self.conn.execute(
            "SELECT status, count(*) FROM ingest_runs GROUP BY status"
        ).fetchall()
        return {
            "items": count("items"),
            "records": count("records"),
            "sources": count("sources"),
            "readers": count("readers"),
            "events": count("events"),
            "sends": count("sends"),
            "runs": dict(runs),
            "new_per_day": dict(per_day),
        }


def _decode_item(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("authors", "tags", "project_urls"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row
