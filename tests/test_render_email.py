"""The email renderer: MIME structure, headers, the size cap, links and hostile items.

Digests are built from records directly (no database); each email is parsed back the
way a mail client would, with the standard `email` package and a strict HTML parser.
"""

from __future__ import annotations

import binascii
import email
import email.policy
import re
import subprocess
import sys
import textwrap
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import Markup

import digest.render.email as email_module
from digest.errors import ConfigError
from digest.records import Explanation, Pick, ReaderDigest, Recipient, StoredItem
from digest.render.email import (
    _PLAIN_ADDRESS,
    _PLAIN_NAME,
    WIRE_POLICY,
    EmailSettings,
    RenderedEmail,
    _excerpt,
    _FilledItem,
    _fit,
    _Fragment,
    _indent,
    _item_view,
    _plain_segment,
    _qp_segment,
    _quoted_printable,
    _quoted_values,
    _to,
    clean,
    compile_html,
    html_template,
    item_template,
    render_email,
    text_item_template,
    trim,
    wrap,
)
from digest.render.links import Links
from digest.render.templates import slot
from digest.tokens import TokenSigner

DAY = date(2026, 3, 11)
NOW = datetime(2026, 3, 11, 7, 30, tzinfo=UTC)
BASE = "https://digest.example.org"
MAILBOX = "unsubscribe@digest.example.org"
SIGNER = TokenSigner("x" * 32)
TRACKED = Links(base_url=BASE, signer=SIGNER, unsubscribe_mailbox=MAILBOX)
PLAIN = Links()
FEED = f"{BASE}/feeds/feedtoken.atom"
ADA = Recipient(
    "ada", "Ada Lovelace", "ada@example.org", channels=("email",), teams=("efficiency", "nlp")
)
#: The only elements the email may contain: MJML's layout tables and our own markup.
ALLOWED_TAGS = {
    "html", "head", "title", "meta", "style", "body", "div", "table", "tbody", "tr", "td",
    "h1", "h2", "p", "a", "span", "strong",
}  # fmt: skip
#: Characters no rendered part may carry: C0/C1 controls (bar newline) and bidi overrides.
UNSEEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def settings(links: Links = TRACKED, **overrides: object) -> EmailSettings:
    values: dict = {
        "sender": "digest <digest@example.org>",
        "list_id": "digest.example.org",
        "links": links,
    }
    return EmailSettings(**(values | overrides))


def item(n: int, **fields: object) -> StoredItem:
    values: dict = {
        "id": f"p{n}",
        "title": f"Paper {n}: sparse attention for long documents",
        "abstract": f"Abstract of paper {n}. We propose a method and evaluate it carefully.",
        "url": f"https://arxiv.org/abs/2603.{n:05d}",
        "authors": ("Ada Lovelace", "Charles Babbage"),
    }
    return StoredItem(**(values | fields))


def digest_of(
    items: list[StoredItem], audience: str = "ada", why: Explanation | None = None
) -> ReaderDigest:
    reason = why or Explanation(interest="long context", terms=("attention", "sparse"))
    picks = tuple(Pick(it, rank, 1.0 / rank, reason) for rank, it in enumerate(items, 1))
    return ReaderDigest(audience, DAY, picks)


def rendered(
    digest: ReaderDigest,
    recipient: Recipient = ADA,
    links: Links = TRACKED,
    feed_url: str | None = FEED,
    **overrides: object,
) -> RenderedEmail:
    return render_email(digest, recipient, settings(links, **overrides), now=NOW, feed_url=feed_url)


def parsed(mail: RenderedEmail) -> EmailMessage:
    return email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)


def squash(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Page:
    """What a strict HTML parse of the email finds: elements, links, titles, text."""

    tags: list[str] = field(default_factory=list)
    attributes: list[tuple[str, str, str | None]] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    text: str = ""

    @property
    def hrefs(self) -> list[str]:
        return [value or "" for _, name, value in self.attributes if name == "href"]


class _Collector(HTMLParser):
    VOID = frozenset({"meta", "br", "img", "hr", "input", "link"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.stack: list[str] = []
        self.title_depth: int | None = None
        self.pieces: list[str] = []
        self.title: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.page.tags.append(tag)
        self.page.attributes += [(tag, name, value) for name, value in attrs]
        if tag in self.VOID:
            return
        self.stack.append(tag)
        if ("data-digest", "title") in attrs:
            self.title_depth, self.title = len(self.stack), []

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        if self.title_depth == len(self.stack):
            self.page.titles.append(squash("".join(self.title)))
            self.title_depth = None
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] in ("style", "title"):
            return
        self.pieces.append(data)
        if self.title_depth is not None:
            self.title.append(data)


def page(html: str) -> Page:
    """Parse strictly: every element must close in order, as the collector asserts."""
    collector = _Collector()
    collector.feed(html)
    collector.close()
    assert collector.stack == [], f"unclosed elements: {collector.stack}"
    collector.page.text = squash(" ".join(collector.pieces))
    return collector.page


def assert_safe(html: str, allowed_mailto: str | None = None) -> Page:
    """No markup but ours, no event handlers, and only http(s) links."""
    assert "<mj-" not in html and "</mj-" not in html
    found = page(html)
    assert set(found.tags) <= ALLOWED_TAGS, set(found.tags) - ALLOWED_TAGS
    assert not [a for a in found.attributes if a[1].startswith("on") or a[1] == "src"]
    for href in found.hrefs:
        scheme = urlsplit(href).scheme
        assert scheme in ("http", "https") or href == allowed_mailto, href
    return found


# --- MIME structure and headers ---------------------------------------------------------


def test_message_is_multipart_alternative_text_then_html_in_utf8() -> None:
    mail = rendered(digest_of([item(1), item(2)]))
    msg = parsed(mail)
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert [p.get_content_charset() for p in parts] == ["utf-8", "utf-8"]
    assert parts[0].get_content().replace("\r\n", "\n") == mail.text
    assert parts[1].get_content().replace("\r\n", "\n") == mail.html
    assert "MIME-Version" not in parts[1]


def test_headers_name_sender_recipient_date_and_list() -> None:
    mail = rendered(digest_of([item(1), item(2)]))
    msg = parsed(mail)
    assert msg["From"].addresses[0].addr_spec == "digest@example.org"
    assert msg["From"].addresses[0].display_name == "digest"
    to = msg["To"].addresses[0]
    assert (to.display_name, to.addr_spec) == ("Ada Lovelace", "ada@example.org")
    assert parsedate_to_datetime(msg["Date"]) == NOW
    assert msg["Message-ID"] == "<digest.2026-03-11.ada@digest.example.org>"
    assert msg["List-Id"] == "<digest.example.org>"
    assert msg["Subject"] == "digest for Wed 11 Mar 2026: 2 papers"


def test_list_unsubscribe_has_https_and_mailto_with_one_click_post() -> None:
    msg = parsed(rendered(digest_of([item(1)])))
    https, mailto = re.fullmatch(r"<([^>]+)>, <([^>]+)>", msg["List-Unsubscribe"]).groups()
    token = https.removeprefix(f"{BASE}/u/")
    assert SIGNER.verify(token).reader == "ada"
    assert SIGNER.verify(token).action == "unsubscribe"
    assert mailto == f"mailto:{MAILBOX}?subject=unsubscribe%20ada"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_no_one_click_header_without_an_https_unsubscribe_url() -> None:
    msg = parsed(rendered(digest_of([item(1)]), links=Links(unsubscribe_mailbox=MAILBOX)))
    assert msg["List-Unsubscribe"] == f"<mailto:{MAILBOX}?subject=unsubscribe%20ada>"
    assert "List-Unsubscribe-Post" not in msg


def test_without_any_unsubscribe_address_the_footer_says_whom_to_ask() -> None:
    mail = rendered(digest_of([item(1)]), links=PLAIN)
    assert "List-Unsubscribe" not in parsed(mail)
    assert "To stop these emails, ask whoever runs digest." in page(mail.html).text


def test_headers_are_never_folded_even_when_long() -> None:
    # A long handle makes every header that names it longer than 78 characters.
    handle = "a-reader-with-a-remarkably-long-handle-" * 3
    reader = Recipient(handle, "Ada " * 30, "ada@example.org")
    raw = rendered(digest_of([item(1)], audience=handle), recipient=reader).as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert not [line for line in head if line[:1] in (b" ", b"\t")], "a folded header"
    (unsub,) = [line for line in head if line.startswith(b"List-Unsubscribe: ")]
    assert len(unsub) > 200 and unsub.count(b"<") == 2


def test_lines_end_in_crlf_and_bodies_are_7bit_quoted_printable() -> None:
    raw = rendered(digest_of([item(1, title="Schrödinger’s café 👩‍🔬")])).as_bytes()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert [p["Content-Transfer-Encoding"] for p in msg.iter_parts()] == ["quoted-printable"] * 2
    assert "Schrödinger’s café 👩‍🔬" in msg.get_body(("plain",)).get_content()


def mime_view(raw: bytes) -> tuple[list, list]:
    """Headers and parts as a mail client reads them, the boundary replaced by "B"."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    boundary = msg.get_boundary()
    head = [(name, value.replace(boundary, "B")) for name, value in msg.raw_items()]
    return head, [(list(p.raw_items()), p.get_content()) for p in msg.iter_parts()]


#: Bodies that test a quoted-printable encoder: trailing spaces, lone dots, "From ",
#: "=", long lines with and without spaces, tabs, non-ASCII, bare CR and no final newline.
TRICKY_BODIES = [
    "",
    "no final newline",
    "trailing space \ntrailing tab\t\n",
    ".\n..\nFrom here\n",
    "a=b ==c =3D\n",
    "x" * 300 + "\n" + "word " * 80 + "\n",
    "é" * 100 + " 👩‍🔬 " * 20 + "\n\n",
    "dos\r\nmac\rend\n",
    "\x0c\x0b\x1c\x85\u2028 separators that are not line ends\n",
]


@pytest.mark.parametrize("body", TRICKY_BODIES)
def test_as_bytes_reads_back_as_the_email_package_would_write_it(body: str) -> None:
    headers = (
        ("From", "Zoë's digest <digest@example.org>"),
        ("To", "Zoë Ångström <zoe@example.org>"),
        ("Subject", "café =?utf-8?q?not_an_encoded_word?= — 5 papers"),
        ("Message-ID", "<digest.2026-03-11.zoe@digest.example.org>"),
    )
    mail = RenderedEmail("café", body, f"<p>{body}</p>", 1, 0, headers[3][1], headers)
    raw = mail.as_bytes()
    assert mime_view(raw) == mime_view(mail.message().as_bytes(policy=WIRE_POLICY))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76  # RFC 2045's limit


def qp_texts(alphabet: str, tails: list[str], short: int, most: int) -> st.SearchStrategy:
    """Lists of texts that test a quoted-printable encoder: short ones of `alphabet`, and
    long runs around the 76-column limit that end in one of `tails`."""
    return st.lists(
        st.one_of(
            st.text(st.sampled_from(alphabet), max_size=short),
            st.builds(lambda n, tail: "x" * n + tail, st.integers(70, 400), st.sampled_from(tails)),
        ),
        max_size=most,
    )


#: Lines of every length around the reuse threshold, "=", trailing blanks, non-ASCII.
qp_lines = qp_texts("ab =\t.é👩\r", ["", " ", "=", "é"], 20, 12).map("\n".join)


@given(qp_lines, st.booleans())
def test_quoted_printable_in_pieces_is_the_whole_body_encoded_at_once(
    body: str, final_newline: bool
) -> None:
    body += "\n" if final_newline else ""
    whole = body.replace("\r\n", "\n").replace("\r", "\n").removesuffix("\n") + "\n"
    expected = _quoted_printable(body)
    assert_quoted_printable_of(expected, whole)
    assert _quoted_printable(body, reuse=True) == expected
    assert _quoted_printable(body, reuse=True) == expected  # reused lines too


def test_a_rendered_message_reads_back_as_the_email_package_would_write_it() -> None:
    mail = rendered(digest_of([*long_items(3), item(4, title="Zoë’s <b>café</b> = 1")]))
    assert mime_view(mail.as_bytes()) == mime_view(mail.message().as_bytes(policy=WIRE_POLICY))


@pytest.mark.parametrize(
    ("count", "subject"),
    [
        (1, "digest for Wed 11 Mar 2026: 1 paper"),
        (5, "digest for Wed 11 Mar 2026: 5 papers"),
        (0, "digest for Wed 11 Mar 2026: no new papers"),
    ],
)
def test_subject_counts_the_papers(count: int, subject: str) -> None:
    mail = rendered(digest_of([item(n) for n in range(1, count + 1)]))
    assert mail.subject == subject
    assert parsed(mail)["Subject"] == subject


def test_subject_uses_the_site_name_and_names_a_team() -> None:
    team = Recipient("team:efficiency", "Efficiency", "eff@example.org")
    mail = rendered(digest_of([item(1)], audience="team:efficiency"), team, site_name="Papers")
    assert mail.subject == "Papers for Wed 11 Mar 2026 (team efficiency): 1 paper"


def test_message_id_is_the_same_for_a_resent_digest() -> None:
    first = rendered(digest_of([item(1)]))
    again = render_email(
        digest_of([item(1), item(2)]), ADA, settings(), now=NOW + timedelta(hours=5)
    )
    assert first.message_id == again.message_id == "<digest.2026-03-11.ada@digest.example.org>"
    tomorrow = ReaderDigest("ada", DAY + timedelta(days=1), digest_of([item(1)]).picks)
    assert rendered(tomorrow).message_id == "<digest.2026-03-12.ada@digest.example.org>"


def test_message_ids_of_teams_and_odd_handles_are_valid_and_distinct() -> None:
    audiences = ["efficiency", "team:efficiency", "team=efficiency", "o'brien smith", "zoë"]
    ids = set()
    for audience in audiences:
        recipient = Recipient(audience, "Someone", "someone@example.org")
        msg = parsed(rendered(digest_of([item(1)], audience=audience), recipient))
        assert re.fullmatch(r"<[A-Za-z0-9._=-]+@digest\.example\.org>", msg["Message-ID"])
        ids.add(msg["Message-ID"])
    assert len(ids) == len(audiences)


@pytest.mark.parametrize(
    "name", ["Lovelace, Ada", 'Ada "the Countess" Lovelace', "Zoë Ångström", "李 小龙", ""]
)
def test_recipient_names_are_encoded_and_round_trip(name: str) -> None:
    reader = Recipient("ada", name, "ada@example.org")
    msg = parsed(rendered(digest_of([item(1)]), reader))
    (to,) = msg["To"].addresses
    assert (to.display_name, to.addr_spec) == (name, "ada@example.org")
    assert all(ord(c) < 128 for c in msg.as_string().split("\n\n", 1)[0])


def test_a_name_cannot_inject_a_header() -> None:
    reader = Recipient("ada", "Ada\r\nBcc: victim@example.org", "ada@example.org")
    msg = parsed(rendered(digest_of([item(1)]), reader))
    assert "Bcc" not in msg
    assert msg["To"].addresses[0].display_name == "Ada Bcc: victim@example.org"


def test_a_recipient_without_email_renders_but_cannot_become_a_message() -> None:
    mail = rendered(digest_of([item(1)]), Recipient("ada", ""))
    assert "1 paper picked for ada" in page(mail.html).text
    with pytest.raises(ValueError, match="no email address"):
        mail.as_bytes()


def test_a_malformed_address_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'not an address' is not an email address"):
        rendered(digest_of([item(1)]), Recipient("ada", "Ada", "not an address"))


@given(
    name=st.one_of(st.just(""), st.from_regex(_PLAIN_NAME, fullmatch=True)),
    address=st.from_regex(_PLAIN_ADDRESS, fullmatch=True),
)
def test_a_plain_recipient_is_written_as_the_email_package_writes_it(
    name: str, address: str
) -> None:
    # `_to` writes the usual recipient itself; the email package is the reference.
    expected = str(Address(display_name=name, addr_spec=address))
    assert _to(Recipient("ada", name, address)) == expected


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_email(digest_of([item(1)]), ADA, settings(), now=datetime(2026, 3, 11, 7))


# --- Content ------------------------------------------------------------------------------


def test_each_item_shows_rank_title_authors_abstract_reason_and_links() -> None:
    paper = item(
        1,
        authors=tuple(f"Author {n}" for n in range(1, 10)),
        abstract="word " * 200,
        code_url="https://github.com/example/sparse",
        project_urls=("https://example.github.io/sparse", "https://github.com/example/sparse"),
    )
    why = Explanation(interest="long context", because_title="Ring attention", terms=("kv",))
    mail = rendered(digest_of([paper], why=why))
    found = assert_safe(mail.html, allowed_mailto=None)
    assert found.titles == ["Paper 1: sparse attention for long documents"]
    assert "#1" in found.text
    assert "Author 1, Author 2, Author 3, Author 4, Author 5 and 4 others" in found.text
    abstract = re.search(r"(word )+word…", found.text)
    assert abstract and 300 <= len(abstract.group()) <= 360
    assert "Matches your interest long context" in found.text
    assert "Because you read Ring attention" in found.text
    assert "Shared terms kv" in found.text
    assert "https://github.com/example/sparse" in found.hrefs
    assert "https://example.github.io/sparse" in found.hrefs
    assert found.hrefs.count("https://github.com/example/sparse") == 1  # no repeat
    for words in ("Read the paper", "Code", "example.github.io", "More like", "Less like"):
        assert words in found.text


def test_code_and_project_links_are_http_only_deduplicated_and_at_most_three_pages() -> None:
    pages = ("ftp://x.org/a", *(f"https://www.page{n}.org/" for n in range(5)))
    paper = item(1, code_url="javascript:alert(1)", project_urls=pages)
    found = page(rendered(digest_of([paper])).html)
    extra = [h for h in found.hrefs if "page" in h]
    assert extra == [f"https://www.page{n}.org/" for n in range(3)]
    assert "Code" not in found.text and "page0.org · page1.org · page2.org" in found.text


def test_text_part_carries_the_same_items_and_links() -> None:
    paper = item(1, code_url="https://github.com/example/sparse")
    mail = rendered(digest_of([paper, item(2)]))
    text = mail.text
    assert text.startswith("digest: Wednesday 11 March 2026\n2 papers picked for Ada Lovelace\n")
    assert "1. Paper 1: sparse attention for long documents" in text
    assert "2. Paper 2: sparse attention for long documents" in text
    assert "Why: matches your interest 'long context'; shared terms: attention, sparse" in (
        squash(text)
    )
    assert "   Code: https://github.com/example/sparse\n" in text
    assert re.search(rf"   Read: {BASE}/c/\S+\n", text)
    assert re.search(rf"   More like this: {BASE}/f/\S+\n", text)
    assert f"\nYour feed: {FEED}\n" in text
    assert "You get this because you are subscribed to digest as ada (teams: efficiency, nlp)." in (
        squash(text)
    )
    assert max(len(line) for line in text.splitlines() if "http" not in line) <= 80


def test_explanation_without_parts_says_why_anyway() -> None:
    mail = rendered(digest_of([item(1)], why=Explanation()))
    assert "Readers with interests like yours read papers like this" in page(mail.html).text
    assert "readers with similar interests read papers like this" in mail.text


def test_footer_says_why_the_reader_gets_it_and_links_unsubscribe() -> None:
    found = page(rendered(digest_of([item(1)])).html)
    assert (
        "You get this because you are subscribed to digest as ada (teams: efficiency, nlp)."
    ) in found.text
    unsubscribe = [h for h in found.hrefs if h.startswith(f"{BASE}/u/")]
    assert len(unsubscribe) == 1
    assert "Unsubscribe" in found.text and FEED in found.hrefs


def test_footer_falls_back_to_the_mailto_unsubscribe() -> None:
    mail = rendered(digest_of([item(1)]), links=Links(unsubscribe_mailbox=MAILBOX))
    mailto = f"mailto:{MAILBOX}?subject=unsubscribe%20ada"
    assert mailto in assert_safe(mail.html, allowed_mailto=mailto).hrefs


def test_preheader_previews_the_first_titles_and_dark_mode_is_declared() -> None:
    mail = rendered(digest_of([item(1), item(2), item(3), item(4)]))
    preview = re.search(r'<div style="display:none;[^"]*">([^<]*)</div>', mail.html)
    assert preview and preview.group(1).startswith("Paper 1: sparse attention")
    assert "Paper 2" in preview.group(1) and "Paper 4" not in preview.group(1)
    assert '<meta name="color-scheme" content="light dark"' in mail.html
    assert "@media (prefers-color-scheme: dark)" in mail.html
    assert "overflow-wrap:anywhere" in mail.html


def test_team_digest_links_directly_and_names_the_members() -> None:
    team = Recipient("team:efficiency", "Efficiency", "eff@example.org", members=("ada", "bob"))
    picks = (Pick(item(1), 1, 0.9, Explanation(interest="kv cache"), members=("ada", "bob")),)
    mail = rendered(ReaderDigest("team:efficiency", DAY, picks), team)
    found = page(mail.html)
    assert found.titles == ["Paper 1: sparse attention for long documents"]
    assert "https://arxiv.org/abs/2603.00001" in found.hrefs
    assert not [h for h in found.hrefs if h.startswith(BASE + "/c/") or h.startswith(BASE + "/f/")]
    assert "for ada, bob" in found.text
    assert "1 paper picked for the efficiency team" in found.text
    assert "receives the efficiency team's digest (members: ada, bob)." in found.text
    assert parsed(mail)["List-Unsubscribe"].startswith("<mailto:")  # no https page for teams


def test_tracked_links_carry_signed_tokens_for_this_reader_item_and_day() -> None:
    found = page(rendered(digest_of([item(7)])).html)
    links = {}
    for href in found.hrefs:
        for kind in ("c", "f", "u"):
            if href.startswith(f"{BASE}/{kind}/"):
                raw, _, choice = href.removeprefix(f"{BASE}/{kind}/").partition("/")
                token = SIGNER.verify(raw)
                assert (token.reader, token.day) == ("ada", DAY)
                link = {"c": "click", "f": choice, "u": "unsubscribe"}[kind]
                links[link] = (token.action, token.item_id)
    # One "pick" token stands for the item's three links; the path says which.
    assert links == {
        "click": ("pick", "p7"), "more": ("pick", "p7"), "less": ("pick", "p7"),
        "unsubscribe": ("unsubscribe", ""),
    }  # fmt: skip


def test_untracked_links_go_straight_to_the_paper_without_feedback() -> None:
    mail = rendered(digest_of([item(7)]), links=PLAIN, feed_url=None)
    found = assert_safe(mail.html)
    assert set(found.hrefs) == {"https://arxiv.org/abs/2603.00007"}
    assert "More like this" not in found.text and "More like this" not in mail.text


def test_an_item_without_url_shows_its_title_as_text() -> None:
    found = page(rendered(digest_of([item(1, url=None)])).html)
    assert found.titles == ["Paper 1: sparse attention for long documents"]
    assert not [h for h in found.hrefs if h.startswith(f"{BASE}/c/")]
    assert "Read the paper" not in found.text


def test_an_empty_digest_renders() -> None:
    mail = rendered(digest_of([]))
    assert (mail.shown, mail.hidden) == (0, 0)
    assert "Nothing new to show today." in page(mail.html).text


def test_a_template_folder_overrides_by_name(tmp_path: Path) -> None:
    (tmp_path / "email.txt.j2").write_text("{{ total }} for {{ audience }}\n", encoding="utf-8")
    mail = rendered(digest_of([item(1)]), templates=str(tmp_path))
    assert mail.text == "1 for 1 paper picked for Ada Lovelace\n"
    assert page(mail.html).titles  # the bundled MJML template still renders the HTML


def test_the_html_template_is_compiled_once_with_the_per_email_tags_intact() -> None:
    html = compile_html()
    assert "<mj-" not in html and "[%" not in html and "[[" not in html
    for tag in (
        "<title>{{ subject }}</title>",
        "{% for html in item_html %}",
        'href="{{ unsubscribe_url }}"',
    ):
        assert tag in html, tag
    assert html_template() is html_template()


def test_an_items_html_is_rendered_once_per_paper_and_filled_in_per_email() -> None:
    """Two readers get the same paper: one fragment, each with their own links and rank."""
    paper = item(1)
    ada, bob = Recipient("ada", "Ada", "ada@example.org"), Recipient("bob", "Bob", "b@x.org")
    mails = [
        rendered(ReaderDigest(who.audience, DAY, (Pick(paper, rank, 1.0, Explanation()),)), who)
        for rank, who in ((1, ada), (3, bob))
    ]
    for mail, (rank, who) in zip(mails, ((1, "ada"), (3, "bob")), strict=True):
        found = assert_safe(mail.html)
        assert found.titles == ["Paper 1: sparse attention for long documents"]
        tracked = [h for h in found.hrefs if h.startswith((f"{BASE}/c/", f"{BASE}/f/"))]
        assert tracked and all(SIGNER.verify(h.split("/")[4]).reader == who for h in tracked)
        assert f"#{rank}" in found.text
        assert "\x00" not in mail.html


@pytest.mark.parametrize("count", [1, 20])
def test_each_item_is_rendered_by_the_compiled_loop(count: int) -> None:
    mail = rendered(digest_of([item(n) for n in range(1, count + 1)]))
    assert mail.html.count('data-digest="item"') == count
    assert page(mail.html).titles == [
        f"Paper {n}: sparse attention for long documents" for n in range(1, count + 1)
    ]


@pytest.mark.parametrize(
    "title",
    [
        "</mj-text></mj-column></mj-section><mj-raw><b>x</b></mj-raw>",
        "{{ x }} {{ subject }}",
        "{% raw %}{% endraw %} {% for i in items %}",
        "{# x #} shown",
        "[[ x ]] [[ subject ]]",
        "[% x %] [% include 'email.txt.j2' %]",
        "[# x #] shown",
    ],
)
def test_template_syntax_of_either_stage_in_an_item_is_shown_as_text(title: str) -> None:
    paper = item(1, title=title, abstract=title, authors=(title,))
    mail = rendered(digest_of([paper], why=Explanation(interest=title, because_title=title)))
    found = assert_safe(mail.html)
    assert found.titles == [title]
    assert found.text.count(title) == 6  # preheader, title, authors, abstract, reason twice
    assert title in mail.text
    assert mail.html.count('data-digest="item"') == 1


def test_a_template_folder_can_override_the_item_partial(tmp_path: Path) -> None:
    (tmp_path / "email_item.html.j2").write_text(
        '<p data-digest="title" class="mine">{{ item.rank }}: {{ item.title }}</p>\n',
        encoding="utf-8",
    )
    mail = rendered(digest_of([item(1), item(2)]), templates=str(tmp_path))
    assert 'class="mine"' in mail.html
    assert page(mail.html).titles == [
        "1: Paper 1: sparse attention for long documents",
        "2: Paper 2: sparse attention for long documents",
    ]


def mjml_override(folder: Path, card: str) -> str:
    """A minimal `email.mjml.j2` in `folder` with `card` as its only column's content."""
    (folder / "email.mjml.j2").write_text(
        f"<mjml><mj-body><mj-section><mj-column>{card}</mj-column></mj-section></mj-body></mjml>",
        encoding="utf-8",
    )
    return str(folder)


def test_a_per_email_tag_that_mjml_drops_is_a_config_error(tmp_path: Path) -> None:
    # MJML reads a column's width itself: the tag never reaches the HTML.
    (tmp_path / "email.mjml.j2").write_text(
        '<mjml><mj-body><mj-section><mj-column width="{{ width }}"><mj-text>{{ total }}'
        "</mj-text></mj-column></mj-section></mj-body></mjml>",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"MJML dropped '\{\{ width \}\}'.*inside mj-text"):
        rendered(digest_of([item(1)]), templates=str(tmp_path))


def test_mjml_that_does_not_parse_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "email.mjml.j2").write_text("<mjml><mj-body>", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"email\.mjml\.j2.*MJML error"):
        rendered(digest_of([item(1)]), templates=str(tmp_path))


def test_an_unknown_name_in_the_html_template_is_a_config_error(tmp_path: Path) -> None:
    folder = mjml_override(tmp_path, "<mj-text>{{ no_such_value }}</mj-text>")
    with pytest.raises(ConfigError, match=r"email\.mjml\.j2.*no_such_value"):
        rendered(digest_of([item(1)]), templates=folder)


# --- Size cap -----------------------------------------------------------------------------


def long_items(count: int) -> list[StoredItem]:
    return [
        item(
            n,
            title=f"Paper {n} " + "with an exceedingly long title " * 12,
            abstract="An abstract that goes on and on. " * 100,
            authors=tuple(f"Author Number {k}" for k in range(40)),
            code_url=f"https://github.com/example/repo-{n}",
            project_urls=(f"https://example.github.io/project-{n}",),
        )
        for n in range(1, count + 1)
    ]


def test_two_hundred_long_items_are_cut_to_fit_and_the_rest_left_to_the_feed() -> None:
    mail = rendered(digest_of(long_items(200)))
    assert len(mail.html.encode("utf-8")) <= 100_000
    assert mail.shown + mail.hidden == 200 and 10 < mail.shown < 200
    found = assert_safe(mail.html, allowed_mailto=None)
    assert len(found.titles) == mail.shown
    assert found.titles[-1].startswith(f"Paper {mail.shown} ")  # the leading items are kept
    assert f"{mail.hidden} more in your feed" in found.text
    assert FEED in found.hrefs
    assert "Unsubscribe" in found.text  # the footer survives the cut
    assert f"{mail.hidden} more in your feed: {FEED}" in mail.text
    assert f"\n{mail.shown}. Paper {mail.shown} " in mail.text
    assert f"\n{mail.shown + 1}. " not in mail.text
    assert mail.subject.endswith(": 200 papers")


def test_the_cut_keeps_the_most_items_that_fit_in_few_renders() -> None:
    sizes = [1_000 + 300 * n + (n % 7) for n in range(201)]
    calls: list[int] = []

    def size_for(n: int) -> int:
        calls.append(n)
        return sizes[n]

    shown = _fit(200, size_for, 30_000)
    assert len(calls) <= 2 + 8  # all, none, then a binary search over 200
    assert shown == max(n for n, size in enumerate(sizes) if size <= 30_000)


def test_a_larger_cap_shows_more_items() -> None:
    digest = digest_of(long_items(40))
    shown = []
    for cap in (30_000, 45_000, 60_000):
        mail = rendered(digest, max_html_bytes=cap)
        assert len(mail.html.encode("utf-8")) <= cap
        shown.append(mail.shown)
    assert 0 < shown[0] < shown[1] < shown[2] < 40


def test_the_cut_is_exact_to_the_byte() -> None:
    digest = digest_of(long_items(12))
    size = len(rendered(digest, max_html_bytes=10**7).html.encode("utf-8"))
    assert rendered(digest, max_html_bytes=size).shown == 12
    cut = rendered(digest, max_html_bytes=size - 1)
    assert cut.shown == 11 and len(cut.html.encode("utf-8")) <= size - 1


def test_a_cut_without_a_feed_says_the_rest_did_not_fit() -> None:
    mail = rendered(digest_of(long_items(40)), feed_url=None, max_html_bytes=30_000)
    assert mail.hidden > 0
    assert f"{mail.hidden} more did not fit in this email" in page(mail.html).text


def test_a_digest_that_fits_is_not_cut() -> None:
    mail = rendered(digest_of([item(n) for n in range(1, 6)]))
    assert (mail.shown, mail.hidden) == (5, 0)
    assert "more in your feed" not in page(mail.html).text


def test_a_cap_too_small_for_any_email_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_html_bytes=1000"):
        rendered(digest_of([item(1)]), max_html_bytes=1000)


# --- Bodies encoded from pieces ----------------------------------------------------------


def encoded_as_a_whole(mail: RenderedEmail) -> RenderedEmail:
    """The same email with its bodies left for `as_bytes` to encode whole."""
    return replace(mail, text_qp=None, html_qp=None)


def assert_quoted_printable_of(encoded: bytes, text: str) -> None:
    """`encoded` is valid quoted-printable (RFC 2045) that decodes to `text` with CRLFs."""
    lines = encoded.split(b"\r\n")
    assert lines[-1] == b"", "a body or piece that does not end in a line end"
    for line in lines[:-1]:
        assert len(line) <= 76, line
        assert re.fullmatch(rb"(?:[!-<>-~ \t]|=[0-9A-F]{2})*=?", line), line
        assert not line.endswith((b" ", b"\t")), f"unprotected trailing blank in {line!r}"
    assert binascii.a2b_qp(encoded) == text.replace("\n", "\r\n").encode()


@pytest.mark.parametrize(
    "digest",
    [
        digest_of([item(n) for n in range(1, 21)]),
        digest_of([*long_items(30), item(31, title="Zoë’s <b>café</b> = 1 . \t")]),  # cut
        digest_of([]),
        digest_of([item(1, title="=" * 90, abstract="é" * 200, authors=("a " * 60,))]),
        ReaderDigest("team:nlp", DAY, (Pick(item(1), 1, 1.0, Explanation(), ("ada", "bo")),)),
    ],
    ids=["twenty", "cut", "empty", "escapes", "team"],
)
def test_bodies_made_of_encoded_pieces_decode_to_the_whole_bodies(digest: ReaderDigest) -> None:
    """Each page's and item's text is encoded once and each email's values per email:
    valid quoted-printable that reads back as the whole bodies do."""
    mail = rendered(digest)
    assert mail.text_qp is not None and mail.html_qp is not None  # the bundled templates
    assert_quoted_printable_of(mail.text_qp, mail.text.removesuffix("\n") + "\n")
    assert_quoted_printable_of(mail.html_qp, mail.html.removesuffix("\n") + "\n")
    assert mime_view(mail.as_bytes()) == mime_view(encoded_as_a_whole(mail).as_bytes())


#: Values and page text that test encoding in pieces: blanks at either end, "=", a lone
#: dot, line ends inside and at the end, long runs with and without spaces, non-ASCII.
qp_pieces = qp_texts("ab =\t.é👩\n", ["", " ", "=", "é", "\n", " \n"], 30, 8)


@given(qp_pieces)
def test_values_encoded_together_are_each_a_piece_that_ends_a_line(values: list[str]) -> None:
    """`_quoted_values` gives each value as `_qp_segment` would: valid lines ending in a
    line end (a soft break unless the value ends in its own), whatever is around it."""
    encoded = _quoted_values([values])
    assert encoded is not None and set(encoded) == set(values)
    for value in values:
        piece = encoded[value]
        assert binascii.a2b_qp(piece) == binascii.a2b_qp(_qp_segment(value))
        if value:
            hard = value.endswith("\n")
            assert_quoted_printable_of(
                piece + (b"" if hard else b"\r\n"), value + ("" if hard else "\n")
            )


@given(qp_pieces)
def test_pieces_put_together_decode_to_the_text_put_together(pieces: list[str]) -> None:
    """A soft break vanishes when decoded: pieces encoded apart read back as one text."""
    text = "".join(pieces) + "\n"
    encoded = b"".join(map(_qp_segment, [*pieces, "\n"]))
    assert_quoted_printable_of(encoded, text)


@given(
    st.text(
        st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters="="), max_size=400
    )
)
def test_plain_values_need_only_soft_breaks(value: str) -> None:
    """Printable ASCII without "=" skips the encoder: the same lines decoded."""
    plain = _plain_segment(value)
    assert binascii.a2b_qp(plain) == binascii.a2b_qp(_qp_segment(value))
    assert plain.replace(b"=\r\n", b"") == value.encode()
    if value:
        assert_quoted_printable_of(plain + b"\r\n", value + "\n")


def test_a_value_holding_the_value_break_leaves_the_bodies_to_be_encoded_whole() -> None:
    """An email's values are encoded together and cut apart at `=02`, `=01` lines: a
    value that held such a break of its own (no item text or link can) must not shift
    them, nor may a carriage return (read as a line end) go into a piece."""
    odd = "x\n\x01\n\x02"
    encoded = _quoted_values([["https://x.org/a", "é", odd]])
    assert encoded is not None
    assert binascii.a2b_qp(encoded[odd]) == odd.replace("\n", "\r\n").encode()
    assert _quoted_values([["https://x.org/a", "é\x02\n\x01\n", "é"]]) is None
    assert _quoted_values([["é\rx"]]) is None
    fragment = _Fragment.of(f"<p>fixed</p>\n<a href={slot('url')}>\n<p>mo\x02re</p>")
    assert fragment.quoted is None


def test_an_item_placed_mid_line_by_an_override_is_encoded_with_the_whole_body(
    tmp_path: Path,
) -> None:
    (tmp_path / "email.txt.j2").write_text(
        "{% for text in item_text %}>> {{ text }}{% endfor %}\n", encoding="utf-8"
    )
    mail = rendered(digest_of([item(1), item(2)]), templates=str(tmp_path))
    assert mail.text.startswith(">> 1. Paper 1") and "\n>> 2. Paper 2" in mail.text
    assert mail.text_qp is None and mail.html_qp is not None
    assert mime_view(mail.as_bytes()) == mime_view(mail.message().as_bytes(policy=WIRE_POLICY))


def test_a_text_template_laying_out_the_items_itself_still_works(tmp_path: Path) -> None:
    """An `email.txt.j2` written before `email_item.txt.j2` existed loops over `items`."""
    (tmp_path / "email.txt.j2").write_text(
        "{% for item in items %}{{ item.rank }}: {{ item.title | upper }} {{ item.url }}\n"
        "{% endfor %}{{ reason | wrap(30) }}\n",
        encoding="utf-8",
    )
    mail = rendered(digest_of([item(1), item(2)]), templates=str(tmp_path))
    lines = mail.text.splitlines()
    assert lines[0].startswith(f"1: PAPER 1: SPARSE ATTENTION FOR LONG DOCUMENTS {BASE}/c/")
    assert lines[1].startswith("2: PAPER 2")
    assert max(len(line) for line in lines[2:]) <= 30
    assert mime_view(mail.as_bytes()) == mime_view(encoded_as_a_whole(mail).as_bytes())


@pytest.mark.parametrize("links", [TRACKED, PLAIN], ids=["tracked", "plain"])
def test_an_item_filled_in_is_the_item_rendered_for_this_email(
    hostile_text: dict, links: Links
) -> None:
    """The fragments rendered once with slots, filled with one reader's values, are what
    rendering both item templates with that reader's values gives."""
    value = hostile_text["value"]
    digest = hostile_digest(value)
    digest = replace(digest, picks=(*digest.picks, Pick(item(2), 2, 0.5, Explanation())))
    for n, pick in enumerate(digest.picks):
        view = _item_view(pick, digest, links)
        filled = _FilledItem(view, n == 0, None)
        assert filled.html == item_template().render(item=view, first=n == 0).rstrip("\n")
        assert filled.text == text_item_template().render(item=view).removesuffix("\n")


def test_the_reason_wraps_per_email_as_the_text_item_template_says(tmp_path: Path) -> None:
    (tmp_path / "email_item.txt.j2").write_text(
        "{{ item.rank }}. {{ item.title }}\n{{ item.why_text | wrap(20) | indent(2, true) }}\n"
        "{{ item.why_text | wrap(width=30) }}\n",
        encoding="utf-8",
    )
    why = Explanation(interest="one two three four five six seven eight nine ten")
    for reason in (why, Explanation(terms=("alpha", "beta", "gamma", "delta", "epsilon"))):
        text = rendered(digest_of([item(1)], why=reason), templates=str(tmp_path)).text
        expected = f"  {wrap(clean(reason.text()), 20)}".replace("\n", "\n  ")
        assert f"1. Paper 1: sparse attention for long documents\n{expected}\n" in text
        assert f"\n{wrap(clean(reason.text()), 30)}\n" in text


def test_a_slot_through_another_filter_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "email_item.txt.j2").write_text("{{ item.url | upper }}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="per-reader value"):
        rendered(digest_of([item(1)]), templates=str(tmp_path))


# --- Hostile items ------------------------------------------------------------------------


def hostile_digest(value: str) -> ReaderDigest:
    paper = item(1, title=value, abstract=value, authors=(value, "Ada Lovelace"), tags=(value,))
    why = Explanation(interest=value, because_title=value, terms=(value,))
    return ReaderDigest("ada", DAY, (Pick(paper, 1, 1.0, why, members=(value,)),))


@pytest.mark.parametrize("links", [TRACKED, PLAIN], ids=["tracked", "plain"])
def test_hostile_text_renders_literally_and_safely(hostile_text: dict, links: Links) -> None:
    mail = rendered(hostile_digest(hostile_text["value"]), links=links)
    shown = hostile_text["shown"]
    found = assert_safe(mail.html)
    (title,) = found.titles
    if not shown:
        assert title == "(untitled)"
    elif len(shown) <= 300:
        assert title == shown
        assert shown in found.text  # also the authors, abstract and reason
        assert squash(shown) in squash(mail.text)
    else:
        assert title.startswith(shown[:200]) and title.endswith("…") and len(title) <= 300
        assert shown[:200] in squash(mail.text)
    for text in (mail.html, mail.text):
        assert not UNSEEN.search(text)
    parsed(mail)  # and it serialises: no lone surrogate reaches the encoder


def test_hostile_text_as_recipient_and_site_name_is_escaped(hostile_text: dict) -> None:
    value = hostile_text["value"]
    reader = Recipient("ada", value, "ada@example.org", teams=(value,))
    mail = rendered(digest_of([item(1)]), reader, site_name=value)
    found = assert_safe(mail.html)
    assert hostile_text["shown"][:200] in found.text
    parsed(mail)


def per_email_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, every page is rendered per email with its values, never shared."""
    monkeypatch.setattr(email_module, "_shared_shell", lambda template, shape: None)


@pytest.mark.parametrize("links", [TRACKED, PLAIN], ids=["tracked", "plain"])
def test_a_shared_page_filled_in_is_the_page_rendered_for_this_email(
    hostile_text: dict, links: Links, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page rendered once per shape with slots, filled with one reader's values (a
    hostile name, team and site name among them), is what rendering it for them gives."""
    value = hostile_text["value"]
    reader = Recipient("ada", value, "ada@example.org", teams=(value,))
    digests = [digest_of([]), digest_of([item(1), item(2)], why=Explanation(interest=value))]
    first = replace(digests[1], picks=digests[1].picks[:1])
    one = len(rendered(first, reader, links).html.encode())
    options = ({}, {"site_name": value}, {"max_html_bytes": one + 100})  # one item of two
    cases = [(d, kw) for d in digests for kw in options]
    shared = [rendered(d, reader, links, **kw) for d, kw in cases]
    per_email_pages(monkeypatch)
    for mail, (digest, kw) in zip(shared, cases, strict=True):
        alone = rendered(digest, reader, links, **kw)
        assert (mail.html, mail.text, mail.shown) == (alone.html, alone.text, alone.shown)
        assert mail.html_qp and mail.text_qp and alone.html_qp and alone.text_qp
        assert binascii.a2b_qp(mail.html_qp) == binascii.a2b_qp(alone.html_qp)
        assert binascii.a2b_qp(mail.text_qp) == binascii.a2b_qp(alone.text_qp)


def test_readers_sharing_a_page_each_get_their_own_values() -> None:
    grace = Recipient("grace", "Grace Hopper", "grace@example.org", teams=("compilers",))
    before = email_module._shared_shell.cache_info()
    mails = {
        who.handle: rendered(digest_of([item(1), item(2)], audience=who.audience), who)
        for who in (ADA, grace)
    }
    assert email_module._shared_shell.cache_info().hits > before.hits  # the page was shared
    for who, other in ((ADA, grace), (grace, ADA)):
        mail = mails[who.handle]
        found = page(mail.html)
        assert f"2 papers picked for {who.name}" in found.text
        assert f"as {who.handle} (teams: {', '.join(who.teams)})" in squash(mail.text)
        assert f"picked for {other.name}" not in found.text + mail.text
        assert f"as {other.handle} " not in squash(mail.text)
        unsubscribe = parsed(mail)["List-Unsubscribe"].split(">")[0].removeprefix(f"<{BASE}/u/")
        assert SIGNER.verify(unsubscribe).reader == who.handle
        assert f"{BASE}/u/{unsubscribe}" in found.hrefs


#: Page templates that use a value in ways a slot cannot stand for.
VALUE_USING_PAGES = {
    "filtered": "{{ audience | upper }} {{ subject[:6] }}|\n",
    "measured": "{% if audience|length > 36 %}LONG {% endif %}{{ audience }}|\n",
    "items read": "{% if items[0].title.startswith('Paper') %}P {% endif %}{{ audience }}|\n",
    "tested": "{% if 'Grace' in audience %}G {% endif %}{{ site_name == 'digest' }}|\n",
    "lowered": "{{ audience|lower }}|\n",
    "encoded": "{{ feed_url|urlencode }} {{ subject|tojson }}|\n",
    "split": "{{ subject.split(': ')[1] }} {{ heading.split()[0] }}|\n",
}


@pytest.mark.parametrize("template", VALUE_USING_PAGES.values(), ids=VALUE_USING_PAGES.keys())
def test_an_overridden_page_template_is_rendered_per_email(tmp_path: Path, template: str) -> None:
    """A page from the templates folder may do more with a value than show it."""
    (tmp_path / "email.txt.j2").write_text(template, encoding="utf-8")
    reader = Recipient("grace", "Grace Brewster Murray Hopper", "grace@example.org")
    for who in (ADA, reader):
        digest = digest_of([item(1)], audience=who.audience)
        mail = rendered(digest, who, templates=str(tmp_path))
        context = {
            "audience": f"1 paper picked for {who.name}",
            "subject": "digest for Wed 11 Mar 2026: 1 paper",
            "site_name": "digest",
            "heading": "Wednesday 11 March 2026",
            "feed_url": FEED,
            "items": [_item_view(digest.picks[0], digest, TRACKED)],
        }
        expected = jinja2.Environment(keep_trailing_newline=True, trim_blocks=True)
        assert mail.text == expected.from_string(template).render(context)


@pytest.mark.parametrize(
    "template", [VALUE_USING_PAGES[k] for k in ("filtered", "measured", "items read", "split")]
)
def test_a_page_that_measures_cuts_or_reads_its_values_is_never_shared(template: str) -> None:
    """The guard on the bundled pages, should an edit of them use a value otherwise."""
    env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    page = env.from_string(template)
    shape = (1, 0, *(True for _ in email_module._SORTED_VALUES))
    assert email_module._shared_shell(page, shape) is None
    shown = jinja2.Environment().from_string("{{ audience }} {{ subject }}|")
    assert email_module._shared_shell(shown, shape) is not None


def test_a_page_ending_in_an_item_without_a_line_end_encodes_as_the_whole_body(
    tmp_path: Path,
) -> None:
    (tmp_path / "email.txt.j2").write_text("{{ item_text|join('\n') }}", encoding="utf-8")
    mail = rendered(digest_of([item(1), item(2)]), templates=str(tmp_path))
    assert mime_view(mail.as_bytes()) == mime_view(encoded_as_a_whole(mail).as_bytes())


def hostile_links_digest(url: str) -> ReaderDigest:
    """The URL as an item's own link, as its code link, and as its project page."""
    return digest_of([item(1, url=url), item(2, code_url=url), item(3, project_urls=(url,))])


@pytest.mark.parametrize("links", [TRACKED, PLAIN], ids=["tracked", "plain"])
def test_only_http_urls_become_links(hostile_url: dict, links: Links) -> None:
    url = hostile_url["value"]
    mail = rendered(hostile_links_digest(url), links=links, feed_url=url)
    mailto = f"mailto:{MAILBOX}?subject=unsubscribe%20ada" if links.unsubscribe_mailbox else None
    found = assert_safe(mail.html, allowed_mailto=mailto)
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    if hostile_url["link"]:
        # Code, project page and feed; untracked, also the title and "Read the paper".
        assert found.hrefs.count(url) == (3 if links.tracked else 5)
        for line in (f"Code: {url}\n", f"{host}: {url}\n", f"Your feed: {url}\n"):
            assert line in mail.text
        assert (f"Read: {url}\n" in mail.text) is not links.tracked
    else:
        assert url not in found.hrefs
        assert f": {url}\n" not in mail.text
        # Only the two items with a good URL are linked (through the service when tracked).
        own = [h for h in found.hrefs if h.startswith("https://arxiv.org/")]
        assert len(own) == (0 if links.tracked else 4)  # title and "Read the paper", twice


def test_stored_urls_are_escaped_in_attributes() -> None:
    url = 'https://example.org/x"><script>alert(1)</script>'
    mail = rendered(hostile_links_digest(url), links=PLAIN)
    assert '"><script>' not in mail.html
    assert url in assert_safe(mail.html).hrefs


# --- Helpers and purity -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("  a\n\tb  ", "a b"),
        ("x\u202ey", "xy"),
        ("a\x00b\x1bc", "abc"),
        ("caf\u00e9 \u200d", "café \u200d"),  # a zero-width joiner is part of real text
        (None, ""),
    ],
)
def test_clean(raw: str | None, cleaned: str) -> None:
    assert clean(raw) == cleaned


def test_trim_cuts_at_a_word_with_an_ellipsis() -> None:
    assert trim("short", 10) == "short"
    assert trim("one two three four five", 14) == "one two three…"
    assert trim("x" * 50, 10) == "x" * 9 + "…"


def test_clean_drops_exactly_controls_surrogates_and_bidi_formatting() -> None:
    bidi = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
    unseen = bidi | {0xFEFF, 0xFFFE, 0xFFFF}
    for code in [*range(0x10000), 0x1F469, 0xE0001, 0x10FFFF]:  # Cc and Cs are all in the BMP
        ch = chr(code)
        dropped = code in unseen or unicodedata.category(ch) in ("Cc", "Cs")
        if ch in "\t\n\r" or (ch.isspace() and not dropped):
            expected = "a b"
        else:
            expected = "ab" if dropped else f"a{ch}b"
        assert clean(f"a{ch}b") == expected, hex(code)


#: Cleaned text: words of letters, hyphens and punctuation, single spaces between them.
cleaned_text = st.lists(
    st.text(st.sampled_from("abcdefghij-–,.…é👩"), min_size=1, max_size=30), max_size=40
).map(" ".join)


@given(cleaned_text, st.integers(1, 90))
def test_wrap_is_jinjas_wordwrap_without_breaking_words(text: str, width: int) -> None:
    lines = textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
    assert wrap(text, width) == "\n".join(lines)


@given(
    st.text(st.sampled_from("ab \n\r\x0b\x1c\x85\u2028é")),
    st.integers(0, 9) | st.sampled_from(["", "> ", "\t"]),
    st.booleans(),
    st.booleans(),
)
def test_indent_is_jinjas(text: str, width: int | str, first: bool, blank: bool) -> None:
    """`_indent` skips Jinja's per-line work for text without blank lines; the same text."""
    expected = jinja2.filters.do_indent(text, width, first, blank)
    assert _indent(text, width, first, blank) == expected
    assert _indent(Markup(text), width, first, blank) == expected


@given(st.text(st.sampled_from("ab \t\n\x00\u202e\ud800é")), st.integers(1, 20))
def test_excerpt_is_trim_of_clean(text: str, limit: int) -> None:
    assert _excerpt(text, limit) == trim(clean(text), limit)


def test_the_renderer_imports_neither_numpy_nor_the_store_nor_the_model() -> None:
    code = (
        "import sys, digest.render.email; "
        "bad = {'numpy', 'digest.store', 'digest.model', 'sqlite_utils', 'lightfm'}; "
        "print(sorted(bad & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_plain_http_unsubscribe_url_gets_no_one_click_header() -> None:
    """RFC 8058 one-click is for HTTPS only; an http service still gets the link."""
    links = Links(base_url="http://127.0.0.1:8080", signer=SIGNER, unsubscribe_mailbox=MAILBOX)
    msg = parsed(rendered(digest_of([item(1)]), links=links))
    assert msg["List-Unsubscribe"].startswith("<http://127.0.0.1:8080/u/")
    assert "List-Unsubscribe-Post" not in msg
