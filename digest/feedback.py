"""Feedback events: what readers clicked, liked, disliked, tagged and were sent.

Import files are CSV (header `user,item,event[,time][,tag]`) or JSON Lines with the
same fields. `item` may be an item id, a URL, an arXiv id or an exact title; it is
resolved through the dedup keys, so any sighting of a paper finds the paper.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from digest.dedup import fingerprint
from digest.errors import ParseError
from digest.links import find_arxiv_id
from digest.parsers import decode_text, read_bytes
from digest.records import ItemRecord
from digest.store import Store

EVENTS = ("click", "like", "dislike", "tag", "sent")
#: How much each event says about interest: likes and tags count double, a dislike
#: is a negative; `sent` alone is not a signal (but sent-and-never-clicked is).
EVENT_WEIGHTS = {"click": 1.0, "like": 2.0, "tag": 2.0, "dislike": -1.0, "sent": 0.0}
REQUIRED = ("user", "item", "event")


@dataclass(frozen=True)
class FeedbackRow:
    """One event as read from an import file."""

    line: int
    user: str
    item: str
    event: str
    time: str
    tag: str = ""


@dataclass
class ImportReport:
    """What `digest feedback import` did, with every rejected row and why."""

    imported: int = 0
    already_known: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.problems)


def now_stamp() -> str:
    """The time recorded for an event that carries none."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def read_feedback(location: str) -> tuple[list[FeedbackRow], list[tuple[int, str]]]:
    """Parse a CSV or JSONL file into rows; malformed rows are returned as problems."""
    text = decode_text(read_bytes(location), location)
    if text.lstrip().startswith("{"):
        return _read_jsonl(text, location)
    return _read_csv(text, location)


def _read_csv(text: str, location: str) -> tuple[list[FeedbackRow], list[tuple[int, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ParseError(f"CSV header lacks column(s): {', '.join(missing)}", path=location, line=1)
    reader.fieldnames = header
    rows, problems = [], []
    for raw in reader:
        row = _row(reader.line_num, {k: (v or "").strip() for k, v in raw.items() if k})
        (rows if isinstance(row, FeedbackRow) else problems).append(row)
    return rows, problems


def _read_jsonl(text: str, location: str) -> tuple[list[FeedbackRow], list[tuple[int, str]]]:
    rows, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append((number, f"invalid JSON: {exc.msg}"))
            continue
        if not isinstance(data, dict):
            problems.append((number, "expected a JSON object"))
            continue
        row = _row(number, {k: "" if v is None else str(v).strip() for k, v in data.items()})
        (rows if isinstance(row, FeedbackRow) else problems).append(row)
    return rows, problems


def _row(line: int, data: dict[str, str]) -> FeedbackRow | tuple[int, str]:
    for column in REQUIRED:
        if not data.get(column):
            return line, f"missing '{column}'"
    event = data["event"].lower()
    if event not in EVENTS:
        return line, f"unknown event {data['event']!r} (one of {', '.join(EVENTS)})"
    if event == "tag" and not data.get("tag"):
        return line, "a 'tag' event needs a tag"
    stamp = data.get("time") or now_stamp()
    if not _valid_time(stamp):
        return line, f"bad time {stamp!r} (ISO 8601 expected)"
    return FeedbackRow(line, data["user"].lower(), data["item"], event, stamp, data.get("tag", ""))


def _valid_time(stamp: str) -> bool:
    try:
        datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def resolve_item(store: Store, ref: str) -> str | None:
    """Find an item by id, URL, arXiv id or exact title (through the dedup keys)."""
    ref = ref.strip()
    if store.item_exists(ref):
        return ref
    arxiv = find_arxiv_id(ref) or find_arxiv_id(f"arXiv:{ref}")
    url = ref if ref.startswith(("http://", "https://")) else None
    fp = fingerprint(ItemRecord(title=ref, url=url, arxiv_id=arxiv))
    keys = [k for k in fp.exact if not k.startswith("title:") or url is None]
    found = store.lookup_keys(keys)
    for key in keys:
        if key in found:
            return found[key]
    return None


def import_feedback(store: Store, location: str) -> ImportReport:
    """Import a feedback file in one transaction; bad rows are reported, good rows kept."""
    rows, problems = read_feedback(location)
    report = ImportReport(problems=list(problems))
    cache: dict[str, str | None] = {}
    with store.transaction():
        for row in rows:
            if row.item not in cache:
                cache[row.item] = resolve_item(store, row.item)
            item_id = cache[row.item]
            if item_id is None:
                report.problems.append((row.line, f"unknown item {row.item!r}"))
                continue
            if record_event(store, row.user, item_id, row.event, row.time, row.tag, "import"):
                report.imported += 1
            else:
                report.already_known += 1
    report.problems.sort()
    return report


def record_event(
    store: Store, user: str, item_id: str, event: str, time: str, tag: str = "",
    origin: str = "cli",
) -> bool:  # fmt: skip
    """Store one event (creating the reader if new); False if it was already stored.

    A 'sent' row goes to the send ledger only (channel 'import'): the ledger is the
    one record of what a reader received, read by ranking and training alike.
    """
    if event not in EVENTS:
        raise ParseError(f"unknown event {event!r} (one of {', '.join(EVENTS)})")
    store.ensure_reader(user, origin="feedback")
    if event == "sent":
        return store.record_send(user, item_id, channel="import", digest_date=time[:10])
    return store.add_event(user, item_id, event, tag, time, origin)
