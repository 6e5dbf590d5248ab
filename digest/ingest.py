"""parse -> store -> dedup for a batch of files: one transaction per file.

A file that fails leaves nothing behind but its error row in `ingest_runs`; the
other files in the same call still ingest. Each item is stored under the day its
record shows (a dump may hold several days), and an item's `first_seen` is its
earliest sighting whatever order the files arrive in.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

from digest.dedup import Candidate, Fingerprint, find_match, fingerprint, item_id_for
from digest.errors import DigestError, ParseError
from digest.parsers import (
    STDIN,
    display_name,
    expand_paths,
    is_url,
    parse_bytes,
    peek_day,
    read_bytes,
)
from digest.records import ItemRecord, ParseResult
from digest.store import NewItem, Store
from digest.text import digest_of


@dataclass
class FileOutcome:
    """What happened to one input file."""

    path: str
    status: str  # ok | unchanged | error
    format: str | None = None
    #: The day, or "first..last" for a dump holding several days.
    day: str | None = None
    entries: int = 0
    new: int = 0
    duplicates: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class IngestSummary:
    """Totals over every file of one `ingest` call."""

    files: list[FileOutcome] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for f in self.files if f.status == "error")

    @property
    def entries(self) -> int:
        return sum(f.entries for f in self.files)

    @property
    def new(self) -> int:
        return sum(f.new for f in self.files)

    @property
    def duplicates(self) -> int:
        return sum(f.duplicates for f in self.files)


@dataclass
class _Input:
    """One location to ingest, with its bytes when they could only be read once."""

    location: str
    data: bytes | None = None
    error: str | None = None


@dataclass
class _Parsed:
    location: str
    file_hash: str
    result: ParseResult | None = None
    error: str | None = None
    fingerprints: list[Fingerprint] = field(default_factory=list)
    record_hashes: list[str] = field(default_factory=list)


#: Files parsed ahead of the writer; bounds memory while both cores stay busy.
_WINDOW = 4


def ingest(
    store: Store,
    locations: list[str],
    *,
    fmt: str = "auto",
    given: date | None = None,
    today: date | None = None,
    source: str | None = None,
    progress: Callable[[FileOutcome], None] | None = None,
    started: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Ingest files, directories and URLs; dumps are taken in date order.

    `started(n)` is told how many inputs the locations expand to before the first is
    read; `progress(outcome)` follows each one.

    Parsing and fingerprinting run in a worker process ahead of the writer, which
    keeps a second core busy; writing stays in this process, one file at a time.
    """
    today = today or date.today()
    fallback = given or today
    inputs = _read_ahead(expand_paths(locations))
    if started:
        started(len(inputs))
    inputs.sort(key=lambda item: _order_key(item, fmt, given, today))
    index = KeyIndex(store)
    summary = IngestSummary()
    for parsed in _parse_all(inputs, fmt, given, today):
        outcome = _ingest_parsed(store, index, parsed, fallback, source)
        summary.files.append(outcome)
        if progress:
            progress(outcome)
    return summary


def _read_ahead(locations: list[str]) -> list[_Input]:
    """Read standard input and pipes now, in this process and once.

    Their bytes cannot be read a second time (to peek at a dump's day, then to
    parse it) nor from a worker process; `-` (or a pipe) given twice means the
    same bytes twice.
    """
    inputs: list[_Input] = []
    read: dict[str, _Input] = {}
    for location in locations:
        if location not in read and _read_once(location):
            read[location] = _read_now(location)
        inputs.append(read.get(location) or _Input(location))
    return inputs


def _read_once(location: str) -> bool:
    """True for standard input, a pipe, socket or device: not a regular file or folder."""
    if location == STDIN:
        return True
    if not location.strip() or is_url(location):
        return False
    try:
        mode = os.stat(location).st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _read_now(location: str) -> _Input:
    try:
        return _Input(location, data=read_bytes(location))
    except ParseError as exc:
        return _Input(location, error=str(exc))


def _order_key(item: _Input, fmt: str, given: date | None, today: date) -> tuple[str, str]:
    """Dumps sort by their own day (read from the first lines), the rest by `--date`/today."""
    location = item.location
    peek = item.error is None and not is_url(location) and fmt in ("auto", "dump")
    day = peek_day(location, given, today, item.data) if peek else None
    return (day or given or today).isoformat(), location


def _parse_all(
    inputs: list[_Input], fmt: str, given: date | None, today: date
) -> Iterator[_Parsed]:
    if len(inputs) < 2:
        yield from (_parse_one(item, fmt, given, today) for item in inputs)
        return
    queue, window = deque(inputs), _WINDOW
    while queue:
        yield from _parse_in_pool(queue, window, fmt, given, today)
        window = 1  # a worker died: one input at a time now, so the culprit is known


def _parse_in_pool(
    queue: deque[_Input], window: int, fmt: str, given: date | None, today: date
) -> Iterator[_Parsed]:
    """Parse what is queued in worker processes, in order, until done or a worker dies.

    A worker killed by an input (the kernel's out-of-memory killer, a crash in a C
    library) breaks the whole pool and every input in flight with it. With one
    input in flight that input is the culprit and fails with a message; otherwise
    all go back on the queue, to be parsed one at a time by a fresh pool.
    """
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        pending: deque[tuple[_Input, Future[_Parsed]]] = deque()
        while queue or pending:
            while queue and len(pending) < window:
                item = queue.popleft()
                pending.append((item, pool.submit(_parse_one, item, fmt, given, today)))
            item, future = pending.popleft()
            try:
                parsed = future.result()
            except BrokenProcessPool:
                queue.extendleft(reversed([waiting for waiting, _ in pending]))
                if window > 1:
                    queue.appendleft(item)
                    return
                name = display_name(item.location)
                error = f"{name}: the process reading it stopped abruptly (out of memory?)"
                yield _Parsed(name, "", error=error)
                return
            yield parsed


def _parse_one(item: _Input, fmt: str, given: date | None, today: date) -> _Parsed:
    """Read (unless already read), parse and fingerprint one input, in a worker process.

    Every problem with the input is a ParseError. Anything else is a bug in digest,
    but it still fails this input alone, with a message that says so, rather than
    the whole call with a traceback.
    """
    name = display_name(item.location)
    if item.error is not None:
        return _Parsed(name, "", error=item.error)
    try:
        data = item.data if item.data is not None else read_bytes(item.location)
        result = parse_bytes(data, item.location, fmt=fmt, given=given, today=today)
        fallback = given or today
        fps = [fingerprint(r) for r in result.items]
        hashes = [
            record_hash(_day_of(r, fallback), fp, r)
            for fp, r in zip(fps, result.items, strict=True)
        ]
        file_hash = hashlib.sha256(data).hexdigest()
        return _Parsed(name, file_hash, result, None, fps, hashes)
    except ParseError as exc:
        return _Parsed(name, "", error=str(exc))
    except Exception as exc:  # the last line of defence, see the docstring
        error = f"{name}: internal error ({type(exc).__name__}: {exc}); please report this bug"
        return _Parsed(name, "", error=" ".join(error.split())[:500])


def _day_of(record: ItemRecord, fallback: date) -> str:
    """The day a record was seen: its dump's date line, else `--date` or today."""
    return (record.day or fallback).isoformat()


def _days_label(result: ParseResult, fallback: date) -> str:
    days = sorted({_day_of(r, fallback) for r in result.items})
    if len(days) > 1:
        return f"{days[0]}..{days[-1]}"
    return days[0] if days else (result.day or fallback).isoformat()


def _ingest_parsed(
    store: Store, index: KeyIndex, parsed: _Parsed, fallback: date, source: str | None
) -> FileOutcome:
    if parsed.error is not None or parsed.result is None:
        return _failed(store, parsed.location, parsed.error or "")
    result = parsed.result
    day = _days_label(result, fallback)
    outcome = FileOutcome(parsed.location, "ok", result.format, day, warnings=result.warnings)
    if store.file_seen(parsed.file_hash):
        outcome.status = "unchanged"
        outcome.entries = len(result.items)
        outcome.duplicates = len(result.items)
        return outcome
    try:
        with store.transaction():
            index.refresh()
            written = _store_items(store, index, parsed, outcome, source, fallback)
    except (DigestError, sqlite3.Error) as exc:
        error = str(exc) if isinstance(exc, DigestError) else f"{parsed.location}: database: {exc}"
        return _failed(store, parsed.location, error)
    index.learn(written)  # only once committed: a rolled-back file leaves no keys behind
    return outcome


def _failed(store: Store, location: str, error: str) -> FileOutcome:
    """Record a failed input; a database too broken to record it still gets the outcome."""
    with contextlib.suppress(sqlite3.Error):  # the outcome still reaches the user
        store.record_run(path=location, status="error", errors=1, error=error)
    return FileOutcome(location, "error", error=error)


class KeyIndex:
    """Every dedup key in memory, so a record costs a dict probe, not a query.

    Loaded once, then kept current by `learn` with what this process commits. At the
    start of each file's transaction, SQLite's data_version tells whether another
    connection committed in the meantime; only then is the index reloaded, so keys
    another process wrote are seen before they matter.
    """

    def __init__(self, store: Store):
        self.store = store
        self.keys: dict[str, str] = {}
        self.version: int | None = None
        self._ids: dict[str, str] = {}

    def refresh(self) -> None:
        """Reload when the database changed under another connection (or on first use)."""
        version = self.store.data_version()
        if version == self.version:
            return
        self.keys.clear()
        self.learn(self.store.all_keys())
        self.version = version

    def learn(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Add keys this process has committed (the first owner of a key keeps it)."""
        for key, item_id in pairs:
            self.keys.setdefault(key, self._ids.setdefault(item_id, item_id))


def _source_for(result: ParseResult, location: str, override: str | None) -> tuple[str, str]:
    if override:
        return override, result.format
    if result.format == "dump":
        return "daily-dump", "dump"
    if result.format == "feed" and is_url(location):
        return location, "feed"
    name = result.source_name if result.format == "feed" and result.source_name else None
    if location == display_name(STDIN):
        return name or "stdin", result.format
    return name or Path(location).stem, result.format


def _store_items(
    store: Store,
    index: KeyIndex,
    parsed: _Parsed,
    outcome: FileOutcome,
    override: str | None,
    fallback: date,
) -> list[tuple[str, str]]:
    """Write one parsed file; return the dedup keys written (for the in-memory index)."""
    result = parsed.result
    assert result is not None  # checked by the caller
    name, kind = _source_for(result, parsed.location, override)
    source_id = store.source_id(name, kind, parsed.location)
    run_id = store.record_run(
        path=parsed.location, format=result.format, source_id=source_id,
        file_hash=parsed.file_hash, day=(result.day or fallback).isoformat(),
        status="running", warnings=result.warnings,
    )  # fmt: skip
    batch = Batch(store, index, source_id, run_id, fallback.isoformat())
    work = zip(result.items, parsed.fingerprints, parsed.record_hashes, strict=True)
    for record, fp, rec_hash in work:
        outcome.entries += 1
        _, is_new = batch.add(record, fp, rec_hash)
        if is_new:
            outcome.new += 1
        else:
            outcome.duplicates += 1
    written = batch.flush()
    store.finish_run(
        run_id, status="ok", entries=outcome.entries, new=outcome.new,
        duplicates=outcome.duplicates,
    )  # fmt: skip
    return written


class Batch:
    """The writes of one file, held in memory and flushed together.

    Lookups see the database and the pending rows alike, so a paper repeated inside
    one file is still one paper; flushing with executemany keeps ingest fast. `day`
    is the day of records that carry none of their own (feeds, JSON).
    """

    def __init__(self, store: Store, index: KeyIndex, source_id: int, run_id: int | None, day: str):
        self.store = store
        self.index = index
        self.source_id = source_id
        self.run_id = run_id
        self.day = day
        self.keys: dict[str, str] = {}
        self.items: dict[str, tuple[NewItem, Candidate]] = {}
        self.records: list[dict] = []
        self.enrichments: list[tuple[str, dict[str, str | None]]] = []
        #: Candidates as merged records of this batch left them (see `_enrich_candidate`).
        self.enriched: dict[str, Candidate] = {}
        #: (day, item id) of every sighting of an item already known, in case it is
        #: earlier than the item's first_seen (an older file ingested later).
        self.sightings: list[tuple[str, str]] = []

    def lookup(self, keys: Iterable[str]) -> dict[str, str]:
        """Known keys -> item ids, pending ones included."""
        found = {}
        for key in keys:
            item_id = self.keys.get(key) or self.index.keys.get(key)
            if item_id:
                found[key] = item_id
        return found

    def candidates(self, ids: Iterable[str]) -> list[Candidate]:
        """Dedup candidates, pending ones included."""
        ids = list(ids)
        local = [self.enriched.get(i) or self.items[i][1] for i in ids if i in self.items]
        local += [self.enriched[i] for i in ids if i in self.enriched and i not in self.items]
        stored = [i for i in ids if i not in self.items and i not in self.enriched]
        return local + (self.store.candidates(stored) if stored else [])

    def add(
        self, record: ItemRecord, fp: Fingerprint | None = None, rec_hash: str | None = None
    ) -> tuple[str, bool]:
        """Queue one record: a new item, or a linked sighting of an existing one.

        `fp` and `rec_hash` come precomputed from the parsing worker when available.
        Returns (item id, whether the item is new).
        """
        day = record.day.isoformat() if record.day else self.day
        fp = fp or fingerprint(record)
        rec_hash = rec_hash or record_hash(day, fp, record)
        known = self.lookup((*fp.exact, *fp.blocking))
        match = find_match(fp, lambda keys: known, self.candidates)
        if match is None:
            item_id = self._new_id(fp, known)
            item = _new_item(record, fp, item_id, self.source_id, day)
            cand = Candidate(item_id, fp.title, fp.abstract, record.arxiv_id, record.doi)
            self.items[item_id] = (item, cand)
            reason, score = "new", None
        else:
            item_id, reason, score = match.item_id, match.reason, match.score
            self.enrichments.append((item_id, _enrichment(record)))
            self._enrich_candidate(item_id, fp)
            self.sightings.append((day, item_id))
        for key in (*fp.exact, *fp.blocking):
            self.keys.setdefault(key, item_id)
        self.records.append(
            dict(
                item_id=item_id, source_id=self.source_id, run_id=self.run_id,
                seen_on=day, title=record.title,
                abstract="" if match is None else record.abstract, url=record.url,
                record_hash=rec_hash, match=reason, score=score,
            )
        )  # fmt: skip
        return item_id, match is None

    def _enrich_candidate(self, item_id: str, fp: Fingerprint) -> None:
        """What a merged record adds (an abstract, ids) counts for later records of this file.

        The store is enriched only at flush; until then a title-only item that just
        gained an abstract must compare with that abstract, or a third "Editorial"
        with another abstract would join it.
        """
        (current,) = self.candidates([item_id])
        self.enriched[item_id] = replace(
            current,
            abstract=current.abstract or fp.abstract,
            arxiv_id=current.arxiv_id or fp.arxiv_id,
            doi=current.doi or fp.doi,
        )

    def _new_id(self, fp: Fingerprint, known: dict[str, str]) -> str:
        item_id = item_id_for(fp)
        if fp.canonical_key not in known:
            return item_id
        # The canonical key belongs to a paper this one conflicts with (same title,
        # different arXiv id): derive a distinct id.
        suffix = 2
        candidate = f"{item_id}-{suffix}"
        while candidate in self.items or self.store.item_exists(candidate):
            suffix += 1
            candidate = f"{item_id}-{suffix}"
        return candidate

    def flush(self) -> list[tuple[str, str]]:
        """Write everything queued (inside the caller's transaction); return the keys."""
        written = list(self.keys.items())
        self.store.insert_items([item for item, _ in self.items.values()])
        self.store.add_keys_bulk(written)
        self.store.insert_records(self.records)
        for item_id, fields in self.enrichments:
            self.store.enrich_item(item_id, fields)
        self.store.move_first_seen_back(self.sightings)
        self.items.clear()
        self.keys.clear()
        self.records.clear()
        self.enrichments.clear()
        self.enriched.clear()
        self.sightings.clear()
        return written


def ingest_record(
    store: Store, record: ItemRecord, source_id: int, run_id: int | None, day: str
) -> tuple[str, bool]:
    """Store a single record at once (a batch of one)."""
    index = KeyIndex(store)
    with store.transaction():
        index.refresh()
        batch = Batch(store, index, source_id, run_id, day)
        result = batch.add(record)
        batch.flush()
    return result


def record_hash(day: str, fp: Fingerprint, record: ItemRecord) -> str:
    """Identity of one sighting: a source showing the same text on the same day once."""
    return digest_of(day, fp.title, fp.abstract, record.url or "")


def _new_item(record: ItemRecord, fp, item_id: str, source_id: int, day: str) -> NewItem:
    return NewItem(
        id=item_id,
        canonical_key=fp.canonical_key,
        title=record.title,
        abstract=record.abstract,
        url=record.url,
        authors=record.authors,
        tags=record.tags,
        source_id=source_id,
        first_seen=day,
        published=record.published,
        content_hash=fp.content_hash or digest_of(fp.title, fp.abstract),
        arxiv_id=record.arxiv_id,
        doi=record.doi,
        code_url=record.code_url,
        project_urls=record.project_urls,
        external_id=record.external_id,
    )


def _enrichment(record: ItemRecord) -> dict[str, str | None]:
    return {
        "url": record.url,
        "abstract": record.abstract,
        "arxiv_id": record.arxiv_id,
        "doi": record.doi,
        "code_url": record.code_url,
        "published": record.published,
    }
