"""One hostile corpus through every renderer: email (HTML and text), Atom, RSS, wiki post.

Every text of tests/fixtures/render/hostile.json is an item's title, abstract, author,
tag and reason in one digest. Each output is parsed the way its readers parse it (the
MIME message with the `email` package and its HTML with an HTML parser, the feeds
with feedparser and a strict XML parser, the post with a CommonMark parser), and
every title must be found as the corpus says it is shown: literally, after the one
documented cleaning of control, bidi and other unseen characters
(`digest.text.display_text`), trimmed where a format trims long titles.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from urllib.parse import unquote

import feedparser
import pytest
from conftest import HOSTILE
from lxml import etree
from markdown_it import MarkdownIt

from digest.records import Explanation, Pick, ReaderDigest, Recipient, StoredItem
from digest.render.email import TITLE_CHARS, EmailSettings, render_email
from digest.render.feeds import KINDS, TITLE_LIMIT, FeedSettings, render_feeds
from digest.render.links import Links
from digest.render.wiki import render_post
from digest.text import display_text
from digest.tokens import TokenSigner

DAY = date(2026, 3, 11)
NOW = datetime(2026, 3, 11, 7, tzinfo=UTC)
BASE = "https://digest.example.org"
TRACKED = Links(BASE, TokenSigner("k" * 32), "unsubscribe@example.org")
READER = Recipient("ada", "Ada", "ada@example.org", ("email", "feed", "wiki"))
TEAM = Recipient("team:ml", "ML", None, ("wiki", "feed"), (), ("ada", "bob"))
TEXTS = HOSTILE["texts"]
WEB_URLS = {u["value"] for u in HOSTILE["urls"] if u["link"]}
#: Elements the renderers' own templates write; anything else came from an item.
EMAIL_TAGS = {
    "html", "head", "title", "meta", "style", "body", "div", "table", "tbody", "tr", "td",
    "h1", "h2", "p", "a", "span", "strong",
}  # fmt: skip
FEED_TAGS = {"p", "strong", "small", "a"}


def corpus_digest(audience: str) -> ReaderDigest:
    """The whole corpus as one day's picks, in corpus order (rank n+1 for text n)."""
    picks = []
    for n, case in enumerate(TEXTS):
        text = case["value"]
        paper = StoredItem(
            id=f"h{n}", title=text, abstract=text, url=f"https://arxiv.org/abs/2603.{n:05d}",
            authors=(text, "Grace Hopper"), tags=(text,),
            code_url=HOSTILE["urls"][n % len(HOSTILE["urls"])]["value"],
        )  # fmt: skip
        why = Explanation(interest=text, because_title=text, terms=(text,))
        members = (text, "bob") if audience.startswith("team:") else ()
        picks.append(Pick(paper, n + 1, 1.0 - n / 1000, why, members))
    return ReaderDigest(audience, DAY, tuple(picks))


def expected(case: dict, limit: int | None) -> tuple[str, bool]:
    """The title a reader must see, and whether it may be a trimmed prefix of it."""
    shown = case["shown"]
    assert display_text(case["value"]) == shown  # the fixture states the one rule
    if not shown:
        return "(untitled)", False
    return shown, limit is not None and len(shown) > limit


def check_title(found: str, case: dict, limit: int | None) -> None:
    want, trimmed = expected(case, limit)
    if trimmed:
        assert found.endswith("…") and len(found) <= limit, case["name"]
        assert want.startswith(found[:-1].rstrip(" ,;:.-–—")), case["name"]
    else:
        assert found == want, case["name"]


class Page(HTMLParser):
    """Tags, and the text of each element marked `data-digest="title"`, of an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.text: list[str] = []
        self.titles: list[str] = []
        self.hrefs: list[str] = []
        self._title_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.hrefs += [v or "" for k, v in attrs if k in ("href", "src", "action")]
        if self._title_depth:
            self._title_depth += 1
        elif ("data-digest", "title") in attrs:
            self._title_depth = 1
            self.titles.append("")

    def handle_endtag(self, tag: str) -> None:
        if self._title_depth:
            self._title_depth -= 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._title_depth:
            self.titles[-1] += data


def html_page(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def test_email_html_and_text_show_every_title_literally() -> None:
    settings = EmailSettings(
        sender="digest <digest@example.org>", list_id="digest.example.org", links=TRACKED,
        max_html_bytes=10**8,  # every item shown: the size cap is tested elsewhere
    )  # fmt: skip
    mail = render_email(corpus_digest("ada"), READER, settings, now=NOW)
    assert mail.shown == len(TEXTS)
    message = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    text_part, html_part = message.iter_parts()
    html = html_part.get_content()
    page = html_page(html)
    assert page.tags <= EMAIL_TAGS, page.tags - EMAIL_TAGS
    assert all(linkable(h) or h.startswith("mailto:") for h in page.hrefs), page.hrefs
    assert len(page.titles) == len(TEXTS)
    for case, title in zip(TEXTS, page.titles, strict=True):
        check_title(" ".join(title.split()), case, TITLE_CHARS)
    # The plain part: "N. title", wrapped and indented, so compare with spaces collapsed.
    plain = " ".join(text_part.get_content().split())
    for n, case in enumerate(TEXTS, start=1):
        want, trimmed = expected(case, TITLE_CHARS)
        assert f"{n}. {want[:200] if trimmed else want}" in plain, case["name"]


@pytest.mark.parametrize("recipient", [READER, TEAM], ids=["reader", "team"])
def test_atom_and_rss_show_every_title_literally(recipient: Recipient) -> None:
    digest = corpus_digest(recipient.audience)
    settings = {kind: feed_settings(recipient, kind) for kind in KINDS}
    feeds = render_feeds([digest], settings)
    for kind in KINDS:
        data = feeds[kind]
        strict = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)
        root = etree.fromstring(data, strict)
        result = feedparser.parse(data)
        assert result.bozo == 0, result.get("bozo_exception")
        assert len(result.entries) == len(TEXTS)
        if kind == "atom":
            ns = {"a": "http://www.w3.org/2005/Atom"}
            found = root.findall("a:entry", ns)
            xml_titles = [e.findtext("a:title", namespaces=ns) for e in found]
            bodies = [e.findtext("a:content", namespaces=ns) for e in found]
        else:  # titles are HTML-escaped in RSS: read as HTML, as feed readers do
            found = root.findall("channel/item")
            xml_titles = [html_text(e.findtext("title")) for e in found]
            bodies = [e.findtext("description") for e in found]
        for case, xml_title, body, entry in zip(TEXTS, xml_titles, bodies, result.entries,
                                                strict=True):  # fmt: skip
            check_title(xml_title, case, TITLE_LIMIT)
            detail = entry.title_detail
            check_title(html_text(detail.value, detail.type), case, TITLE_LIMIT)
            page = html_page(body)
            assert page.tags <= FEED_TAGS, (case["name"], page.tags)
            assert all(linkable(h) for h in page.hrefs), page.hrefs
            assert html_page(entry.summary).tags <= FEED_TAGS  # feedparser's reading too


def feed_settings(recipient: Recipient, kind: str) -> FeedSettings:
    return FeedSettings(
        title=f"digest for {recipient.handle}", self_url=f"{BASE}/feeds/t.{kind}",
        authority="digest.example.org", links=TRACKED, site_url=BASE,
    )  # fmt: skip


def linkable(href: str) -> bool:
    """A link the digest may carry: the service's, a paper's own, or a corpus URL marked so."""
    return href.startswith((f"{BASE}/", "https://arxiv.org/abs/")) or href in WEB_URLS


def html_text(value: str, media_type: str = "text/html") -> str:
    """What a reader shows of feed text: HTML is read as HTML, and holds no markup."""
    if media_type != "text/html":
        return value
    page = html_page(value)
    assert not page.tags, value
    return "".join(page.text)


@pytest.mark.parametrize("recipient", [READER, TEAM], ids=["reader", "team"])
def test_wiki_post_shows_every_title_literally(recipient: Recipient) -> None:
    post = render_post(corpus_digest(recipient.audience), recipient, TRACKED)
    post.text.encode("utf-8")  # writable: no lone surrogate left
    head, sep, body = post.text.removeprefix("---\n").partition("\n---\n")
    assert sep and head.count("\n") == 2  # title, date, tags: nothing from an item broke out
    tokens = MarkdownIt("commonmark").parse(body)
    titles = []
    for i, token in enumerate(tokens):
        assert token.type not in ("html_block", "code_block", "fence", "table_open")
        for child in token.children or []:
            assert child.type not in ("html_inline", "image", "softbreak", "hardbreak"), child
            if child.type == "link_open":
                assert linkable(unquote(str(child.attrs["href"]))), child.attrs
        if token.type == "heading_open" and token.tag == "h2":
            children = tokens[i + 1].children or []
            titles.append("".join(c.content for c in children if c.type == "text"))
    assert len(titles) == len(TEXTS)
    for n, (case, title) in enumerate(zip(TEXTS, titles, strict=True), start=1):
        assert title.startswith(f"{n}. ")
        check_title(title.removeprefix(f"{n}. "), case, None)  # the wiki shows titles whole
