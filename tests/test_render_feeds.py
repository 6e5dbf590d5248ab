"""Atom and RSS feeds: valid XML whatever the items hold, stable ids and bytes, order."""

from __future__ import annotations

import locale
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from urllib.parse import urlsplit

import feedparser
import jinja2
import pytest
from conftest import HOSTILE, ROOT, TODAY
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from markupsafe import escape

import digest.render.feeds as feeds_module
from digest.records import Explanation, Pick, ReaderDigest, StoredItem
from digest.render.feeds import (
    ABSTRACT_LIMIT,
    DEFAULT_DAYS,
    EMPTY_FEED_TIME,
    KINDS,
    MEDIA_TYPES,
    TITLE_LIMIT,
    FeedSettings,
    _html_as_xml,
    _linkable,
    entry_id,
    feed_tag,
    render_feed,
    render_feeds,
)
from digest.render.links import Links, is_web_url
from digest.text import display_text
from digest.tokens import TokenSigner

ATOM = "http://www.w3.org/2005/Atom"
NS = {"a": ATOM, "dc": "http://purl.org/dc/elements/1.1/"}
SELF = "https://digest.example.org/feeds/tok.atom"
SITE = "https://digest.example.org/"
AUTHORITY = "digest.example.org"
TRACKED = Links(base_url="https://digest.example.org", signer=TokenSigner("s" * 32))

# The shared hostile corpus (tests/fixtures/render/hostile.json), and URLs only XML
# cannot carry: characters XML 1.0 forbids, which is_web_url alone would let through.
HOSTILE_TEXT = [entry["value"] for entry in HOSTILE["texts"]]
XML_URLS = [
    "http:/no-host",
    "https://ok.example/\x00nul",
    "https://ok.example/\ufffe",
    "https://ok.example/\ud800",
]
HOSTILE_URLS = [entry["value"] for entry in HOSTILE["urls"]] + XML_URLS


def item(n: int, **fields: object) -> StoredItem:
    values: dict[str, object] = {
        "id": f"p{n:04d}",
        "title": f"Paper {n}",
        "abstract": f"Abstract of paper {n}.",
        "url": f"https://arxiv.org/abs/{n}",
        "authors": ("Ada Lovelace", "Alan Turing"),
        "tags": ("cs.LG",),
    }
    values.update(fields)
    return StoredItem(**values)  # type: ignore[arg-type]


def digest(audience: str, day: date, count: int = 3, *, offset: int = 0) -> ReaderDigest:
    """`count` picks for one day, listed in reverse rank order to test the sorting."""
    picks = [
        Pick(
            item(offset + rank),
            rank=rank,
            score=1.0 / rank,
            why=Explanation(interest="graphs"),
            members=("ada", "bob") if audience.startswith("team:") else (),
        )
        for rank in range(1, count + 1)
    ]
    return ReaderDigest(audience, day, tuple(reversed(picks)))


def days_of(audience: str, count: int, per_day: int = 3) -> list[ReaderDigest]:
    """`count` digests ending on TODAY, newest first; each day picks different items."""
    return [
        digest(audience, TODAY - timedelta(days=i), per_day, offset=100 * i) for i in range(count)
    ]


def feed_settings(links: Links | None = None, **fields: object) -> FeedSettings:
    values: dict[str, object] = {
        "title": "digest for ada",
        "self_url": SELF,
        "authority": AUTHORITY,
        "links": links or Links(),
        "site_url": SITE,
    }
    values.update(fields)
    return FeedSettings(**values)  # type: ignore[arg-type]


def strict(data: bytes) -> etree._Element:
    """Parse with two non-recovering XML parsers (lxml/libxml2 and expat)."""
    ET.fromstring(data)
    parser = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)
    return etree.fromstring(data, parser)


def parsed(data: bytes) -> feedparser.FeedParserDict:
    result = feedparser.parse(data)
    assert result.bozo == 0, result.get("bozo_exception")
    return result


def entries(root: etree._Element, kind: str) -> list[etree._Element]:
    if kind == "atom":
        return root.findall("a:entry", NS)
    return root.findall("channel/item")


def entry_ids(root: etree._Element, kind: str) -> list[str]:
    tag = "a:id" if kind == "atom" else "guid"
    return [e.findtext(tag, namespaces=NS) for e in entries(root, kind)]


def entry_title(entry: etree._Element, kind: str) -> str:
    """The entry's title as shown: RSS titles are HTML-escaped text (see digest.render.feeds)."""
    if kind == "atom":
        return entry.findtext("a:title", namespaces=NS)
    parts = html_parts(entry.findtext("title"))
    assert not parts.tags
    return "".join(parts.text)


def entry_html(entry: etree._Element, kind: str) -> str:
    return entry.findtext("a:content" if kind == "atom" else "description", namespaces=NS)


def entry_time(entry: etree._Element, kind: str) -> datetime:
    if kind == "atom":
        published = datetime.fromisoformat(entry.findtext("a:published", namespaces=NS))
        assert datetime.fromisoformat(entry.findtext("a:updated", namespaces=NS)) == published
        return published
    return parsedate_to_datetime(entry.findtext("pubDate"))


def feed_time(root: etree._Element, kind: str) -> datetime:
    if kind == "atom":
        return datetime.fromisoformat(root.findtext("a:updated", namespaces=NS))
    return parsedate_to_datetime(root.findtext("channel/lastBuildDate"))


class _Html(HTMLParser):
    """The text, tags and link targets of an entry's HTML body."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: set[str] = set()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.urls += [v or "" for k, v in attrs if k in ("href", "src", "action", "formaction")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def html_parts(html: str) -> _Html:
    parser = _Html()
    parser.feed(html)
    parser.close()
    return parser


def is_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def all_links(root: etree._Element) -> list[str]:
    """Every URL the document links: attributes, RSS link elements, and the HTML bodies."""
    found = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        found += [v for k, v in element.attrib.items() if k in ("href", "src", "url", "uri")]
        name = etree.QName(element).localname
        if name in ("link", "docs", "comments", "uri") and element.text:
            found.append(element.text.strip())
        if name == "guid" and element.get("isPermaLink") != "false":
            found.append(element.text)
        if name in ("content", "description", "summary") and element.text:
            found += html_parts(element.text).urls
    return found


def expected_line(text: str) -> str:
    """What a reader sees of item text: the renderers' one cleaning rule."""
    return display_text(text)


def reader_text(detail: feedparser.FeedParserDict) -> str:
    """What a reader shows of a text construct feedparser parsed: HTML is read as HTML."""
    if detail.type != "text/html":
        return detail.value
    parts = html_parts(detail.value)
    assert not parts.tags, detail.value  # only text, never markup from the item
    return "".join(parts.text)


def render_both(digests: list[ReaderDigest], settings: FeedSettings) -> dict[str, bytes]:
    return {kind: render_feed(digests, settings, kind=kind) for kind in KINDS}


# --- validity ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("audience", ["ada", "team:ml"])
@pytest.mark.parametrize("count", [0, 1, DEFAULT_DAYS, 30])
def test_every_feed_parses(kind: str, audience: str, count: int) -> None:
    data = render_feed(days_of(audience, count), feed_settings(TRACKED), kind=kind)
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = strict(data)
    result = parsed(data)
    assert result.version == ("atom10" if kind == "atom" else "rss20")
    assert result.feed.title == "digest for ada"
    kept = min(count, DEFAULT_DAYS)
    assert len(entries(root, kind)) == len(result.entries) == 3 * kept
    for entry in result.entries:
        assert entry.published_parsed is not None
        assert entry.title.startswith("Paper ")


@pytest.mark.parametrize("kind", KINDS)
def test_self_link(kind: str) -> None:
    root = strict(render_feed([], feed_settings(), kind=kind))
    if kind == "atom":
        links = root.findall("a:link[@rel='self']", NS)
        media = "application/atom+xml"
    else:
        links = root.findall("channel/a:link[@rel='self']", NS)
        media = "application/rss+xml"
        assert root.findtext("channel/link") == SITE
    assert [(x.get("href"), x.get("type")) for x in links] == [(SELF, media)]
    result = parsed(etree.tostring(root))
    assert {"rel": "self", "href": SELF, "type": media} in result.feed.links


@pytest.mark.parametrize("kind", KINDS)
def test_a_feed_without_a_public_url_is_named_by_a_tag_uri(kind: str) -> None:
    """No base URL: the feed's id and self link name it, never a path on this machine."""
    self_url = feed_tag(AUTHORITY, "team:ml", kind)
    assert self_url == f"tag:{AUTHORITY},2026:feeds/team:ml.{kind}"
    data = render_feed(
        days_of("ada", 2), feed_settings(self_url=self_url, site_url=None), kind=kind
    )
    root = strict(data)
    parsed(data)
    if kind == "atom":
        assert [x.get("href") for x in root.findall("a:link", NS)] == [self_url]
        assert root.findtext("a:id", namespaces=NS) == self_url
    else:
        assert root.findtext("channel/link") == self_url


def test_empty_feed_is_stable() -> None:
    for kind in KINDS:
        data = render_feed([], feed_settings(), kind=kind)
        root = strict(data)
        assert entries(root, kind) == []
        assert feed_time(root, kind) == EMPTY_FEED_TIME
        assert parsed(data).entries == []


# --- order, ids, dates ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_newest_day_first_then_rank(kind: str) -> None:
    digests = days_of("ada", 4)
    shuffled = [digests[2], digests[0], digests[3], digests[1]]
    root = strict(render_feed(shuffled, feed_settings(), kind=kind))
    expected = [
        entry_id(AUTHORITY, "ada", d.day, p.item.id)
        for d in digests
        for p in sorted(d.picks, key=lambda p: p.rank)
    ]
    assert entry_ids(root, kind) == expected
    titles = [entry_title(e, kind) for e in entries(root, kind)]
    assert titles[:4] == ["Paper 1", "Paper 2", "Paper 3", "Paper 101"]
    # Times fall in the digest's day and decrease down the document, so a reader
    # that sorts by time shows the same order.
    times = [entry_time(e, kind) for e in entries(root, kind)]
    assert times == sorted(times, reverse=True)
    assert len(set(times)) == len(times)
    days = [d.day for d in digests for _ in d.picks]
    assert [t.date() for t in times] == days
    assert feed_time(root, kind) == times[0]


@pytest.mark.parametrize("kind", KINDS)
def test_window_keeps_the_newest_days(kind: str) -> None:
    digests = days_of("ada", 30)
    root = strict(render_feed(digests, feed_settings(days=7), kind=kind))
    kept = {entry_time(e, kind).date() for e in entries(root, kind)}
    assert kept == {TODAY - timedelta(days=i) for i in range(7)}


def test_entry_id_scheme() -> None:
    assert entry_id(AUTHORITY, "ada", date(2026, 11, 22), "p1") == (
        "tag:digest.example.org,2026-11-22:ada/p1"
    )
    assert entry_id(AUTHORITY, "team:ml", date(2026, 11, 22), "a/b c") == (
        "tag:digest.example.org,2026-11-22:team:ml/a%2Fb%20c"
    )
    # Distinct inputs stay distinct, whatever characters they hold.
    assert entry_id(AUTHORITY, "a/b", TODAY, "c") != entry_id(AUTHORITY, "a", TODAY, "b/c")
    assert entry_id(AUTHORITY, "a", TODAY, "\ud800").isascii()


@pytest.mark.parametrize("links", [Links(), TRACKED], ids=["plain", "tracked"])
def test_rendering_twice_gives_identical_bytes(links: Links) -> None:
    for audience in ("ada", "team:ml"):
        digests = days_of(audience, DEFAULT_DAYS)
        for kind in KINDS:
            first = render_feed(digests, feed_settings(links), kind=kind)
            second = render_feed(list(digests), feed_settings(links), kind=kind)
            assert first == second


@pytest.mark.parametrize("kind", KINDS)
def test_old_entries_keep_ids_and_dates_when_a_day_is_added(kind: str) -> None:
    older = days_of("ada", 5)[1:]
    newer = days_of("ada", 5)
    before = strict(render_feed(older, feed_settings(TRACKED), kind=kind))
    after = strict(render_feed(newer, feed_settings(TRACKED), kind=kind))

    def by_id(root: etree._Element) -> dict[str, bytes]:
        return {
            i: etree.tostring(e)
            for i, e in zip(entry_ids(root, kind), entries(root, kind), strict=True)
        }

    old, new = by_id(before), by_id(after)
    assert len(new) == len(old) + 3
    # Every old entry is still there, byte for byte (id, title, dates, content).
    assert {i: new[i] for i in old} == old
    assert feed_time(after, kind) > feed_time(before, kind)


def test_same_item_on_two_days_is_two_entries() -> None:
    one = digest("ada", TODAY, 2)
    two = digest("ada", TODAY - timedelta(days=1), 2)
    ids = entry_ids(strict(render_feed([one, two], feed_settings(), kind="atom")), "atom")
    assert len(set(ids)) == 4


def test_a_repeated_pick_is_listed_once() -> None:
    picks = (
        Pick(item(1), 1, 0.9, Explanation()),
        Pick(item(1), 2, 0.8, Explanation()),
        Pick(item(2), 3, 0.7, Explanation()),
    )
    data = render_feed([ReaderDigest("ada", TODAY, picks)], feed_settings(), kind="rss")
    assert len(entry_ids(strict(data), "rss")) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_dates_follow_the_delivery_time(kind: str) -> None:
    tz = timezone(timedelta(hours=2))
    settings_ = feed_settings(delivery=time(9, 30, tzinfo=tz))
    root = strict(render_feed([digest("ada", TODAY, 2)], settings_, kind=kind))
    first, second = (entry_time(e, kind) for e in entries(root, kind))
    assert second == datetime.combine(TODAY, time(7, 30), tzinfo=UTC)
    assert first == second + timedelta(seconds=1)
    if kind == "atom":
        published = entries(root, kind)[1].findtext("a:published", namespaces=NS)
        assert published == "2026-11-22T09:30:00+02:00"
    else:
        assert entries(root, kind)[1].findtext("pubDate") == "Sun, 22 Nov 2026 09:30:00 +0200"
    for entry in parsed(etree.tostring(root)).entries:
        assert entry.published_parsed[:5] == (TODAY.year, TODAY.month, TODAY.day, 7, 30)


# --- both kinds at once -----------------------------------------------------------


def per_kind(links: Links | None = None, **fields: object) -> dict[str, FeedSettings]:
    """Each kind's settings as the dispatcher makes them: the self URL differs."""
    return {
        kind: feed_settings(
            links, self_url=f"https://digest.example.org/feeds/tok.{kind}", **fields
        )
        for kind in KINDS
    }


@pytest.mark.parametrize("links", [Links(), TRACKED], ids=["plain", "tracked"])
@pytest.mark.parametrize("audience", ["ada", "team:ml"])
@pytest.mark.parametrize("count", [0, 1, DEFAULT_DAYS, 30])
def test_render_feeds_gives_each_kind_its_render_feed_bytes(
    links: Links, audience: str, count: int
) -> None:
    digests = days_of(audience, count)
    by_kind = per_kind(links)
    feeds = render_feeds(digests, by_kind)
    assert list(feeds) == list(KINDS)
    for kind in KINDS:
        assert feeds[kind] == render_feed(digests, by_kind[kind], kind=kind)
        root = strict(feeds[kind])
        parsed(feeds[kind])
        self_link = root.find("a:link[@rel='self']" if kind == "atom" else "channel/a:link", NS)
        assert self_link.get("href") == by_kind[kind].self_url
        assert self_link.get("type") == MEDIA_TYPES[kind]


@pytest.mark.parametrize("audience", ["ada", "team:ml"])
def test_render_feeds_of_hostile_items(audience: str) -> None:
    digests = [hostile_digest(audience)]
    by_kind = per_kind(TRACKED, title="<b>x</b> \x00")
    feeds = render_feeds(digests, by_kind)
    assert feeds == {k: render_feed(digests, s, kind=k) for k, s in by_kind.items()}


def test_render_feeds_with_different_settings_per_kind() -> None:
    """Kinds that do not share links, days or delivery time get their own entries."""
    digests = days_of("ada", 5)
    by_kind = {
        "atom": feed_settings(TRACKED, days=2),
        "rss": feed_settings(Links(), delivery=time(6, 0)),
    }
    feeds = render_feeds(digests, by_kind)
    assert feeds == {k: render_feed(digests, s, kind=k) for k, s in by_kind.items()}
    assert len(entries(strict(feeds["atom"]), "atom")) == 6
    assert len(entries(strict(feeds["rss"]), "rss")) == 15
    assert "/c/" in parsed(feeds["atom"]).entries[0].link
    assert parsed(feeds["rss"]).entries[0].link.startswith("https://arxiv.org/abs/")


def test_render_feeds_renders_the_kinds_asked_for() -> None:
    digests = days_of("ada", 2)
    assert list(render_feeds(digests, {"rss": feed_settings()})) == ["rss"]
    assert render_feeds(digests, {}) == {}
    with pytest.raises(ValueError, match="unknown feed kind 'json'"):
        render_feeds(digests, {"atom": feed_settings(), "json": feed_settings()})
    with pytest.raises(ValueError, match="one feed per audience"):
        render_feeds([digest("ada", TODAY), digest("bob", TODAY)], per_kind())


def test_an_item_changed_under_the_same_id_shows_its_new_text() -> None:
    """Item text is reused across readers; an edited item must not show its old text."""
    before = ReaderDigest("ada", TODAY, (Pick(item(1), 1, 0.5, Explanation()),))
    edited = replace(before.picks[0].item, title="Paper 1, revised", authors=("Grace Hopper",))
    after = ReaderDigest("ada", TODAY, (Pick(edited, 1, 0.5, Explanation()),))
    render_feeds([before], per_kind())
    for kind, data in render_feeds([after], per_kind()).items():
        (entry,) = entries(strict(data), kind)
        assert entry_title(entry, kind) == "Paper 1, revised"
        assert "Grace Hopper" in entry_html(entry, kind)
        assert "Ada Lovelace" not in data.decode()


# --- dates and threads ------------------------------------------------------------

RFC_822 = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d\d:\d\d:\d\d [+-]\d{4}"
)


def test_rss_dates_do_not_touch_the_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    """The RFC 822 dates are English whatever the locale, and the locale is left alone
    (switching it is process-wide, so not thread-safe)."""

    def refuse(*args: object) -> str:
        raise AssertionError("the feed renderer changed the locale")

    monkeypatch.setattr(locale, "setlocale", refuse)
    root = strict(render_feed(days_of("ada", 3), feed_settings(), kind="rss"))
    dates = [root.findtext("channel/lastBuildDate")]
    dates += [e.findtext("pubDate") for e in entries(root, "rss")]
    assert len(dates) == 10
    assert all(RFC_822.fullmatch(d) for d in dates), dates


def test_rendering_in_threads_gives_the_same_bytes() -> None:
    jobs = [days_of(a, DEFAULT_DAYS) for a in ("ada", "team:ml", "bob", "carol")] * 4
    by_kind = per_kind(TRACKED)
    alone = [render_feeds(digests, by_kind) for digests in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda digests: render_feeds(digests, by_kind), jobs))
    assert together == alone


# --- content ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_reader_entry_content(kind: str) -> None:
    paper = item(
        7,
        abstract="A long abstract. " * 100,
        code_url="https://github.com/x/y",
        project_urls=("https://x.example/", "https://github.com/x/y"),
        authors=tuple(f"Author {i}" for i in range(14)),
    )
    pick = Pick(paper, 1, 0.9, Explanation(interest="graphs", terms=("gnn",)))
    data = render_feed([ReaderDigest("ada", TODAY, (pick,))], feed_settings(TRACKED), kind=kind)
    (entry,) = entries(strict(data), kind)
    body = html_parts(entry_html(entry, kind))
    text = "".join(body.text)
    assert pick.why.text() in text
    assert "Author 0, Author 1" in text and "and 4 more" in text
    assert "A long abstract." in text and "…" in text
    assert len(text) < ABSTRACT_LIMIT + 1000
    assert body.tags <= {"p", "strong", "small", "a"}
    click, more, less = TRACKED.pick("ada", paper, TODAY)
    assert click and more and less
    assert body.urls == [click, "https://github.com/x/y", "https://x.example/", more, less]
    (result,) = parsed(data).entries
    assert result.link == click
    assert [a["name"] for a in result.authors] == [f"Author {i}" for i in range(10)]
    assert [t.term for t in result.tags] == ["cs.LG"]


@pytest.mark.parametrize("kind", KINDS)
def test_team_entries_name_members_and_link_plainly(kind: str) -> None:
    data = render_feed(days_of("team:ml", 2), feed_settings(TRACKED), kind=kind)
    root = strict(data)
    assert entry_ids(root, kind)[0] == entry_id(AUTHORITY, "team:ml", TODAY, "p0001")
    for entry in entries(root, kind):
        body = html_parts(entry_html(entry, kind))
        assert "Suits: ada, bob" in "".join(body.text)
        assert " for team ml on " in "".join(body.text)
        # No tracked redirect and no feedback links: a team page has no single reader.
        assert all(url.startswith("https://arxiv.org/abs/") for url in body.urls)
    assert all(e.link.startswith("https://arxiv.org/abs/") for e in parsed(data).entries)


@pytest.mark.parametrize("kind", KINDS)
def test_untracked_reader_links_straight_to_the_item(kind: str) -> None:
    data = render_feed(days_of("ada", 1), feed_settings(), kind=kind)
    for entry in parsed(data).entries:
        assert entry.link.startswith("https://arxiv.org/abs/")
        assert "like this" not in entry.summary


@pytest.mark.parametrize("kind", KINDS)
def test_item_without_any_url(kind: str) -> None:
    pick = Pick(item(1, url=None, title=""), 1, 0.5, Explanation())
    data = render_feed([ReaderDigest("ada", TODAY, (pick,))], feed_settings(TRACKED), kind=kind)
    (entry,) = entries(strict(data), kind)
    assert entry_title(entry, kind) == "(untitled)"
    assert html_parts(entry_html(entry, kind)).urls[0].startswith("https://digest.example.org/f/")
    parsed(data)


@pytest.mark.parametrize("links", [Links(), TRACKED], ids=["plain", "tracked"])
def test_atom_entry_link_is_a_typed_alternate(links: Links) -> None:
    data = render_feed(days_of("ada", 1), feed_settings(links), kind="atom")
    for entry in entries(strict(data), "atom"):
        (link,) = entry.findall("a:link", NS)
        assert link.get("rel") == "alternate"
        assert link.get("type") == "text/html"
        assert is_http(link.get("href"))
    for entry in parsed(data).entries:
        assert [(x.rel, x.type) for x in entry.links] == [("alternate", "text/html")]


@pytest.mark.parametrize("kind", KINDS)
def test_authors_are_named_in_both_kinds(kind: str) -> None:
    data = render_feed(days_of("ada", 1, per_day=1), feed_settings(), kind=kind)
    (entry,) = entries(strict(data), kind)
    if kind == "atom":
        names = [a.findtext("a:name", namespaces=NS) for a in entry.findall("a:author", NS)]
    else:
        names = [c.text for c in entry.findall("dc:creator", NS)]
    assert names == ["Ada Lovelace", "Alan Turing"]


# --- hostile items ----------------------------------------------------------------


def hostile_digest(audience: str) -> ReaderDigest:
    picks = []
    for n, text in enumerate(HOSTILE_TEXT):
        paper = StoredItem(
            id=f"h{n}",
            title=text,
            abstract=text,
            url=HOSTILE_URLS[n % len(HOSTILE_URLS)],
            authors=(text, "Plain Author"),
            tags=(text,),
            code_url=HOSTILE_URLS[(n + 1) % len(HOSTILE_URLS)],
            project_urls=tuple(HOSTILE_URLS),
        )
        why = Explanation(interest=text, because_title=text, terms=(text,))
        members = (text, "bob") if audience.startswith("team:") else ()
        picks.append(Pick(paper, n + 1, 0.5, why, members))
    return ReaderDigest(audience, TODAY, tuple(picks))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("audience", ["ada", "team:ml"])
@pytest.mark.parametrize("links", [Links(), TRACKED], ids=["plain", "tracked"])
def test_hostile_items_stay_text(kind: str, audience: str, links: Links) -> None:
    hostile = hostile_digest(audience)
    settings_ = feed_settings(links, title="<b>digest</b> & \x00 ]]>")
    data = render_feed([hostile], settings_, kind=kind)
    root = strict(data)
    result = parsed(data)
    assert reader_text(result.feed.title_detail) == "<b>digest</b> & ]]>"
    found = entries(root, kind)
    assert len(found) == len(result.entries) == len(HOSTILE_TEXT)
    for case, entry, parsed_entry in zip(HOSTILE["texts"], found, result.entries, strict=True):
        line = case["shown"]
        assert expected_line(case["value"]) == line
        title = entry_title(entry, kind)
        if len(line) <= TITLE_LIMIT:
            assert title == (line or "(untitled)")
            assert reader_text(parsed_entry.title_detail) == (line or "(untitled)")
        else:
            assert len(title) <= TITLE_LIMIT and title.endswith("…")
            assert line.startswith(title[:-1])
        body = html_parts(entry_html(entry, kind))
        # Nothing from the item became markup: only the template's own tags.
        assert body.tags <= {"p", "strong", "small", "a"}
        shown = " ".join("".join(body.text).split())
        assert line[: ABSTRACT_LIMIT // 2] in shown
        if audience.startswith("team:") and len(line) <= 100:
            assert (f"Suits: {line}, bob" if line else "Suits: bob") in shown
        # feedparser's sanitised copy still shows the text, not markup.
        reparsed = html_parts(parsed_entry.summary)
        assert reparsed.tags <= {"p", "strong", "small", "a"}
        assert line[: ABSTRACT_LIMIT // 2] in " ".join("".join(reparsed.text).split())
    links_found = all_links(root)
    assert links_found
    assert all(is_http(url) for url in links_found), [u for u in links_found if not is_http(u)]
    for entry in result.entries:
        assert entry.get("link") is None or is_http(entry.link) or entry.link == entry.id
    # Illegal characters were dropped, not passed on (the strict parsers would refuse).
    for bad in ("\ufffe", "\x00", "\x07", "\ud800"):
        assert bad.encode("utf-8", "surrogatepass") not in data


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("links", [Links(), TRACKED], ids=["plain", "tracked"])
def test_hostile_audience_and_item_ids(kind: str, links: Links) -> None:
    # (Signing a token needs UTF-8-encodable text, so no lone surrogate when tracked.)
    odd = "\x00\ud800" if links is not TRACKED else "\x00\ufffe"
    paper = item(1, id=f"id/<&>{odd}")
    audience = f"ada<script>&{odd}"
    data = render_feed(
        [ReaderDigest(audience, TODAY, (Pick(paper, 1, 1.0, Explanation()),))],
        feed_settings(links),
        kind=kind,
    )
    (found,) = entry_ids(strict(data), kind)
    assert found == entry_id(AUTHORITY, audience, TODAY, paper.id)
    assert parsed(data).entries[0].id == found


urls = st.one_of(st.none(), st.text(), st.sampled_from(HOSTILE_URLS))


@settings(max_examples=150, deadline=None)
@given(
    title=st.text(),
    abstract=st.text(),
    author=st.text(),
    url=urls,
    code_url=urls,
    audience=st.sampled_from(["ada", "team:ml"]),
)
def test_any_text_renders_and_parses_strictly(
    title: str, abstract: str, author: str, url: str | None, code_url: str | None, audience: str
) -> None:
    paper = StoredItem(
        id="p1",
        title=title,
        abstract=abstract,
        url=url,
        authors=(author,),
        tags=(title,),
        code_url=code_url,
    )
    pick = Pick(paper, 1, 0.5, Explanation(interest=abstract), members=(author,))
    for kind in KINDS:
        data = render_feed([ReaderDigest(audience, TODAY, (pick,))], feed_settings(), kind=kind)
        root = strict(data)
        (entry,) = entries(root, kind)
        line = expected_line(title)
        shown = entry_title(entry, kind)
        if len(line) <= TITLE_LIMIT:
            assert shown == (line or "(untitled)")
        else:
            assert line.startswith(shown[:-1]) and shown.endswith("…")
        assert all(is_http(u) for u in all_links(root))


url_like = st.one_of(
    st.text(),
    st.sampled_from(HOSTILE_URLS),
    st.builds(
        lambda s, rest: s + rest, st.sampled_from(["http://", "HTTPS://", "https://"]), st.text()
    ),
    st.from_regex(r"https?://[a-z0-9.:\[\]@-]{0,12}([/?#].{0,20})?", fullmatch=True),
)


def _xml_char(c: str) -> bool:
    """XML 1.0's Char production."""
    return c in "\t\n\r" or " " <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c >= "\U00010000"


@settings(max_examples=500, deadline=None)
@given(url=url_like)
def test_a_link_is_an_http_url_xml_can_carry(url: str) -> None:
    """The renderer's quick link check agrees with `is_web_url` plus XML's characters."""
    assert _linkable(url) == (is_web_url(url) and all(map(_xml_char, url)))


@given(st.text(st.sampled_from("a &<>\"'#;é")))
def test_entry_body_text_is_escaped_as_html_then_as_xml(text: str) -> None:
    """The one-pass escape is markupsafe's escape applied twice."""
    assert _html_as_xml(text) == str(escape(str(escape(text))))


# --- settings and inputs the caller must fix --------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"self_url": "javascript:alert(1)"},
        {"self_url": "feeds/ada.xml"},
        {"self_url": "file:///srv/feeds/ada.atom"},
        {"self_url": "tag:no date here"},
        {"site_url": "data:text/html,x"},
        {"authority": "digest.example.org/x"},
        {"authority": ""},
        {"authority": "-bad.example"},
        {"days": 0},
    ],
)
def test_bad_settings_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        feed_settings(**fields)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown feed kind"):
        render_feed([], feed_settings(), kind="json")
    with pytest.raises(ValueError, match="one feed per audience"):
        render_feed([digest("ada", TODAY), digest("bob", TODAY)], feed_settings(), kind="atom")
    with pytest.raises(ValueError, match="two digests for ada"):
        render_feed([digest("ada", TODAY), digest("ada", TODAY)], feed_settings(), kind="rss")


def test_renderer_stays_pure() -> None:
    """Importing the renderer pulls in neither the store, the model nor numpy."""
    code = (
        "import sys, digest.render.feeds\n"
        "heavy = {'numpy', 'digest.store', 'digest.model', 'sqlite_utils', 'lightfm'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_renderer_needs_no_xml_library() -> None:
    """The feeds are templates: neither feedgen nor lxml is imported to render them."""
    code = (
        "import sys, digest.render.feeds\n"
        "print(sorted({'feedgen', 'lxml'} & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("title", ["digest for ada", *HOSTILE_TEXT])
@pytest.mark.parametrize("site", [SITE, None], ids=["site", "no site"])
def test_a_shared_document_filled_in_is_the_feed_rendered_for_this_reader(
    title: str, site: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feed document rendered once per shape with slots, filled with one feed's title,
    URLs and time, is what rendering it for that feed gives."""
    settings = {k: feed_settings(TRACKED, title=title, site_url=site) for k in KINDS}
    windows = [[], days_of("ada", 2)]
    shared = [render_feeds(window, settings) for window in windows]
    monkeypatch.setattr(feeds_module, "_document_shell", lambda kind, entries, present: None)
    for feeds, window in zip(shared, windows, strict=True):
        assert feeds == render_feeds(window, settings)
        for kind in KINDS:
            strict(feeds[kind])


def test_readers_sharing_a_document_each_get_their_own_title_and_address() -> None:
    before = feeds_module._document_shell.cache_info()
    for handle in ("ada", "grace"):
        url = f"https://digest.example.org/feeds/{handle}-token.atom"
        feed = render_feed(days_of(handle, 1), feed_settings(title=f"digest for {handle}",
                           self_url=url), kind="atom")  # fmt: skip
        found = parsed(feed).feed
        assert (found.title, found.id) == (f"digest for {handle}", url)
    assert feeds_module._document_shell.cache_info().hits > before.hits


@pytest.mark.parametrize(
    "source",
    [
        "<t>{{ title|upper }}</t>",
        "{% if title|length > 30 %}L{% endif %}{{ title }}",
        "{{ title[:4] }}",
        "{{ title.split()[3] }}",
    ],
    ids=["renamed", "measured", "cut", "split"],
)
def test_a_document_that_uses_a_value_otherwise_is_never_shared(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard on the bundled feed templates, should an edit of them use a value otherwise."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(source + "{% for e in entries %}{{ e }}{% endfor %}")
    monkeypatch.setattr(feeds_module, "render", lambda name, **context: template.render(context))
    feeds_module._document_shell.cache_clear()
    try:
        assert feeds_module._document_shell("atom", 1, (True,) * 6) is None
    finally:
        feeds_module._document_shell.cache_clear()
