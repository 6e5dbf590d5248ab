"""Feedback events: what readers clicked, liked, disliked, tagged and were sent.

Import files are CSV (header `user,item,event[,time][,tag]`) or JSON Lines with the
same fields. `item` may be an item id, a URL, an arXiv id or an exact title; it is
resolved through the dedup keys, so any sighting of a paper finds the paper.

Every event, from a file or from `digest feedback add`, passes `check_row`: the user
is a handle under the profile rule (`profiles.valid_handle`), the event is one of
`EVENTS`, the time (optional) is ISO 8601 starting with a date. Times are stored in one
UTC spelling (`store.event_time`; no offset means UTC) and tags case-folded
(`store.event_tag`), so `09:00+01:00` and `08:00Z` are one time and `MoE` and `moe`
one tag. Re-importing a file adds nothing: an event with a time is new only if no
identical event (same reader, item, event, tag and time) is stored, and an event
*without* a time is new only if the reader has no stored event of that kind on that
item with that tag, at any time.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from digest.dedup import fingerprint
from digest.errors import ParseError, ValidationError
from digest.links import find_arxiv_id
from digest.parsers import decode_text, read_bytes
from digest.profiles import hidden_char, valid_handle
from digest.records import ItemRecord
from digest.store import Store, event_tag, event_time

EVENTS = ("click", "like", "dislike", "tag", "sent")
#: How much each event says about interest: likes and tags count double, a dislike
#: is a negative; `sent` alone is not a signal (but sent-and-never-clicked is).
EVENT_WEIGHTS = {"click": 1.0, "like": 2.0, "tag": 2.0, "dislike": -1.0, "sent": 0.0}
REQUIRED = ("user", "item", "event")
FIELDS = (*REQUIRED, "time", "tag")
MAX_ITEM_REF = 4096
MAX_TAG = 100
#: Longest CSV field accepted: the csv module's usual limit (128 KiB).
MAX_CSV_FIELD = 131072
_CSV_PARSE_LIMIT = 2**31 - 1
_MAX_TIME = 40
_DATE_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class FeedbackRow:
    """One checked event as read from an import file; `time` is "" when none was given."""

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


@dataclass(frozen=True)
class Recorded:
    """What `add_feedback` did: the event as stored, and whether it was new."""

    user: str
    item_id: str
    event: str
    added: bool


def now_stamp() -> str:
    """The time recorded for an event that carries none."""
    return event_time(datetime.now(UTC))


def check_time(stamp: str) -> str:
    """An ISO 8601 date or date-time (e.g. 2026-03-10T09:00:00Z) in its stored spelling.

    The stored spelling is UTC to the microsecond (`store.event_time`): the same
    instant written two ways is one time. A time without an offset is UTC.
    """
    if len(stamp) <= _MAX_TIME and stamp.isascii() and _DATE_START.match(stamp):
        try:
            return event_time(datetime.fromisoformat(stamp.replace("Z", "+00:00")))
        except (ValueError, OverflowError):  # no such date; or beyond year 1..9999 in UTC
            pass
    raise ValidationError(f"bad time {_show(stamp)} (ISO 8601 expected)", key="time")


def check_row(data: Mapping[str, object], line: int = 0) -> FeedbackRow:
    """Check one event's fields (the one rule for import rows and `feedback add`).

    `data` maps field names to strings (None or missing means empty; surrounding
    space is ignored). Returns the normalised row (handle and event lower-cased);
    raises ValidationError naming the field and the reason.
    """
    values = {}
    for key in FIELDS:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise ValidationError(f"must be a string, not {type(value).__name__}", key=key)
        values[key] = (value or "").strip()
    for key in REQUIRED:
        if not values[key]:
            raise ValidationError(f"missing '{key}'")
    try:
        user = valid_handle(values["user"])
    except ValidationError as exc:
        raise ValidationError(exc.reason, key="user") from None
    event = values["event"].lower()
    if event not in EVENTS:
        raise ValidationError(
            f"unknown event {_show(values['event'])} (one of {', '.join(EVENTS)})"
        )
    item = values["item"]
    if len(item) > MAX_ITEM_REF:
        raise ValidationError(f"longer than {MAX_ITEM_REF} characters", key="item")
    if odd := _control_char(item):
        raise ValidationError(f"contains a control character or surrogate {odd}", key="item")
    tag = _check_tag(event, values["tag"])
    stamp = check_time(values["time"]) if values["time"] else ""
    return FeedbackRow(line, user, item, event, stamp, tag)


def _check_tag(event: str, tag: str) -> str:
    if event == "tag" and not tag:
        raise ValidationError("a 'tag' event needs a tag")
    if event != "tag" and tag:
        raise ValidationError(f"only a 'tag' event has a tag, not {event!r}", key="tag")
    if odd := hidden_char(tag):
        raise ValidationError(f"contains a control or format character {odd}", key="tag")
    folded = event_tag(tag)
    if len(folded) > MAX_TAG:
        raise ValidationError(f"longer than {MAX_TAG} characters", key="tag")
    return folded


def _control_char(text: str) -> str | None:
    """Control characters and lone surrogates (which SQLite cannot even store)."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cs"):
            return f"U+{ord(char):04X}"
    return None


def _show(value: str, limit: int = 60) -> str:
    return repr(value[:limit]) + ("..." if len(value) > limit else "")


def read_feedback(location: str) -> tuple[list[FeedbackRow], list[tuple[int, str]]]:
    """Parse a CSV or JSONL file into checked rows; bad rows come back as (line, reason).

    A file that cannot be read at all (missing, binary, not UTF-8, no usable CSV
    header) raises ParseError naming it.
    """
    text = decode_text(read_bytes(location), location, rows=True)
    if text.lstrip().startswith("{"):
        return _read_jsonl(text)
    return _read_csv(text, location)


def _read_csv(text: str, location: str) -> tuple[list[FeedbackRow], list[tuple[int, str]]]:
    with _csv_field_limit(_CSV_PARSE_LIMIT):
        return _read_csv_rows(text, location)


@contextmanager
def _csv_field_limit(limit: int) -> Iterator[None]:
    """Let the csv module read over-long fields whole (we reject them ourselves).

    Its own limit stops mid-field, and the rest of a long quoted field would then read
    as rows of its own. The text is already in memory and capped at 200 MB.
    """
    previous = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _read_csv_rows(text: str, location: str) -> tuple[list[FeedbackRow], list[tuple[int, str]]]:
    # newline="": the csv module sees \r, \n and \r\n line ends itself, as it expects.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as exc:
        raise ParseError(f"unreadable CSV header ({exc})", path=location, line=1) from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ParseError(f"CSV header lacks column(s): {', '.join(missing)}", path=location, line=1)
    twice = sorted({h for h in header if h in FIELDS and header.count(h) > 1})
    if twice:
        raise ParseError(f"CSV header repeats {', '.join(twice)}", path=location, line=1)
    rows, problems = [], []
    end = reader.line_num
    while True:
        start = end + 1  # blank lines come back as empty rows, so this is exact
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            end = reader.line_num
            problems.append((start, f"unreadable CSV row ({exc})"))
            continue
        end = reader.line_num
        if any(len(cell) > MAX_CSV_FIELD for cell in cells):
            problems.append((start, f"a field is longer than {MAX_CSV_FIELD} characters"))
        elif cells:
            _take(start, dict(zip(header, cells, strict=False)), rows, problems)
    return rows, problems


def _read_jsonl(text: str) -> tuple[list[FeedbackRow], list[tuple[int, str]]]:
    rows, problems = [], []
    # Only \n ends a line: U+2028 and friends may sit inside a JSON string.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except RecursionError:
            problems.append((number, "invalid JSON: nested too deeply"))
            continue
        except json.JSONDecodeError as exc:
            problems.append((number, f"invalid JSON: {exc.msg}"))
            continue
        except ValueError:  # an integer of more than 4300 digits
            problems.append((number, "invalid JSON: number too long"))
            continue
        if not isinstance(data, dict):
            problems.append((number, "expected a JSON object"))
            continue
        _take(number, {k.strip().lower(): v for k, v in data.items()}, rows, problems)
    return rows, problems


def _take(
    line: int, data: Mapping[str, object], rows: list[FeedbackRow],
    problems: list[tuple[int, str]],
) -> None:  # fmt: skip
    try:
        rows.append(check_row(data, line))
    except ValidationError as exc:
        problems.append((line, str(exc)))


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
    """Import a feedback file in one transaction; bad rows are reported, good rows kept.

    Importing the same file again adds nothing (see the module docstring for when an
    event counts as already known).
    """
    rows, problems = read_feedback(location)
    report = ImportReport(problems=list(problems))
    cache: dict[str, str | None] = {}
    with store.transaction():
        for row in rows:
            if row.item not in cache:
                cache[row.item] = resolve_item(store, row.item)
            item_id = cache[row.item]
            if item_id is None:
                report.problems.append((row.line, f"unknown item {_show(row.item)}"))
                continue
            if _store_row(store, row, item_id, "import"):
                report.imported += 1
            else:
                report.already_known += 1
    report.problems.sort()
    return report


def add_feedback(
    store: Store, user: str, item: str, event: str, *, time: str = "", tag: str = "",
    origin: str = "cli",
) -> Recorded:  # fmt: skip
    """Record one event (`digest feedback add`) under the same rules as an import row.

    Raises ValidationError for a bad field or an unknown item.
    """
    row = check_row({"user": user, "item": item, "event": event, "time": time, "tag": tag})
    item_id = resolve_item(store, row.item)
    if item_id is None:
        raise ValidationError(f"unknown item {_show(row.item)}")
    with store.transaction():
        added = _store_row(store, row, item_id, origin)
    return Recorded(row.user, item_id, row.event, added)


def _store_row(store: Store, row: FeedbackRow, item_id: str, origin: str) -> bool:
    if not row.time:
        if store.has_event(row.user, item_id, row.event, row.tag):
            return False
        return record_event(store, row.user, item_id, row.event, now_stamp(), row.tag, origin)
    return record_event(store, row.user, item_id, row.event, row.time, row.tag, origin)


def record_event(
    store: Store, user: str, item_id: str, event: str, time: str, tag: str = "",
    origin: str = "cli",
) -> bool:  # fmt: skip
    """Store one event (creating the reader if new); False if it was already stored.

    A 'sent' row goes to the send ledger only (channel 'import'): the ledger is the
    one record of what a reader received, read by ranking and training alike. The
    arguments must already be normalised (`check_row`): a handle that is not exactly
    valid, an unknown event or a bad time raises ValidationError.
    """
    if valid_handle(user) != user:
        raise ValidationError(f"{user!r} is not lower case", key="user")
    if event not in EVENTS:
        raise ValidationError(f"unknown event {event!r} (one of {', '.join(EVENTS)})")
    time = check_time(time)
    tag = event_tag(tag)
    store.ensure_reader(user, origin="feedback")
    if event == "sent":
        return store.record_send(user, item_id, channel="import", digest_date=time[:10])
    return store.add_event(user, item_id, event, tag, time, origin)
