"""Atom and RSS 2.0 feeds of one reader's (or one team's) recent digests.

A feed holds the digests of the last `FeedSettings.days` days, newest day first and
ranked within a day. Everything in it is derived from the digests and the settings
alone, never from the clock, so rendering the same digests again gives the same
bytes, and an entry keeps its id and dates for as long as it stays in the window:

- entry id: `tag:<authority>,<YYYY-MM-DD>:<audience>/<item id>` (RFC 4151), the
  digest's day, audience and item, percent-encoded;
- entry time: the digest's day at `FeedSettings.delivery` (00:00 UTC by default)
  plus one second per place below the last pick, so readers that sort by time keep
  the ranking (rank 1 is the newest entry of its day);
- feed time: the newest entry's time (the Unix epoch for a feed with no digests).

The XML is built by feedgen (lxml); the HTML body of each entry comes from the
autoescaped `feed_entry.html.j2` template. Item text may hold anything, so every
string is stripped of the characters XML 1.0 forbids before it reaches either, and
only http(s) URLs ever become links.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from urllib.parse import quote

from feedgen.entry import FeedEntry
from feedgen.feed import FeedGenerator

from digest.records import Pick, ReaderDigest
from digest.render.links import Links, is_web_url
from digest.render.templates import render

KINDS = ("atom", "rss")
#: The Content-Type to serve each kind with (also the `type` of its self link).
MEDIA_TYPES = {"atom": "application/atom+xml", "rss": "application/rss+xml"}
DEFAULT_DAYS = 14
#: The time of a feed with no digests: fixed, so an empty feed is stable too.
EMPTY_FEED_TIME = datetime(1970, 1, 1, tzinfo=UTC)

TITLE_LIMIT = 300
ABSTRACT_LIMIT = 600
NAME_LIMIT = 100
MAX_AUTHORS = 10
MAX_TAGS = 8

# Everything outside XML 1.0's Char production: C0 controls but tab, newline and
# carriage return, lone surrogates, U+FFFE and U+FFFF. lxml refuses most of them.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_DNS_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


@dataclass(frozen=True)
class FeedSettings:
    """One feed's fixed parts: its title, its own URL, and how to build links.

    `self_url` is the absolute URL the feed is published at (http, https or
    file); it is also the Atom feed's id. `authority` is a domain name you control,
    used in entry ids. `delivery` is the time of day entries carry: naive for UTC,
    or with a fixed-offset or ZoneInfo tzinfo.
    """

    title: str
    self_url: str
    authority: str
    links: Links
    site_url: str | None = None
    days: int = DEFAULT_DAYS
    delivery: time = time(0, 0)

    def __post_init__(self) -> None:
        if not (is_web_url(self.self_url) or self.self_url.startswith("file:///")):
            raise ValueError(f"feed self_url {self.self_url!r}: use an http(s) or file:/// URL")
        if _NOT_XML.search(self.self_url):
            raise ValueError("feed self_url holds characters XML cannot carry")
        if self.site_url is not None and not _linkable(self.site_url):
            raise ValueError(f"feed site_url {self.site_url!r}: use an http(s) URL")
        labels = self.authority.split(".")
        if not all(_DNS_NAME.fullmatch(label) for label in labels):
            raise ValueError(
                f"feed authority {self.authority!r}: use a domain name, e.g. digest.example.org"
            )
        if self.days < 1:
            raise ValueError(f"feed days must be at least 1, not {self.days}")


def render_feed(digests: Sequence[ReaderDigest], settings: FeedSettings, *, kind: str) -> bytes:
    """The feed of `kind` ("atom" or "rss") for one audience's digests, as UTF-8 XML.

    The digests may come in any order; the newest `settings.days` days of them are
    kept. All must be for the same audience, one per day (ValueError otherwise).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown feed kind {kind!r}: use one of {', '.join(KINDS)}")
    window = _window(digests, settings.days)
    feed = _generator(settings, kind)
    newest = EMPTY_FEED_TIME
    for digest in window:
        picks = _ranked(digest.picks)
        newest = max(newest, _entry_time(digest.day, settings.delivery, 0, len(picks)))
        for place, pick in enumerate(picks):
            when = _entry_time(digest.day, settings.delivery, place, len(picks))
            _fill_entry(feed.add_entry(order="append"), digest, pick, settings, when, kind)
    feed.updated(newest)
    if kind == "atom":
        return feed.atom_str(pretty=True)
    return feed.rss_str(pretty=True)


def entry_id(authority: str, audience: str, day: date, item_id: str) -> str:
    """The permanent id of one pick in one audience's feed (a tag URI)."""
    specific = f"{_tag_part(audience)}/{_tag_part(item_id)}"
    return f"tag:{authority},{day.isoformat()}:{specific}"


def xml_text(value: str) -> str:
    """`value` without the characters XML 1.0 cannot carry (controls, surrogates, U+FFFE/F)."""
    return _NOT_XML.sub("", value)


def _tag_part(value: str) -> str:
    # RFC 4151 allows pchar in the specific part; "/" separates audience and item.
    # Percent-encoding keeps every character (even a lone surrogate) distinct.
    return quote(value, safe=":@!$&'()*+,;=-._~", errors="surrogatepass")


def _window(digests: Sequence[ReaderDigest], days: int) -> list[ReaderDigest]:
    ordered = sorted(digests, key=lambda d: d.day, reverse=True)
    if not ordered:
        return []
    audiences = {d.audience for d in ordered}
    if len(audiences) > 1:
        raise ValueError(f"one feed per audience: got digests for {sorted(audiences)}")
    for newer, older in pairwise(ordered):
        if newer.day == older.day:
            raise ValueError(f"two digests for {newer.audience} on {newer.day.isoformat()}")
    oldest = ordered[0].day - timedelta(days=days - 1)
    return [d for d in ordered if d.day >= oldest]


def _ranked(picks: Sequence[Pick]) -> list[Pick]:
    """Picks by rank, each item once (its best place)."""
    seen: set[str] = set()
    ranked = []
    for pick in sorted(picks, key=lambda p: p.rank):
        if pick.item.id not in seen:
            seen.add(pick.item.id)
            ranked.append(pick)
    return ranked


def _entry_time(day: date, delivery: time, place: int, count: int) -> datetime:
    start = datetime.combine(day, delivery)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    # Kept in the delivery time's own offset, so the local date is the digest's day.
    return start + timedelta(seconds=max(count - 1 - place, 0))


def _generator(settings: FeedSettings, kind: str) -> FeedGenerator:
    title = _line(settings.title, TITLE_LIMIT) or "digest"
    feed = FeedGenerator()
    feed.id(settings.self_url)
    feed.title(title)
    feed.description(f"{title}: new research papers picked for you, newest day first")
    feed.author(name=title)
    feed.generator("digest")
    feed.link(href=settings.self_url, rel="self", type=MEDIA_TYPES[kind])
    if settings.site_url:
        # The last link is also RSS's channel <link>.
        feed.link(href=settings.site_url, rel="alternate", type="text/html")
    if kind == "rss":
        feed.load_extension("dc", atom=False, rss=True)
    return feed


def _fill_entry(
    entry: FeedEntry,
    digest: ReaderDigest,
    pick: Pick,
    settings: FeedSettings,
    when: datetime,
    kind: str,
) -> None:
    item = pick.item
    links = settings.links
    entry.id(entry_id(settings.authority, digest.audience, digest.day, item.id))
    entry.title(_line(item.title, TITLE_LIMIT) or "(untitled)")
    entry.published(when)
    entry.updated(when)
    url = _web(links.item(digest.audience, item, digest.day))
    if url:
        # Only the one link: feedgen 1.0 drops rel and title from entry links, and a
        # second rel-less link would be a second "alternate", which Atom forbids.
        # Code and project links are in the content.
        entry.link(href=url, rel="alternate")
    authors = [name for name in (_line(a, NAME_LIMIT) for a in item.authors) if name]
    if kind == "atom":
        for name in authors[:MAX_AUTHORS]:
            entry.author(name=name)
    elif authors:
        entry.dc.dc_creator(authors[:MAX_AUTHORS])
    for tag in [t for t in (_line(t, NAME_LIMIT) for t in item.tags) if t][:MAX_TAGS]:
        entry.category(term=tag)
    entry.content(_body(digest, pick, url, authors, links), type="html")


def _body(
    digest: ReaderDigest, pick: Pick, url: str | None, authors: list[str], links: Links
) -> str:
    """The entry's HTML: why, members (teams), authors, trimmed abstract, links."""
    shown = [("paper", url)] if url else []
    shown += _related(pick)
    for label, action in (("more like this", "more"), ("less like this", "less")):
        href = _web(links.feedback(digest.audience, pick.item, digest.day, action))
        if href:
            shown.append((label, href))
    html = render(
        "feed_entry.html.j2",
        why=_line(pick.why.text(), ABSTRACT_LIMIT),
        members=[m for m in (_line(m, NAME_LIMIT) for m in pick.members) if m],
        authors=authors[:MAX_AUTHORS],
        more_authors=max(len(authors) - MAX_AUTHORS, 0),
        abstract=_line(pick.item.abstract, ABSTRACT_LIMIT),
        links=shown,
        rank=pick.rank,
        audience=xml_text(f"team {digest.name}" if digest.is_team else digest.name),
        day=digest.day.isoformat(),
    )
    return xml_text(html)


def _related(pick: Pick) -> list[tuple[str, str]]:
    """Code and project links that are http(s), each URL once."""
    found: list[tuple[str, str]] = []
    candidates = [("code", pick.item.code_url)]
    candidates += [("project", u) for u in pick.item.project_urls]
    for label, candidate in candidates:
        href = _web(candidate)
        if href and href not in [h for _, h in found]:
            found.append((label, href))
    return found


def _web(url: str | None) -> str | None:
    """`url` if it may become a link here, else None."""
    return url if url is not None and _linkable(url) else None


def _linkable(url: str) -> bool:
    return is_web_url(url) and not _NOT_XML.search(url)


def _line(value: str, limit: int) -> str:
    """Item text as one XML-safe line of at most `limit` characters."""
    text = " ".join(xml_text(value).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"
