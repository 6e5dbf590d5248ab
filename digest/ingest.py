"""parse -> store -> dedup for a batch of files: one transaction per file.

A file that fails leaves nothing behind but its error row in `ingest_runs`; the
other files in the same call still ingest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from digest.dedup import find_match, fingerprint, item_id_for
from digest.errors import DigestError, ParseError
from digest.parsers import expand_paths, is_url, parse_location, read_bytes
from digest.records import ItemRecord, ParseResult
from digest.store import NewItem, Store
from digest.text import digest_of


@dataclass
class FileOutcome:
    """What happened to one input file."""

    path: str
    status: str  # ok | unchanged | error
    format: str | None = None
    day: str | None = None
    entries: int = 0
    new: int = 0
    duplicates: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    new_ids: list[str] = field(default_factory=list)


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
class _Parsed:
    location: str
    file_hash: str
    result: ParseResult | None = None
    error: str | None = None


def ingest(
    store: Store,
    locations: list[str],
    *,
    fmt: str = "auto",
    given: date | None = None,
    today: date | None = None,
    source: str | None = None,
    progress: Callable[[FileOutcome], None] | None = None,
) -> IngestSummary:
    """Ingest files, directories and URLs; dumps are taken in date order."""
    today = today or date.today()
    summary = IngestSummary()
    parsed = [_parse_one(loc, fmt, given, today) for loc in expand_paths(locations)]
    for item in sorted(parsed, key=lambda p: _order_key(p, given or today)):
        outcome = _ingest_parsed(store, item, given or today, source)
        summary.files.append(outcome)
        if progress:
            progress(outcome)
    return summary


def _order_key(parsed: _Parsed, fallback: date) -> tuple[str, str]:
    day = parsed.result.day if parsed.result and parsed.result.day else fallback
    return day.isoformat(), parsed.location


def _parse_one(location: str, fmt: str, given: date | None, today: date) -> _Parsed:
    try:
        data = read_bytes(location)
        file_hash = hashlib.sha256(data).hexdigest()
        result = parse_location(location, fmt=fmt, given=given, today=today)
        return _Parsed(location, file_hash, result)
    except ParseError as exc:
        return _Parsed(location, "", error=str(exc))


def _ingest_parsed(
    store: Store, parsed: _Parsed, fallback: date, source: str | None
) -> FileOutcome:
    if parsed.error is not None or parsed.result is None:
        store.record_run(path=parsed.location, status="error", errors=1, error=parsed.error)
        return FileOutcome(parsed.location, "error", error=parsed.error)
    result = parsed.result
    day = (result.day or fallback).isoformat()
    outcome = FileOutcome(parsed.location, "ok", result.format, day, warnings=result.warnings)
    if store.file_seen(parsed.file_hash):
        outcome.status = "unchanged"
        outcome.entries = len(result.items)
        outcome.duplicates = len(result.items)
        return outcome
    try:
        with store.transaction():
            _store_items(store, parsed, outcome, source)
    except DigestError as exc:
        store.record_run(path=parsed.location, status="error", errors=1, error=str(exc))
        return FileOutcome(parsed.location, "error", error=str(exc))
    return outcome


def _source_for(result: ParseResult, location: str, override: str | None) -> tuple[str, str]:
    if override:
        return override, result.format
    if result.format == "dump":
        return "daily-dump", "dump"
    if result.format == "feed" and is_url(location):
        return location, "feed"
    name = result.source_name if result.format == "feed" and result.source_name else None
    return name or Path(location).stem, result.format


def _store_items(store: Store, parsed: _Parsed, outcome: FileOutcome, override: str | None) -> None:
    result = parsed.result
    assert result is not None  # checked by the caller
    name, kind = _source_for(result, parsed.location, override)
    source_id = store.source_id(name, kind, parsed.location)
    run_id = store.record_run(
        path=parsed.location, format=result.format, source_id=source_id,
        file_hash=parsed.file_hash, day=outcome.day, status="running",
        warnings=result.warnings,
    )  # fmt: skip
    for record in result.items:
        outcome.entries += 1
        item_id, is_new = ingest_record(store, record, source_id, run_id, outcome.day or "")
        if is_new:
            outcome.new += 1
            outcome.new_ids.append(item_id)
        else:
            outcome.duplicates += 1
    store.finish_run(
        run_id, status="ok", entries=outcome.entries, new=outcome.new,
        duplicates=outcome.duplicates,
    )  # fmt: skip


def ingest_record(
    store: Store, record: ItemRecord, source_id: int, run_id: int | None, day: str
) -> tuple[str, bool]:
    """Store one record: a new item, or a linked sighting of an existing one.

    Returns (item id, whether the item is new).
    """
    fp = fingerprint(record)
    record_hash = digest_of(day, fp.title, fp.abstract, record.url or "")
    if store.record_exists(source_id, record_hash):
        match = store.lookup_keys(fp.exact[:1])
        return next(iter(match.values()), ""), False
    match = find_match(fp, store.lookup_keys, store.candidates)
    if match is None:
        item_id = _new_item_id(store, fp)
        store.insert_item(_new_item(record, fp, item_id, source_id, day))
        reason, score = "new", None
    else:
        item_id, reason, score = match.item_id, match.reason, match.score
        store.enrich_item(item_id, _enrichment(record))
    store.add_keys(item_id, fp.exact + fp.blocking)
    store.insert_record(
        item_id=item_id, source_id=source_id, run_id=run_id, seen_on=day,
        title=record.title, abstract=record.abstract, url=record.url,
        record_hash=record_hash, match=reason, score=score,
    )  # fmt: skip
    return item_id, match is None


def _new_item_id(store: Store, fp) -> str:
    item_id = item_id_for(fp)
    # Two different papers whose canonical keys collide in the hash (or share a title
    # but carry different arXiv ids) still need distinct ids.
    suffix = 1
    candidate = item_id
    while store.item_exists(candidate):
        suffix += 1
        candidate = f"{item_id}-{suffix}"
    return candidate


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
        content_hash=digest_of(fp.title, fp.abstract),
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
