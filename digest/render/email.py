"""The email renderer: one digest as a multipart/alternative message, text then HTML.

Jinja renders `email.mjml.j2` (autoescaped) and `email.txt.j2`; mjml-python turns the
MJML into the table-based, inline-styled HTML that mail clients lay out alike. Item
fields are untrusted: they are cleaned of control and bidi characters here, escaped by
the template, and only http(s) URLs ever become links. Gmail clips a message whose HTML
passes about 102 KB, hiding the footer with its unsubscribe link, so the HTML is kept
under `EmailSettings.max_html_bytes` by dropping items from the end and pointing the
reader at their feed for the rest.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from urllib.parse import urlsplit

from mjml import mjml2html

from digest.errors import ConfigError
from digest.records import Explanation, Pick, ReaderDigest, Recipient
from digest.render.links import Links, is_web_url
from digest.render.templates import render

#: Folding long headers breaks List-Unsubscribe URLs in some receivers; never fold.
#: (Bodies are quoted-printable, so no body line comes near SMTP's 998-octet limit.)
WIRE_POLICY = SMTP.clone(max_line_length=0)

TITLE_CHARS = 300
ABSTRACT_CHARS = 360
AUTHORS_SHOWN = 6
AUTHOR_CHARS = 80
PROJECT_LINKS = 3
PREHEADER_CHARS = 140

# Names spelled out here: strftime's %a and %b follow the process locale.
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_SPACES = frozenset("\t\n\r\u2028\u2029")
#: Bidi embeddings, overrides, isolates and marks reorder what a reader sees (U+202E
#: makes "gpj.exe" read as "exe.jpg"); a BOM and the noncharacters U+FFFE/U+FFFF are
#: not text. Displayed text drops them all.
_INVISIBLE = frozenset(
    {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
    | {0xFEFF, 0xFFFE, 0xFFFF}
)
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


@dataclass(frozen=True)
class EmailSettings:
    """Per-deployment settings for every email of a run."""

    #: The From header, e.g. "digest <digest@example.org>".
    sender: str
    #: "digest.example.org": the List-Id (`<digest.example.org>`) and Message-ID domain.
    list_id: str
    links: Links
    #: A folder whose templates win over the bundled ones by name.
    templates: str | None = None
    #: Gmail clips HTML near 102 KB; items past this are left to the feed.
    max_html_bytes: int = 100_000
    site_name: str = "digest"


@dataclass(frozen=True)
class RenderedEmail:
    """One rendered email: both bodies, its headers, and how many items made it in."""

    subject: str
    text: str
    html: str
    #: Items shown in the email.
    shown: int
    #: Items cut to keep the HTML under `max_html_bytes` ("N more in your feed").
    hidden: int
    message_id: str
    #: Every header in order: From, To (when the recipient has an address), Subject,
    #: Date, Message-ID, List-Id, List-Unsubscribe and List-Unsubscribe-Post when known.
    headers: tuple[tuple[str, str], ...]

    def message(self) -> EmailMessage:
        """The MIME message: multipart/alternative, text/plain first, then text/html."""
        if not any(name == "To" for name, _ in self.headers):
            raise ValueError("the recipient has no email address: skip them or give one")
        msg = EmailMessage()
        for name, value in self.headers:
            msg[name] = value
        msg.set_content(self.text, charset="utf-8", cte="quoted-printable")
        msg.add_alternative(self.html, subtype="html", charset="utf-8", cte="quoted-printable")
        # add_alternative gives the new part its own MIME-Version; only the top needs one.
        del msg.get_payload()[1]["MIME-Version"]
        return msg

    def as_bytes(self) -> bytes:
        """The message as it goes on the wire: CRLF line ends, headers never folded."""
        return self.message().as_bytes(policy=WIRE_POLICY)


@dataclass(frozen=True)
class ItemView:
    """One pick, cleaned and trimmed for display; every URL here is http(s)."""

    rank: int
    title: str
    url: str | None
    authors: str
    abstract: str
    #: (label, url) pairs: the code repository, then project pages.
    extra_links: tuple[tuple[str, str], ...]
    #: (label, value) pairs laid out as the reason; the label may be empty.
    why: tuple[tuple[str, str], ...]
    why_text: str
    members: str
    more_url: str | None
    less_url: str | None


def render_email(
    digest: ReaderDigest,
    recipient: Recipient,
    settings: EmailSettings,
    *,
    now: datetime,
    feed_url: str | None = None,
) -> RenderedEmail:
    """Render one digest for one recipient; `now` (timezone-aware) is the Date header.

    Pure: no database, no network. Raises ConfigError for a broken template, or when
    `max_html_bytes` cannot hold even an email without items.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware, e.g. datetime.now(timezone.utc)")
    links = settings.links
    items = [_item_view(p, digest, links) for p in digest.picks]
    unsubscribe = _web(links.unsubscribe(digest.audience, digest.day))
    mailto = _mailto(links.unsubscribe_mailto(digest.audience))
    subject = email_subject(digest, settings.site_name)
    context = _page_context(digest, recipient, settings, subject, feed_url, unsubscribe or mailto)

    def html_for(n: int) -> str:
        shown = items[:n]
        mjml = render(
            "email.mjml.j2",
            settings.templates,
            **context,
            items=shown,
            hidden=len(items) - n,
            preheader=_preheader(shown),
        )
        return mjml2html(mjml, disable_comments=True, fonts={}) + "\n"

    shown, html = _fit(len(items), html_for, settings.max_html_bytes)
    hidden = len(items) - shown
    text = render("email.txt.j2", settings.templates, **context, items=items[:shown], hidden=hidden)
    message_id = make_message_id(digest, settings.list_id)
    headers = _headers(recipient, settings, subject, now, message_id, unsubscribe, mailto)
    return RenderedEmail(subject, text, html, shown, hidden, message_id, headers)


def email_subject(digest: ReaderDigest, site_name: str = "digest") -> str:
    """ "digest for Wed 11 Mar 2026: 5 papers" (the whole digest, shown or not)."""
    n = len(digest.picks)
    count = f"{n} paper" if n == 1 else f"{n} papers" if n else "no new papers"
    who = f" (team {clean(digest.name)})" if digest.is_team else ""
    return f"{clean(site_name)} for {_day(digest.day, short=True)}{who}: {count}"


def make_message_id(digest: ReaderDigest, domain: str) -> str:
    """`<digest.2026-03-11.ada@digest.example.org>`: the same for a re-sent digest.

    A handle that is not a plain dot-atom is replaced by a 64-bit hash of itself, and
    teams get a `team=` prefix (`=` appears nowhere else), so audiences do not share one.
    """
    name = digest.name if _SAFE_ID.fullmatch(digest.name) else _hash_id(digest.name)
    who = f"team={name}" if digest.is_team else name
    return f"<digest.{digest.day.isoformat()}.{who}@{domain}>"


def clean(text: str | None) -> str:
    """Text safe to display on one line: no control, bidi or surrogate characters.

    Control characters could confuse the MJML parser or a terminal, bidi overrides
    reorder what the reader sees, and a lone surrogate cannot be encoded as UTF-8.
    Line breaks and tabs become spaces, and runs of spaces collapse to one.
    """
    if not text:
        return ""
    kept = []
    for ch in text:
        if ch in _SPACES:
            kept.append(" ")
        elif ord(ch) not in _INVISIBLE and unicodedata.category(ch) not in ("Cc", "Cs"):
            kept.append(ch)
    return " ".join("".join(kept).split())


def trim(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary when one is near, with '…'."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + "…"


def _page_context(
    digest: ReaderDigest,
    recipient: Recipient,
    settings: EmailSettings,
    subject: str,
    feed_url: str | None,
    unsubscribe_url: str | None,
) -> dict[str, object]:
    """What both templates show besides the items."""
    return {
        "subject": subject,
        "site_name": clean(settings.site_name),
        "heading": _day(digest.day, short=False),
        "total": len(digest.picks),
        "audience": _audience_line(digest, recipient),
        "reason": _reason(recipient, settings.site_name),
        "feed_url": _web(feed_url),
        "unsubscribe_url": unsubscribe_url,
    }


def _item_view(pick: Pick, digest: ReaderDigest, links: Links) -> ItemView:
    item = pick.item
    return ItemView(
        rank=pick.rank,
        title=trim(clean(item.title), TITLE_CHARS) or "(untitled)",
        url=_web(links.item(digest.audience, item, digest.day)),
        authors=_authors(item.authors),
        abstract=trim(clean(item.abstract), ABSTRACT_CHARS),
        extra_links=_extra_links(item.code_url, item.project_urls, item.url),
        why=_why_parts(pick.why),
        why_text=clean(pick.why.text()),
        members=", ".join(clean(m) for m in pick.members),
        more_url=_web(links.feedback(digest.audience, item, digest.day, "more")),
        less_url=_web(links.feedback(digest.audience, item, digest.day, "less")),
    )


def _authors(authors: tuple[str, ...]) -> str:
    names = [trim(clean(a), AUTHOR_CHARS) for a in authors]
    names = [n for n in names if n]
    if len(names) <= AUTHORS_SHOWN:
        return ", ".join(names)
    rest = len(names) - (AUTHORS_SHOWN - 1)
    return ", ".join(names[: AUTHORS_SHOWN - 1]) + f" and {rest} others"


def _extra_links(
    code_url: str | None, project_urls: tuple[str, ...], paper_url: str | None
) -> tuple[tuple[str, str], ...]:
    """Code first, then up to three project pages labelled by host; never a repeat."""
    pages = [url for url in project_urls if _web(url)][:PROJECT_LINKS]
    found: list[tuple[str, str]] = []
    seen = {paper_url}
    for label, url in [("Code", code_url), *((None, url) for url in pages)]:
        if url and _web(url) and url not in seen:
            found.append((label or _host(url), url))
            seen.add(url)
    return tuple(found)


def _why_parts(why: Explanation) -> tuple[tuple[str, str], ...]:
    parts = []
    whose, who = (f"{clean(why.reader)}'s", clean(why.reader)) if why.reader else ("your", "you")
    if why.interest:
        parts.append((f"Matches {whose} interest", trim(clean(why.interest), 80)))
    if why.because_title:
        parts.append((f"Because {who} read", trim(clean(why.because_title), 90)))
    if why.terms:
        parts.append(("Shared terms", trim(", ".join(clean(t) for t in why.terms), 120)))
    return tuple(parts) or (("", "Readers with interests like yours read papers like this"),)


def _preheader(items: list[ItemView]) -> str:
    """The inbox preview line: the first titles."""
    return trim(" · ".join(i.title for i in items[:3]), PREHEADER_CHARS)


def _audience_line(digest: ReaderDigest, recipient: Recipient) -> str:
    n = len(digest.picks)
    papers = "1 paper" if n == 1 else f"{n} papers"
    if digest.is_team:
        return f"{papers} picked for the {clean(digest.name)} team"
    name = clean(recipient.name) or clean(recipient.handle)
    return f"{papers} picked for {name}"


def _reason(recipient: Recipient, site_name: str) -> str:
    """Why this reader gets this email: the footer line."""
    site = clean(site_name)
    if recipient.is_team:
        members = ", ".join(clean(m) for m in recipient.members)
        extra = f" (members: {members})" if members else ""
        team = clean(recipient.handle)
        return f"You get this because this address receives the {team} team's {site}{extra}."
    teams = ", ".join(clean(t) for t in recipient.teams)
    extra = f" (teams: {teams})" if teams else ""
    return f"You get this because you are subscribed to {site} as {clean(recipient.handle)}{extra}."


def _headers(
    recipient: Recipient,
    settings: EmailSettings,
    subject: str,
    now: datetime,
    message_id: str,
    unsubscribe: str | None,
    mailto: str | None,
) -> tuple[tuple[str, str], ...]:
    headers = [("From", settings.sender)]
    if recipient.email:
        headers.append(("To", _to(recipient)))
    headers += [
        ("Subject", subject),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id),
        ("List-Id", f"<{settings.list_id}>"),
    ]
    targets = [f"<{u}>" for u in (unsubscribe, mailto) if u]
    if targets:
        headers.append(("List-Unsubscribe", ", ".join(targets)))
    if unsubscribe:
        # RFC 8058: the https URL accepts a POST with this body, no confirmation page.
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    return tuple(headers)


def _to(recipient: Recipient) -> str:
    """ "Ada Lovelace <ada@example.org>", quoted as the name needs; ValueError if malformed."""
    address = (recipient.email or "").strip()
    try:
        return str(Address(display_name=clean(recipient.name), addr_spec=address))
    except (ValueError, IndexError, HeaderParseError):
        who = recipient.audience
        raise ValueError(f"{address!r} is not an email address (recipient {who})") from None


def _fit(count: int, html_for: Callable[[int], str], limit: int) -> tuple[int, str]:
    """The most leading items whose HTML fits in `limit` bytes, and that HTML.

    Sizes grow with the item count, so a binary search needs about log2(count) renders;
    only counts whose HTML was measured to fit are ever returned.
    """
    rendered: dict[int, str] = {}

    def fits(n: int) -> bool:
        rendered[n] = html_for(n)
        return len(rendered[n].encode("utf-8")) <= limit

    if fits(count):
        return count, rendered[count]
    if not fits(0):
        raise ConfigError(f"max_html_bytes={limit} is too small for an email with no items")
    low, high = 0, count  # low fits, high does not
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            low = mid
        else:
            high = mid
    return low, rendered[low]


def _web(url: str | None) -> str | None:
    return url if url and is_web_url(url) else None


def _mailto(url: str | None) -> str | None:
    ok = url and url.startswith("mailto:") and not any(c.isspace() or ord(c) < 32 for c in url)
    return url if ok else None


def _host(url: str) -> str:
    host = urlsplit(url).hostname or "link"
    return host.removeprefix("www.")


def _hash_id(name: str) -> str:
    return "h" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _day(day: date, *, short: bool) -> str:
    """ "Wed 11 Mar 2026", or "Wednesday 11 March 2026"."""
    weekday, month = _DAYS[day.weekday()], _MONTHS[day.month - 1]
    if short:
        weekday, month = weekday[:3], month[:3]
    return f"{weekday} {day.day} {month} {day.year}"
