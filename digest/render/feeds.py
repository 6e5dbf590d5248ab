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

Both documents come from autoescaped Jinja templates (`feed.atom.xml.j2`,
`feed.rss.xml.j2`), the HTML body of each entry from the autoescaped
`feed_entry.html.j2`. Item text may hold anything, so every string goes through the
renderers' one cleaning rule (`digest.text.display_text`: no control, bidi or other
unseen characters, which also leaves nothing XML 1.0 forbids) before it reaches a
template, and only http(s) URLs ever become links.

RSS 2.0 does not say whether a title is text or HTML, and readers (feedparser
among them) treat one that looks like HTML as HTML: `<![CDATA[ <b>x</b> ]]>` would
show as "x" or nothing. So RSS titles are written HTML-escaped (`&`, `<` and `>`
as entities, then escaped again as XML): such a reader shows them literally, and a
title without those characters is written as it is. Atom titles are `type="text"`.

Dates are formatted without the locale (RFC 3339 for Atom, RFC 822 by `email.utils`
for RSS), so rendering is safe in threads.

`render_feeds` builds the entries once for both kinds. What depends on a paper alone
is made once per process, however many readers it goes to: its cleaned text, its
entry body (`feed_entry.html.j2`) and its element of each kind (`feed_entry.xml.j2`),
both rendered with slots for the few values that are each reader's (see
`digest.render.templates.Slotted`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime
from functools import lru_cache
from itertools import pairwise
from urllib.parse import quote

from markupsafe import Markup, escape

from digest.records import Explanation, Pick, ReaderDigest, StoredItem
from digest.render.links import Links, is_web_url
from digest.render.templates import Slotted, environment, render, slot
from digest.text import display_text

KINDS = ("atom", "rss")


def feed_file(audience: str, kind: str) -> str:
    """An audience's feed file under the feeds folder; `digest run` writes, `serve` reads.

    `<handle>.<kind>` for a reader, `teams/<name>.<kind>` for a team (no handle holds `/`).
    """
    if audience.startswith("team:"):
        return f"teams/{audience.removeprefix('team:')}.{kind}"
    return f"{audience}.{kind}"


#: The Content-Type to serve each kind with (also the `type` of its self link).
MEDIA_TYPES = {"atom": "application/atom+xml", "rss": "application/rss+xml"}
DEFAULT_DAYS = 14
#: The date in feed tag URIs (`feed_tag`): fixed, so a feed's name never changes.
FEED_TAG_DATE = "2026"
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
_TAG_URI = re.compile(r"tag:[A-Za-z0-9.@-]+,\d{4}(?:-\d\d){0,2}:[!-~]+")
_DNS_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# A plain http(s) URL: printable ASCII, a host of letters, digits, dots and dashes.
# Every match is also an `is_web_url` URL XML can carry (a test checks), so the
# common case skips urlsplit, which costs more than the rest of a link's checks.
_PLAIN_WEB_URL = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.-]+(?::[0-9]*)?(?:[/?#][!-~]*)?")


@dataclass(frozen=True)
class FeedSettings:
    """One feed's fixed parts: its title, its own URL, and how to build links.

    `self_url` is the absolute URL the feed is published at (http or https), or,
    when it has none, a tag URI naming it (`feed_tag`); it is also the Atom feed's
    id. `authority` is a domain name you control, used in entry ids. `delivery` is
    the time of day entries carry: naive for UTC, or with a fixed-offset or ZoneInfo
    tzinfo.
    """

    title: str
    self_url: str
    authority: str
    links: Links
    site_url: str | None = None
    days: int = DEFAULT_DAYS
    delivery: time = time(0, 0)

    def __post_init__(self) -> None:
        if not (is_web_url(self.self_url) or _TAG_URI.fullmatch(self.self_url)):
            raise ValueError(f"feed self_url {self.self_url!r}: use an http(s) or tag: URI")
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


@dataclass(frozen=True, slots=True)
class _Paper:
    """One item as every feed shows it: XML-safe lines, only http(s) links."""

    title: str
    #: The title HTML-escaped, as RSS carries it (see the module docstring).
    rss_title: str
    abstract: str
    authors: tuple[str, ...]
    more_authors: int
    related: tuple[tuple[str, str], ...]
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Entry:
    """One pick as both kinds show it: its element of each kind, and its own values."""

    #: The entry's element of each kind (`_entry_template`), for its paper and shape.
    templates: dict[str, Slotted]
    #: The entry's own values by slot name (both kinds' times among them), as UTF-8
    #: and escaped as they go into the XML: made once for both kinds.
    values: dict[str, bytes]


def render_feed(digests: Sequence[ReaderDigest], settings: FeedSettings, *, kind: str) -> bytes:
    """The feed of `kind` ("atom" or "rss") for one audience's digests, as UTF-8 XML.

    The digests may come in any order; the newest `settings.days` days of them are
    kept. All must be for the same audience, one per day (ValueError otherwise).
    """
    return render_feeds(digests, {kind: settings})[kind]


def render_feeds(
    digests: Sequence[ReaderDigest], settings: Mapping[str, FeedSettings]
) -> dict[str, bytes]:
    """Several kinds of feed of the same digests: `{kind: settings}` in, `{kind: xml}` out.

    Each kind has its own settings, as its self URL differs, and gets exactly the
    bytes of `render_feed(digests, settings[kind], kind=kind)`. Kinds whose settings
    agree on what shapes the entries (authority, links, delivery and days) share
    them: each pick's links are signed and its HTML rendered once, not once a kind.
    """
    for kind in settings:
        if kind not in KINDS:
            raise ValueError(f"unknown feed kind {kind!r}: use one of {', '.join(KINDS)}")
    shared: dict[tuple, tuple[list[_Entry], datetime]] = {}
    feeds = {}
    for kind, one in settings.items():
        shape = (one.authority, one.links, one.delivery, one.days)
        if shape not in shared:
            shared[shape] = _entries(digests, one)
        feeds[kind] = _document(kind, one, *shared[shape])
    return feeds


def entry_id(authority: str, audience: str, day: date, item_id: str) -> str:
    """The permanent id of one pick in one audience's feed (a tag URI)."""
    specific = f"{_tag_part(audience)}/{_tag_part(item_id)}"
    return f"tag:{authority},{day.isoformat()}:{specific}"


def feed_tag(authority: str, audience: str, kind: str) -> str:
    """A feed's stable name when it has no public URL: a tag URI (RFC 4151), no path."""
    return f"tag:{authority},{FEED_TAG_DATE}:feeds/{_tag_part(audience)}.{kind}"


def html_text(text: str) -> str:
    """Text as HTML that shows it literally: `&`, `<` and `>` as entities, quotes kept.

    Quotes stay as they are: an entity would make a reader that takes the text for
    HTML do so, and a plain-text reader show the entity.
    """
    if "&" in text or "<" in text or ">" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


@lru_cache(maxsize=16384)  # every entry of a feed has the same audience
def _tag_part(value: str) -> str:
    # RFC 4151 allows pchar in the specific part; "/" separates audience and item.
    # Percent-encoding keeps every character (even a lone surrogate) distinct.
    return quote(value, safe=":@!$&'()*+,;=-._~", errors="surrogatepass")


def _document(kind: str, settings: FeedSettings, entries: list[_Entry], newest: datetime) -> bytes:
    title = _line(settings.title, TITLE_LIMIT) or "digest"
    rfc3339, rfc822 = _stamp(newest)
    values = {
        "title": html_text(title) if kind == "rss" else title,
        "subtitle": f"{title}: new research papers picked for you, newest day first",
        "self_url": settings.self_url,
        "self_type": MEDIA_TYPES[kind],
        "site_url": settings.site_url or "",
        "updated": rfc3339 if kind == "atom" else rfc822,
    }
    # Each entry is put in after, as UTF-8: most of a feed is its papers' text, encoded
    # once per paper (`_entry_template`), not once per feed.
    filled = {str(n): e.templates[kind].fill_bytes(e.values) for n, e in enumerate(entries)}
    shape = tuple(bool(values[name]) for name in _DOCUMENT_VALUES)
    shell = _document_shell(kind, len(entries), shape)
    if shell is None:  # the template does more with a value than show it
        return Slotted.of(_render_document(kind, values, len(entries))).encoded().fill_bytes(filled)
    for name in _DOCUMENT_VALUES:
        filled[name] = str(escape(values[name])).encode()
    return shell.fill_bytes(filled)


#: A feed's own values (its title, its URLs, its time): slots in a document rendered
#: once per kind and shape (`_document_shell`).
_DOCUMENT_VALUES = ("title", "subtitle", "self_url", "self_type", "site_url", "updated")
#: Lengthens the slots of a document's second render (`_document_shell`).
_PAD = "_" * 200


@lru_cache(maxsize=256)
def _document_shell(kind: str, entries: int, present: tuple[bool, ...]) -> Slotted | None:
    """The feed document of `kind` with `entries` entries, its values as slots, as UTF-8.

    Every reader's feed is the same document around its entries but for a title, a
    URL and a time: rendering it once per shape and filling in the values saves a
    template render per feed. Rendered again with every slot 200 characters longer, the
    document must differ only in its slots' names, and every slot must come through
    whole; else (a template that measures, cuts or renames a value) None, and each
    feed renders its own.
    """
    pages = []
    for pad in ("", _PAD):
        pairs = zip(_DOCUMENT_VALUES, present, strict=True)
        slots = {name: slot(name + pad) if there else "" for name, there in pairs}
        try:
            page = _render_document(kind, slots, entries)
        except Exception:  # the render per feed reports a real error
            return None
        pages.append(page)
    if pages[1].replace(_PAD, "") != pages[0]:
        return None
    try:
        shell = Slotted.of(pages[0])
    except ValueError:
        return None  # a slot cut in two
    known = {*_DOCUMENT_VALUES, *map(str, range(entries))}
    if not known.issuperset(shell.parts[1::2]):
        return None  # a slot renamed by a filter (`title|upper`)
    return shell.encoded()


def _render_document(kind: str, values: dict[str, str], entries: int) -> str:
    """`feed.<kind>.xml.j2` with `values`, and a slot for each entry (`"0"`, `"1"`, ...)."""
    return render(
        f"feed.{kind}.xml.j2", **values, entries=[Markup(slot(str(n))) for n in range(entries)]
    )


# An entry is the same in every feed its paper is in but for its id, link, time and
# the reader's values in its body: `feed_entry.xml.j2` is rendered once per kind,
# paper and shape, with slots for those, the body (`_body`) put in its place, and
# each feed fills in the slots.
@lru_cache(maxsize=16384)
def _entry_template(
    kind: str, item: StoredItem, link: bool, more: bool, less: bool, members: bool
) -> Slotted:
    """The `kind` element of an entry for `item` as UTF-8, with slots for its own values."""
    body = _body(item, link, more, less, members)
    element = _element(kind, item, link)
    return Slotted.of(element.fill({**_KEEP, "content": "\x00".join(body.parts)})).encoded()


@lru_cache(maxsize=16384)
def _entry_templates(
    item: StoredItem, link: bool, more: bool, less: bool, members: bool
) -> dict[str, Slotted]:
    """`_entry_template` of every kind, looked up once per entry rather than per kind."""
    return {kind: _entry_template(kind, item, link, more, less, members) for kind in KINDS}


#: The element's own slots, filled with themselves (`_entry_template`).
_KEEP = {name: slot(name) for name in ("id", "link", "rfc3339", "rfc822")}


@lru_cache(maxsize=16384)
def _element(kind: str, item: StoredItem, link: bool) -> Slotted:
    """The `kind` element of an entry for `item`, with slots for the entry's own values."""
    macro = getattr(environment().get_template("feed_entry.xml.j2").module, kind)
    entry = {
        "id": slot("id"),
        "link": slot("link") if link else None,
        "time": slot("rfc3339" if kind == "atom" else "rfc822"),
        "content": Markup(slot("content")),  # already escaped: see `_html_as_xml`
    }
    return Slotted.of(str(macro(entry, _paper(item))))


def _entries(
    digests: Sequence[ReaderDigest], settings: FeedSettings
) -> tuple[list[_Entry], datetime]:
    """The window's entries in feed order, and the feed's time."""
    links = settings.links
    entries = []
    newest = EMPTY_FEED_TIME
    for digest in _window(digests, settings.days):
        picks = _ranked(digest.picks)
        stamps = _day_stamps(digest.day, settings.delivery, len(picks))
        newest = max(newest, _entry_time(digest.day, settings.delivery, 0, len(picks)))
        audience = display_text(f"team {digest.name}" if digest.is_team else digest.name)
        per_day = {
            "audience": _html_as_xml(audience).encode(),
            "day": digest.day.isoformat().encode(),
        }
        for pick, (rfc3339, rfc822) in zip(picks, stamps, strict=True):
            item = pick.item
            url, more, less = (_web(u) for u in links.pick(digest.audience, item, digest.day))
            members = [m for m in (_line(m, NAME_LIMIT) for m in pick.members) if m]
            tag = entry_id(settings.authority, digest.audience, digest.day, item.id)
            values = {
                **per_day,
                "id": _xml(tag).encode(),
                "link": _xml(url).encode() if url else b"",
                "rfc3339": rfc3339,
                "rfc822": rfc822,
                "why": _why(pick.why),
                "members": _html_as_xml(", ".join(members)).encode(),
                "paper": _html_as_xml(url or "").encode(),
                "more": _html_as_xml(more or "").encode(),
                "less": _html_as_xml(less or "").encode(),
                "rank": str(pick.rank).encode(),
            }
            shape = (url is not None, more is not None, less is not None, bool(members))
            entries.append(_Entry(_entry_templates(item, *shape), values))
    return entries, newest


# An entry's HTML body is mostly its paper's (authors, abstract, code and project links)
# and the same in every reader's feed: `feed_entry.html.j2` is rendered once per paper
# and shape (which links and lines the entry has), with slots for what is the reader's
# (reason, members, tracked links, rank), and escaped as XML character data, as both
# kinds carry it. Each entry then only fills in the slots.
@lru_cache(maxsize=16384)
def _body(item: StoredItem, url: bool, more: bool, less: bool, members: bool) -> Slotted:
    """The entry body of `item` as XML text, with slots for the reader's values."""
    paper = _paper(item)
    shown = [("paper", slot("paper"))] if url else []
    shown += paper.related
    shown += [("more like this", slot("more"))] if more else []
    shown += [("less like this", slot("less"))] if less else []
    body = environment().get_template("feed_entry.html.j2").module.body
    html = body(
        why=slot("why"),
        members=[slot("members")] if members else [],
        authors=", ".join(paper.authors),
        more_authors=paper.more_authors,
        abstract=paper.abstract,
        links=shown,
        rank=slot("rank"),
        audience=slot("audience"),
        day=slot("day"),
    )
    # str(): escape() would pass the macro's Markup through as it is.
    return Slotted.of(str(escape(str(html))))


def _xml(text: str) -> str:
    """Text as XML character data or an attribute value (escaped, as autoescaping would)."""
    if "&" in text or "<" in text or ">" in text or '"' in text or "'" in text:
        return str(escape(text))
    return text


def _why(why: Explanation) -> bytes:
    """The reason as it goes into an entry body (not cached: see `email._why`)."""
    return _html_as_xml(_cut(why.shown(), ABSTRACT_LIMIT)).encode()


def _html_as_xml(text: str) -> str:
    """Text as it goes into an entry body: escaped as HTML, then as XML character data."""
    if "&" in text or "<" in text or ">" in text or '"' in text or "'" in text:
        # escape(escape(text)) in one pass: each entity markupsafe writes, escaped again.
        return (
            text.replace("&", "&amp;amp;").replace("<", "&amp;lt;").replace(">", "&amp;gt;")
            .replace('"', "&amp;#34;").replace("'", "&amp;#39;")
        )  # fmt: skip
    return text  # the common case (a signed link, a name): nothing to escape


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


# Every reader's feed covers the same few days at the same delivery time, so the
# formatted dates are shared; formatting them is a good part of a small feed's cost.
@lru_cache(maxsize=256)
def _day_stamps(day: date, delivery: time, count: int) -> tuple[tuple[bytes, bytes], ...]:
    """The (RFC 3339, RFC 822) times of the `count` entries of one day, in rank order,
    as they go into the XML (ASCII)."""
    stamps = (_stamp(_entry_time(day, delivery, place, count)) for place in range(count))
    return tuple((rfc3339.encode(), rfc822.encode()) for rfc3339, rfc822 in stamps)


@lru_cache(maxsize=256)  # a day's feeds share their times
def _stamp(when: datetime) -> tuple[str, str]:
    # format_datetime uses English day and month names whatever the locale.
    return when.isoformat(), format_datetime(when)


# The same papers are picked for many readers: their text is cleaned and trimmed,
# and their authors and subjects laid out, once, not once per reader (that was a
# good part of an entry's cost). The cache holds two weeks of a thousand new papers
# a day; an edited item is a different key.
@lru_cache(maxsize=16384)
def _paper(item: StoredItem) -> _Paper:
    """The item's text, links and feed elements as every feed shows them."""
    authors = [name for name in (_line(a, NAME_LIMIT) for a in item.authors) if name]
    shown = tuple(authors[:MAX_AUTHORS])
    tags = tuple([t for t in (_line(t, NAME_LIMIT) for t in item.tags) if t][:MAX_TAGS])
    title = _line(item.title, TITLE_LIMIT) or "(untitled)"
    return _Paper(
        title=title,
        rss_title=html_text(title),
        abstract=_line(item.abstract, ABSTRACT_LIMIT),
        authors=shown,
        more_authors=max(len(authors) - MAX_AUTHORS, 0),
        related=tuple(_related(item)),
        tags=tags,
    )


def _related(item: StoredItem) -> list[tuple[str, str]]:
    """Code and project links that are http(s), each URL once."""
    found: list[tuple[str, str]] = []
    candidates = [("code", item.code_url)]
    candidates += [("project", u) for u in item.project_urls]
    for label, candidate in candidates:
        href = _web(candidate)
        if href and href not in [h for _, h in found]:
            found.append((label, href))
    return found


def _web(url: str | None) -> str | None:
    """`url` if it may become a link here, else None."""
    return url if url is not None and _linkable(url) else None


def _linkable(url: str) -> bool:
    """True for an http(s) URL with a host, free of spaces and of what XML cannot carry."""
    if _PLAIN_WEB_URL.fullmatch(url):
        return True
    return is_web_url(url) and not _NOT_XML.search(url)


def _line(value: str | None, limit: int) -> str:
    """Item text as one line a reader sees, at most `limit` characters (XML-safe too)."""
    return _cut(display_text(value), limit)


def _cut(text: str, limit: int) -> str:
    """A line a reader sees (`display_text` made it) cut to at most `limit` characters."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"
