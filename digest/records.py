"""Plain data passed between pipeline stages.

Parsers produce `ItemRecord`s; the store hands out `StoredItem`s; ranking produces
`ReaderDigest`s of `Pick`s, which renderers turn into email, feeds and wiki posts.
Nothing here touches disk or the database, and nothing imports numpy or the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from digest.text import display_text


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


@dataclass(frozen=True)
class StoredItem:
    """One distinct paper as the store holds it: what ranking and rendering need.

    Every URL field holds only an `http`/`https` URL (or nothing): anything else was
    kept as text at ingest, so a renderer may link these without checking again.
    """

    id: str
    title: str
    abstract: str = ""
    url: str | None = None
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    first_seen: str = ""
    published: str | None = None
    arxiv_id: str | None = None
    doi: str | None = None
    code_url: str | None = None
    project_urls: tuple[str, ...] = ()
    source: str = ""

    def __hash__(self) -> int:
        # Renderers key their per-paper caches by the item: hashing every field (a long
        # abstract among them) on each lookup cost more than the lookup. Equal items
        # still hash alike; items that differ elsewhere are told apart by __eq__.
        return hash((self.id, self.title))


@dataclass(frozen=True)
class Explanation:
    """Why an item was picked, in parts a renderer can lay out as it likes."""

    interest: str | None = None
    because_title: str | None = None
    because_id: str | None = None
    terms: tuple[str, ...] = ()
    #: In a team's digest, the member whose interest or reading this is ("you" otherwise).
    reader: str | None = None

    def text(self) -> str:
        """One line: the parts joined with '; ', or the collaborative fallback."""
        whose, who = (f"{self.reader}'s", self.reader) if self.reader else ("your", "you")
        parts = []
        if self.interest:
            parts.append(f"matches {whose} interest '{self.interest}'")
        if self.because_title:
            parts.append(f"because {who} read '{_shorten(self.because_title)}'")
        if self.terms:
            parts.append("shared terms: " + ", ".join(self.terms))
        return "; ".join(parts) or "readers with similar interests read papers like this"

    def shown(self) -> str:
        """`text()` as a reader is shown it (`display_text`: no unseen characters, no runs
        of whitespace), for every format alike."""
        # Kept on the instance (a frozen dataclass still has a __dict__, and the fields
        # alone make its equality and hash): the email, the feeds and the wiki post each
        # show it, and only the first pays.
        memo = self.__dict__
        shown = memo.get("_shown")
        if shown is None:
            shown = memo["_shown"] = display_text(self.text())
        return shown

    def to_json(self) -> dict:
        """A JSON object (stored with each planned pick)."""
        return {
            "interest": self.interest,
            "because_title": self.because_title,
            "because_id": self.because_id,
            "terms": list(self.terms),
            "reader": self.reader,
        }

    @classmethod
    def from_json(cls, data: dict) -> Explanation:
        """The inverse of `to_json` (unknown keys are ignored)."""
        return cls(
            interest=data.get("interest"),
            because_title=data.get("because_title"),
            because_id=data.get("because_id"),
            terms=tuple(data.get("terms") or ()),
            reader=data.get("reader"),
        )


@dataclass(frozen=True)
class Pick:
    """One item chosen for one reader or team: its place, score and reason."""

    item: StoredItem
    rank: int
    score: float
    why: Explanation
    #: In a team's digest, the members this item suits.
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReaderDigest:
    """The ranked selection for one audience on one day.

    `audience` is a reader handle, or `team:<name>` for a team (handles never hold
    a colon, so the two cannot collide).
    """

    audience: str
    day: date
    picks: tuple[Pick, ...]

    @property
    def is_team(self) -> bool:
        return self.audience.startswith("team:")

    @property
    def name(self) -> str:
        """The handle or team name, without the `team:` prefix."""
        return self.audience.removeprefix("team:")

    def to_json(self) -> dict:
        """The `digest rank --format jsonl` line."""
        return {
            "user": self.audience,
            "date": self.day.isoformat(),
            "items": [
                {"id": p.item.id, "rank": p.rank, "score": round(p.score, 4), "why": p.why.text()}
                for p in self.picks
            ],
        }


@dataclass(frozen=True)
class Recipient:
    """Who a digest goes to and how: a reader, or a team and its members."""

    audience: str
    name: str
    email: str | None = None
    channels: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    members: tuple[str, ...] = ()

    @property
    def is_team(self) -> bool:
        return self.audience.startswith("team:")

    @property
    def handle(self) -> str:
        return self.audience.removeprefix("team:")


def _shorten(title: str, limit: int = 70) -> str:
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"
