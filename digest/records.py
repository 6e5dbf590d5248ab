"""Plain data passed between pipeline stages.

Parsers produce `ItemRecord`s; nothing here touches disk or the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class ItemRecord:
    """One entry as a source showed it, before deduplication."""

    title: str
    abstract: str = ""
    url: str | None = None
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    published: str | None = None
    external_id: str | None = None
    arxiv_id: str | None = None
    doi: str | None = None
    code_url: str | None = None
    project_urls: tuple[str, ...] = ()
    line: int | None = None
    #: The day a dump showed the entry under (a dump may hold several days); None
    #: for feeds and JSON, whose entries take the day of the ingest (`--date`).
    day: date | None = None


@dataclass
class ParseResult:
    """What a parser read from one file: its items and anything worth warning about.

    A tolerant parser keeps what it could read and explains the rest in `warnings`
    (for feeds, feedparser's bozo reason), leaving the caller to decide. `day` is the
    first day of a dump; each record carries its own `day`, since two days pasted
    into one file make one dump with two date lines.
    """

    path: str
    format: str
    items: list[ItemRecord] = field(default_factory=list)
    day: date | None = None
    warnings: list[str] = field(default_factory=list)
    source_name: str | None = None
