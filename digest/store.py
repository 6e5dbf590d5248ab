"""All SQL lives here: the schema, its named migrations, and every query.

The database is one SQLite file in WAL mode, opened through sqlite-utils. Hot paths
(ingest, key lookups) use prepared statements on the same connection.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlite_utils

from digest.dedup import Candidate
from digest.errors import ForeignDatabase, NoDatabase, StorageError
from digest.records import Explanation, Pick, ReaderDigest, StoredItem

DEFAULT_DB = "digest.db"
#: SQLite's largest integer: a bound parameter above it fails with "datatype mismatch".
MAX_INTEGER = 2**63 - 1


def now_iso() -> str:
    """UTC timestamp for audit columns."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def event_time(moment: datetime) -> str:
    """How an event's time is stored: UTC to the microsecond, one fixed-width spelling.

    Equal instants are then equal strings (the events table's uniqueness relies on
    it) and strings sort as times. A time without an offset is taken as UTC.
    Raises OverflowError for a time that is not a UTC date (year 1 or 9999 edges).
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def event_tag(tag: str) -> str:
    """How an event's tag is stored: NFKC, case-folded, spaces collapsed ('MoE' = 'moe')."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", tag).casefold())
    return " ".join(folded.split())


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


def m005_digest_ledger(db: sqlite_utils.Database) -> None:
    """One ledger of what each audience was sent, and a record of every day's digest.

    - `sends` loses its foreign key on readers so a team (`team:<name>`) can be an
      audience too, and imported 'sent' events move into it: training and ranking
      both read `sends`, so the "sent but never clicked" negative survives delivery.
    - `digests` and `digest_items` hold each audience's planned picks for a day, so
      a re-run delivers the same picks on every channel; `deliveries` records each
      (digest, channel) outcome, written in the same transaction as its `sends`.
    - readers gain `unsubscribed_at` and a private `feed_token`.
    """
    db.executescript(
        """
        CREATE TABLE sends_new (
            reader TEXT NOT NULL,
            item_id TEXT NOT NULL REFERENCES items(id),
            channel TEXT NOT NULL,
            digest_date TEXT NOT NULL,
            sent_at TEXT NOT NULL,
            PRIMARY KEY (reader, item_id, channel)
        ) WITHOUT ROWID;
        INSERT OR IGNORE INTO sends_new SELECT reader, item_id, channel, digest_date, sent_at
            FROM sends;
        INSERT OR IGNORE INTO sends_new (reader, item_id, channel, digest_date, sent_at)
            SELECT reader, item_id, 'import', substr(time, 1, 10), time FROM events
            WHERE event = 'sent';
        DELETE FROM events WHERE event = 'sent';
        DROP TABLE sends;
        ALTER TABLE sends_new RENAME TO sends;
        CREATE INDEX sends_item ON sends(item_id);
        CREATE INDEX sends_day ON sends(digest_date);
        CREATE TABLE digests (
            id INTEGER PRIMARY KEY,
            audience TEXT NOT NULL,
            digest_date TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (audience, digest_date)
        );
        CREATE INDEX digests_day ON digests(digest_date);
        CREATE TABLE digest_items (
            digest_id INTEGER NOT NULL REFERENCES digests(id),
            position INTEGER NOT NULL,
            item_id TEXT NOT NULL REFERENCES items(id),
            score REAL NOT NULL,
            why TEXT NOT NULL DEFAULT '{}',
            members TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (digest_id, position)
        ) WITHOUT ROWID;
        CREATE TABLE deliveries (
            digest_id INTEGER NOT NULL REFERENCES digests(id),
            channel TEXT NOT NULL,
            status TEXT NOT NULL,
            target TEXT,
            detail TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (digest_id, channel)
        ) WITHOUT ROWID;
        ALTER TABLE readers ADD COLUMN unsubscribed_at TEXT;
        ALTER TABLE readers ADD COLUMN feed_token TEXT;
        CREATE UNIQUE INDEX readers_feed_token ON readers(feed_token);
        """
    )


def m006_embeddings(db: sqlite_utils.Database) -> None:
    """Each item's sentence embedding, computed once and kept.

    Keyed by item and by the model and text recipe that made it, so changing either
    makes old vectors unused rather than wrong.
    """
    db.executescript(
        """
        CREATE TABLE embeddings (
            item_id TEXT NOT NULL REFERENCES items(id),
            model TEXT NOT NULL,
            vector BLOB NOT NULL,
            PRIMARY KEY (item_id, model)
        ) WITHOUT ROWID;
        """
    )


def m007_canonical_event_times(db: sqlite_utils.Database) -> None:
    """Event times in one UTC spelling (`event_time`) and tags folded (`event_tag`).

    The same instant spelled two ways (`09:00+01:00` and `08:00Z`) or one tag in two
    cases (`MoE`, `moe`) was stored as two events, and re-importing a file spelled
    differently added it again. Changed rows are taken out and put back in their new
    form, so each group of equal events keeps one row (an unchanged one if there is
    one, else the oldest). A stored time that does not parse (none should) is kept.
    """
    rows = db.execute("SELECT id, reader, item_id, event, tag, time, origin FROM events")
    changed = []
    for row_id, reader, item_id, event, tag, stamp, origin in rows.fetchall():
        new_time, new_tag = _stored_time(stamp), event_tag(tag)
        if (new_time, new_tag) != (stamp, tag):
            changed.append((row_id, reader, item_id, event, new_tag, new_time, origin))
    db.conn.executemany("DELETE FROM events WHERE id = ?", [(row[0],) for row in changed])
    db.conn.executemany(
        "INSERT OR IGNORE INTO events (id, reader, item_id, event, tag, time, origin) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        sorted(changed),
    )


def _stored_time(stamp: str) -> str:
    try:
        return event_time(datetime.fromisoformat(stamp))
    except (ValueError, OverflowError):
        return stamp


def m008_embedding_text_hash(db: sqlite_utils.Database) -> None:
    """Each stored vector names the text it was made from.

    An item can gain an abstract after it was embedded (a later sighting enriches
    it); a vector of the old text is then stale. Vectors stored before this have
    no hash and are made again once.
    """
    db.executescript("ALTER TABLE embeddings ADD COLUMN text_hash TEXT;")


def m009_team_feed_tokens(db: sqlite_utils.Database) -> None:
    """A private feed token per team, as readers have one (`readers.feed_token`).

    Teams live in profile files, not in the database, so their tokens get a table
    of their own, keyed by team name.
    """
    db.executescript(
        """
        CREATE TABLE team_feeds (
            team TEXT PRIMARY KEY,
            feed_token TEXT NOT NULL UNIQUE
        ) WITHOUT ROWID;
        """
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    m001_initial,
    m002_readers_feedback,
    m003_item_keys_by_key,
    m004_fts_detail_column,
    m005_digest_ledger,
    m006_embeddings,
    m007_canonical_event_times,
    m008_embedding_text_hash,
    m009_team_feed_tokens,
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


#: Tables whose rows are data someone would miss; the others are derived or bookkeeping.
_DATA_TABLES = ("items", "readers", "events", "sends")


def remove_if_unused(location: str) -> bool:
    """Delete a digest database file (and its WAL files) that holds no data; say if it did.

    For a command that created the database and then failed before storing anything:
    a mistyped `--db` must not leave an empty database behind. Anything that is not
    such a file (someone else's database, one with items) is left alone.
    """
    try:
        conn = sqlite3.connect(f"file:{_uri_path(location)}?mode=rw", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if tables and "_migrations" not in tables:
                return False
            for table in _DATA_TABLES:
                if table in tables and conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():
                    return False
        finally:
            conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(location + suffix).unlink(missing_ok=True)
    except (sqlite3.Error, OSError):
        return False
    return True


def _uri_path(location: str) -> str:
    return quote(os.path.abspath(location))


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

    def __init__(self, db: sqlite_utils.Database, path: str, *, created: bool = False):
        self.db = db
        self.path = path
        self.conn: sqlite3.Connection = db.conn
        #: True when `open` created the file (it did not exist before).
        self.created = created

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, create: bool = True) -> Store:
        """Open and migrate the database at `path`, creating it only when `create` is true.

        Commands that only read pass `create=False`, so a mistyped `--db` is an error
        rather than a new, empty database. An SQLite file that digest did not create
        (tables but no `_migrations`) is refused before anything is written to it.
        """
        location = str(DEFAULT_DB if path is None else path)
        created = False
        if location != ":memory:":
            _check_location(location, create=create)
            created = not os.path.lexists(location)
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
            store = cls(db, location, created=created)
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

    def record_link_event(
        self, reader: str, item_id: str, event: str, *, now: datetime, window: float
    ) -> int | None:
        """Record an event from a digest link, once per `window` seconds; return its id.

        A second press of the same link within the window (a double click, a
        refresh, a mail client following it twice) returns the first event's id
        and adds nothing. The check and the insert share one write transaction, so
        concurrent requests cannot both count.
        """
        since = event_time(now - timedelta(seconds=window))
        stamp = event_time(now)
        with self.transaction():
            row = self.conn.execute(
                "SELECT id FROM events WHERE reader = ? AND item_id = ? AND event = ? "
                "AND origin = 'link' AND time >= ? ORDER BY id DESC LIMIT 1",
                (reader, item_id, event, since),
            ).fetchone()
            if row is not None:
                return None
            self.ensure_reader(reader, origin="feedback")
            cur = self.conn.execute(
                "INSERT INTO events (reader, item_id, event, tag, time, origin) "
                "VALUES (?, ?, ?, '', ?, 'link')",
                (reader, item_id, event, stamp),
            )
            return int(cur.lastrowid)

    def undo_link_event(self, reader: str, item_id: str, event: str, *, since: datetime) -> bool:
        """Remove the reader's latest such link event recorded since `since` (an undo)."""
        with self.transaction():
            cur = self.conn.execute(
                "DELETE FROM events WHERE id = (SELECT id FROM events WHERE reader = ? AND "
                "item_id = ? AND event = ? AND origin = 'link' AND time >= ? "
                "ORDER BY id DESC LIMIT 1)",
                (reader, item_id, event, event_time(since)),
            )
            return cur.rowcount == 1

    def reader_for_feed_token(self, token: str) -> str | None:
        """The handle whose private feed token this is, if any."""
        row = self.conn.execute(
            "SELECT handle FROM readers WHERE feed_token = ?", (token,)
        ).fetchone()
        return row[0] if row else None

    def record_send(self, reader: str, item_id: str, *, channel: str, digest_date: str) -> bool:
        """Add to the send ledger; False when this reader already got it on this channel."""
        return self.record_sends([(reader, item_id, channel, digest_date)]) == 1

    def record_sends(self, rows: Iterable[tuple[str, str, str, str]]) -> int:
        """Add (audience, item id, channel, digest date) rows; return how many were new.

        The ledger is the one record of what was sent: ranking never offers an item
        in it again, and training reads it for "sent but never clicked" negatives.
        """
        stamp = now_iso()
        cur = self.conn.executemany(
            "INSERT OR IGNORE INTO sends (reader, item_id, channel, digest_date, sent_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(*row, stamp) for row in rows],
        )
        return cur.rowcount

    def engagement(self, weights: Mapping[str, float]) -> list[tuple[str, str, float]]:
        """(reader, item id, summed event weight) for every pair with any event, in order.

        Summed here, by SQLite, rather than over half a million fetched event rows in
        Python; an event kind `weights` does not name counts zero.
        """
        cases = " ".join("WHEN ? THEN ?" for _ in weights)
        params = [value for pair in weights.items() for value in pair]
        return self.conn.execute(
            f"SELECT reader, item_id, SUM(CASE event {cases} ELSE 0.0 END) FROM events "
            "GROUP BY reader, item_id ORDER BY reader, item_id",
            params,
        ).fetchall()

    def sent_pairs(self, before: str | None = None) -> list[tuple[str, str]]:
        """(reader, item id) of every item sent to a reader (not a team), before a day if given."""
        return self.conn.execute(
            "SELECT reader, item_id FROM sends WHERE substr(reader, 1, 5) != 'team:' "
            "AND (? IS NULL OR digest_date < ?) GROUP BY reader, item_id ORDER BY reader, item_id",
            (before, before),
        ).fetchall()

    def sends(self) -> list[tuple[str, str, str]]:
        """(audience, item id, digest date) for every item sent on any channel, once each."""
        return self.conn.execute(
            "SELECT reader, item_id, min(digest_date) FROM sends GROUP BY reader, item_id "
            "ORDER BY reader, item_id"
        ).fetchall()

    def events(self, reader: str | None = None) -> list[tuple[str, str, str, str, str]]:
        """(reader, item_id, event, tag, time) rows, oldest first."""
        sql = "SELECT reader, item_id, event, tag, time FROM events"
        params: tuple = ()
        if reader is not None:
            sql += " WHERE reader = ?"
            params = (reader,)
        return self.conn.execute(sql + " ORDER BY time, id", params).fetchall()

    def seen_by_all(self) -> dict[str, set[str]]:
        """Per audience, the items never to offer again: sent on any channel, or acted on."""
        out: dict[str, set[str]] = {}
        rows = self.conn.execute(
            "SELECT reader, item_id FROM sends UNION SELECT reader, item_id FROM events"
        )
        for reader, item_id in rows:
            out.setdefault(reader, set()).add(item_id)
        return out

    def unsubscribed(self) -> set[str]:
        """Handles of readers who unsubscribed: `digest run` skips them."""
        rows = self.conn.execute("SELECT handle FROM readers WHERE unsubscribed_at IS NOT NULL")
        return {r[0] for r in rows}

    def set_subscribed(self, handle: str, subscribed: bool) -> bool:
        """Unsubscribe or re-subscribe a reader; False when nothing changed."""
        stamp = None if subscribed else now_iso()
        cur = self.conn.execute(
            "UPDATE readers SET unsubscribed_at = ? WHERE handle = ? "
            "AND (unsubscribed_at IS NULL) = ?",
            (stamp, handle, not subscribed),
        )
        return cur.rowcount == 1

    def feed_token(self, handle: str) -> str:
        """The reader's private feed token, created on first use."""
        row = self.conn.execute(
            "SELECT feed_token FROM readers WHERE handle = ?", (handle,)
        ).fetchone()
        if row is None:
            raise StorageError(f"unknown reader '{handle}'")
        return row[0] or self.rotate_feed_token(handle)

    def feed_tokens(self, handles: Sequence[str]) -> dict[str, str]:
        """Feed tokens of many readers, creating the missing ones in one transaction."""
        out: dict[str, str] = {}
        for chunk in _chunks(list(handles)):
            marks = ",".join("?" * len(chunk))
            out.update(
                self.conn.execute(
                    f"SELECT handle, feed_token FROM readers WHERE handle IN ({marks}) "
                    "AND feed_token IS NOT NULL",
                    chunk,
                ).fetchall()
            )
        missing = [h for h in handles if h not in out]
        if missing:
            known = set(self.reader_handles())
            with self.transaction():
                for handle in missing:
                    if handle in known:
                        out[handle] = self.rotate_feed_token(handle)
        return out

    def audience_for_feed_token(self, token: str) -> str | None:
        """The reader handle, or `team:<name>`, whose private feed token this is."""
        handle = self.reader_for_feed_token(token)
        if handle is not None:
            return handle
        row = self.conn.execute(
            "SELECT team FROM team_feeds WHERE feed_token = ?", (token,)
        ).fetchone()
        return f"team:{row[0]}" if row else None

    def team_feed_tokens(self, teams: Sequence[str]) -> dict[str, str]:
        """Feed tokens of these teams, creating the missing ones in one transaction."""
        out: dict[str, str] = {}
        for chunk in _chunks(list(teams)):
            marks = ",".join("?" * len(chunk))
            out.update(
                self.conn.execute(
                    f"SELECT team, feed_token FROM team_feeds WHERE team IN ({marks})", chunk
                ).fetchall()
            )
        missing = [t for t in teams if t not in out]
        if missing:
            with self.transaction():
                for team in missing:
                    out[team] = self.rotate_team_feed_token(team)
        return out

    def rotate_team_feed_token(self, team: str) -> str:
        """Give a team a new random feed token (its first one, or a replacement)."""
        token = secrets.token_urlsafe(24)
        self.conn.execute(
            "INSERT INTO team_feeds (team, feed_token) VALUES (?, ?) "
            "ON CONFLICT (team) DO UPDATE SET feed_token = excluded.feed_token",
            (team, token),
        )
        return token

    def rotate_feed_token(self, handle: str) -> str:
        """Give a reader a new random feed token: the old feed URL stops working."""
        token = secrets.token_urlsafe(24)
        cur = self.conn.execute(
            "UPDATE readers SET feed_token = ? WHERE handle = ?", (token, handle)
        )
        if cur.rowcount != 1:  # a token stored nowhere would be a feed URL that never works
            raise StorageError(f"unknown reader '{handle}'")
        return token

    # -- digests: each audience's planned picks for a day, and their deliveries ---------

    def planned(self, day: str) -> dict[str, int]:
        """Audience -> digest id for every digest planned for a day."""
        rows = self.conn.execute(
            "SELECT audience, id FROM digests WHERE digest_date = ?", (day,)
        ).fetchall()
        return dict(rows)

    def save_plan(self, audience: str, day: str, picks: Sequence[Pick]) -> int:
        """Store an audience's picks for a day (once: an existing plan is kept as it is).

        Planning before delivering means a re-run after a crash delivers the same
        picks on every channel, even if the model changed in between.
        """
        self.conn.execute(
            "INSERT OR IGNORE INTO digests (audience, digest_date, created_at) VALUES (?, ?, ?)",
            (audience, day, now_iso()),
        )
        digest_id = self.conn.execute(
            "SELECT id FROM digests WHERE audience = ? AND digest_date = ?", (audience, day)
        ).fetchone()[0]
        self.conn.executemany(
            "INSERT OR IGNORE INTO digest_items (digest_id, position, item_id, score, why, members)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (digest_id, p.rank, p.item.id, float(p.score), json.dumps(p.why.to_json()),
                 json.dumps(list(p.members)) if p.members else "[]")
                for p in picks
            ],
        )  # fmt: skip
        return int(digest_id)

    def digests(self, digest_ids: Iterable[int]) -> dict[int, ReaderDigest]:
        """Planned digests by id, with their items as typed records."""
        ids = list(digest_ids)
        if not ids:
            return {}
        heads = {}
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            heads.update(
                (r[0], (r[1], r[2]))
                for r in self.conn.execute(
                    f"SELECT id, audience, digest_date FROM digests WHERE id IN ({marks})", chunk
                )
            )
        rows: dict[int, list[tuple]] = {i: [] for i in heads}
        for chunk in _chunks(list(heads)):
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                "SELECT digest_id, position, item_id, score, why, members FROM digest_items "
                f"WHERE digest_id IN ({marks}) ORDER BY digest_id, position",
                chunk,
            ):
                rows[row[0]].append(row)
        items = self.stored_items(ids={r[2] for entries in rows.values() for r in entries})
        by_id = {item.id: item for item in items}
        return {
            digest_id: ReaderDigest(
                audience, date.fromisoformat(day), tuple(_pick(r, by_id) for r in rows[digest_id])
            )
            for digest_id, (audience, day) in heads.items()
        }

    def recent_digests(self, audience: str, since: str, until: str) -> list[int]:
        """Ids of an audience's digests from `since` to `until` (inclusive), newest first."""
        rows = self.conn.execute(
            "SELECT id FROM digests WHERE audience = ? AND digest_date BETWEEN ? AND ? "
            "ORDER BY digest_date DESC",
            (audience, since, until),
        )
        return [r[0] for r in rows]

    def digests_of(
        self, audiences: Sequence[str], since: str, until: str, *, besides: str = ""
    ) -> dict[str, list[ReaderDigest]]:
        """Each audience's digests from `since` to `until`, newest first (feeds need them).

        `besides` leaves one day out: the daily run holds that day's digests already,
        and reading ten thousand of them back cost seconds.
        """
        wanted = set(audiences)
        ids: dict[int, str] = {}
        for chunk in _chunks(sorted(wanted)):
            marks = ",".join("?" * len(chunk))
            ids.update(
                (r[0], r[1])
                for r in self.conn.execute(
                    f"SELECT id, audience FROM digests WHERE audience IN ({marks}) "
                    "AND digest_date BETWEEN ? AND ? AND digest_date != ?",
                    (*chunk, since, until, besides),
                )
            )
        out: dict[str, list[ReaderDigest]] = {a: [] for a in wanted}
        for digest in self.digests(ids).values():
            out[digest.audience].append(digest)
        for found in out.values():
            found.sort(key=lambda d: d.day, reverse=True)
        return out

    def deliveries(self, day: str) -> dict[tuple[int, str], str]:
        """(digest id, channel) -> status for every delivery attempted for a day."""
        rows = self.conn.execute(
            "SELECT d.digest_id, d.channel, d.status FROM deliveries d "
            "JOIN digests g ON g.id = d.digest_id WHERE g.digest_date = ?",
            (day,),
        )
        return {(r[0], r[1]): r[2] for r in rows}

    def delivery_targets(self, channel: str, since: str) -> list[str]:
        """Where a channel's deliveries of digests from `since` on were written."""
        rows = self.conn.execute(
            "SELECT d.target FROM deliveries d JOIN digests g ON g.id = d.digest_id "
            "WHERE d.channel = ? AND d.status = 'delivered' AND g.digest_date >= ? "
            "AND d.target IS NOT NULL ORDER BY g.digest_date, d.digest_id",
            (channel, since),
        )
        return [r[0] for r in rows]

    def record_deliveries(self, rows: Sequence[dict]) -> None:
        """Record many delivered (digest, channel) pairs and their sends in one transaction.

        Each row has `digest_id`, `channel`, `status`, `target` and `sends`.
        """
        stamp = now_iso()
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO deliveries (digest_id, channel, status, target, detail, attempts, "
                "updated_at) VALUES (?, ?, ?, ?, NULL, 1, ?) ON CONFLICT (digest_id, channel) "
                "DO UPDATE SET status = excluded.status, target = excluded.target, "
                "attempts = deliveries.attempts + 1, updated_at = excluded.updated_at",
                [(r["digest_id"], r["channel"], r["status"], r["target"], stamp) for r in rows],
            )
            self.record_sends(s for r in rows if r["status"] == "delivered" for s in r["sends"])

    def record_delivery(
        self,
        digest_id: int,
        channel: str,
        status: str,
        *,
        target: str | None = None,
        detail: str | None = None,
        attempts: int = 1,
        sends: Iterable[tuple[str, str, str, str]] = (),
    ) -> None:
        """Record one (digest, channel) outcome and its sends, in one transaction."""
        with self.transaction():
            self.conn.execute(
                "INSERT INTO deliveries (digest_id, channel, status, target, detail, attempts, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest_id, channel) DO "
                "UPDATE SET status = excluded.status, target = excluded.target, "
                "detail = excluded.detail, attempts = deliveries.attempts + excluded.attempts, "
                "updated_at = excluded.updated_at",
                (digest_id, channel, status, target, detail, attempts, now_iso()),
            )
            if status == "delivered":
                self.record_sends(sends)

    def embeddings(self, ids: Iterable[str], model: str) -> dict[str, tuple[bytes, str | None]]:
        """Stored vectors (raw float32 bytes) of these items made by `model`, with the
        hash of the text each was made from."""
        out: dict[str, tuple[bytes, str | None]] = {}
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT item_id, vector, text_hash FROM embeddings WHERE model = ? "
                f"AND item_id IN ({marks})",
                (model, *chunk),
            ).fetchall()
            out.update((item_id, (vector, text_hash)) for item_id, vector, text_hash in rows)
        return out

    def save_embeddings(self, model: str, vectors: Iterable[tuple[str, bytes, str]]) -> None:
        """Keep vectors made by `model` from texts with these hashes (replacing older ones)."""
        with self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO embeddings (item_id, model, vector, text_hash) "
                "VALUES (?, ?, ?, ?)",
                [(item_id, model, blob, text_hash) for item_id, blob, text_hash in vectors],
            )

    def stored_items(
        self, *, ids: Iterable[str] | None = None, new_on: str | None = None
    ) -> list[StoredItem]:
        """Items as typed records (all, by id, or first seen on a day), oldest first."""
        if ids is None:
            return [_stored(row) for row in self._item_rows(new_on=new_on)]
        out: list[StoredItem] = []
        for chunk in _chunks(list(ids)):
            out.extend(_stored(row) for row in self._item_rows(ids=chunk))
        return out

    def _item_rows(self, **where: Any) -> Iterator[dict[str, Any]]:
        sql = (
            "SELECT items.*, coalesce(sources.name, '') AS source FROM items "
            "LEFT JOIN sources ON sources.id = items.source_id"
        )
        params: list[Any] = []
        if where.get("ids") is not None:
            sql += f" WHERE items.id IN ({','.join('?' * len(where['ids']))})"
            params = list(where["ids"])
        elif where.get("new_on"):
            sql += " WHERE items.first_seen = ?"
            params = [where["new_on"]]
        yield from self.db.query(sql + " ORDER BY items.first_seen, items.rowid", params)

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
            sql += " LIMIT ?"
            params.append(min(int(limit), MAX_INTEGER))
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

    def has_event(self, reader: str, item_id: str, event: str, tag: str = "") -> bool:
        """True when this reader has this event (and tag) on this item, at any time."""
        row = self.conn.execute(
            "SELECT 1 FROM events WHERE reader = ? AND item_id = ? AND event = ? AND tag = ? "
            "LIMIT 1",
            (reader, item_id, event, tag),
        ).fetchone()
        return row is not None


def _chunks(values: list, size: int = 900) -> Iterator[list]:
    """Slices small enough for SQLite's bound-parameter limit."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _stored(row: dict[str, Any]) -> StoredItem:
    row = _decode_item(row)
    return StoredItem(
        id=row["id"],
        title=row["title"],
        abstract=row["abstract"] or "",
        url=row["url"] or _arxiv_url(row["arxiv_id"]),
        authors=tuple(row["authors"]),
        tags=tuple(row["tags"]),
        first_seen=row["first_seen"],
        published=row["published"],
        arxiv_id=row["arxiv_id"],
        doi=row["doi"],
        code_url=row["code_url"],
        project_urls=tuple(row["project_urls"]),
        source=row.get("source") or "",
    )


def _arxiv_url(arxiv_id: str | None) -> str | None:
    """A paper known only by its arXiv id (a dump entry) links to its abstract page."""
    if arxiv_id and re.fullmatch(r"[a-z0-9.\-/]+", arxiv_id):
        return f"https://arxiv.org/abs/{arxiv_id}"
    return None


def _pick(row: tuple, items: dict[str, StoredItem]) -> Pick:
    _digest_id, position, item_id, score, why, members = row
    return Pick(
        item=items[item_id],
        rank=position,
        score=score,
        why=Explanation.from_json(json.loads(why)),
        members=tuple(json.loads(members)),
    )


def _decode_item(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("authors", "tags", "project_urls"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row
