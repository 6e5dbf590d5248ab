"""The email renderer: one digest as a multipart/alternative message, text then HTML.

mjml-python turns `email.mjml.j2` into the table-based, inline-styled HTML that mail
clients lay out alike. That costs milliseconds, so it happens once per process: the
MJML (with no values in it) is compiled to HTML that still holds the per-email Jinja
tags. That HTML and `email.txt.j2` are then rendered once per shape (how many items,
which values are empty) with slots that each email fills with its own values, escaped
as autoescaping would; an overridden page template is rendered per email. Item fields
are untrusted: they are cleaned of control and bidi characters here, escaped by the
templates, and only http(s) URLs ever become links.
Gmail clips a message whose HTML passes about 102 KB, hiding the footer with its
unsubscribe link, so the HTML is kept under `EmailSettings.max_html_bytes` by dropping
items from the end and pointing the reader at their feed for the rest.
"""

from __future__ import annotations

import binascii
import hashlib
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from functools import cached_property, lru_cache, wraps
from itertools import chain
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup, escape
from mjml import mjml2html

from digest.errors import ConfigError
from digest.records import Explanation, Pick, ReaderDigest, Recipient, StoredItem
from digest.render.links import Links, is_web_url
from digest.render.templates import Slotted, environment, is_bundled, slot
from digest.text import display_text

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
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
#: An address and a display name that the email package writes as they are: a dot-atom
#: address of common characters, and words of letters and digits.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")

HTML_TEMPLATE = "email.mjml.j2"
ITEM_TEMPLATE = "email_item.html.j2"
TEXT_TEMPLATE = "email.txt.j2"
TEXT_ITEM_TEMPLATE = "email_item.txt.j2"
#: The MJML template's compile-time syntax; `{% %}`, `{{ }}` and `{# #}` are left for
#: each email, and must come through mjml2html unchanged.
_COMPILE_SYNTAX = {
    "block_start_string": "[%",
    "block_end_string": "%]",
    "variable_start_string": "[[",
    "variable_end_string": "]]",
    "comment_start_string": "[#",
    "comment_end_string": "#]",
}
_JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)


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


@dataclass(frozen=True, eq=False)
class RenderedEmail:
    """One rendered email: both bodies, its headers, and how many items made it in.

    The bodies may be given as functions that make them (`text` and `html` call them
    once, when first read): a run's emails go out as `as_bytes`, made from the encoded
    bodies, and joining every email's bodies as strings too was a twentieth of its cost.
    """

    subject: str
    _text: str | Callable[[], str] = field(repr=False)
    _html: str | Callable[[], str] = field(repr=False)
    #: Items shown in the email.
    shown: int
    #: Items cut to keep the HTML under `max_html_bytes` ("N more in your feed").
    hidden: int
    message_id: str
    #: Every header in order: From, To (when the recipient has an address), Subject,
    #: Date, Message-ID, List-Id, List-Unsubscribe and List-Unsubscribe-Post when known.
    headers: tuple[tuple[str, str], ...]
    #: `text` and `html` quoted-printable encoded, when the renderer made them from
    #: encoded pieces (see `_Fragment`); `as_bytes` encodes a body given as None.
    text_qp: bytes | None = field(default=None, repr=False, compare=False)
    html_qp: bytes | None = field(default=None, repr=False, compare=False)

    @cached_property
    def text(self) -> str:
        """The plain-text body."""
        return self._text if isinstance(self._text, str) else self._text()

    @cached_property
    def html(self) -> str:
        """The HTML body."""
        return self._html if isinstance(self._html, str) else self._html()

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
        """The message as it goes on the wire: CRLF line ends, headers never folded.

        The message `message().as_bytes(policy=WIRE_POLICY)` gives, headers and bodies
        reading back the same, but written directly: the email package takes several
        milliseconds to build and serialise one, mostly re-parsing headers and encoding
        bodies in Python. Here ASCII headers go out as they are and the bodies through
        binascii's quoted-printable encoder (or come encoded already).
        """
        if not any(name == "To" for name, _ in self.headers):
            raise ValueError("the recipient has no email address: skip them or give one")
        # A quoted-printable body never has "==" in it, so it cannot hold the boundary.
        boundary = f"==============={random.randrange(sys.maxsize):019d}=="
        parts = [_header(name, value) for name, value in self.headers]
        parts += [
            b"MIME-Version: 1.0\r\n",
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode(),
        ]
        text, html = self.text_qp, self.html_qp
        bodies = (
            ("plain", _quoted_printable(self.text) if text is None else text),
            ("html", _quoted_printable(self.html, reuse=True) if html is None else html),
        )
        for subtype, body in bodies:
            parts += [
                f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'.encode(),
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
                body,
                b"\r\n",  # the delimiter's own line break: the body keeps its last one
            ]
        parts.append(f"--{boundary}--\r\n".encode())
        return b"".join(parts)


def _header(name: str, value: str) -> bytes:
    """One header line; only values that are not plain ASCII go through the email package."""
    if value.isascii() and value.isprintable() and "=?" not in value:
        return f"{name}: {value}\r\n".encode("ascii")
    return WIRE_POLICY.fold_binary(name, WIRE_POLICY.header_store_parse(name, value)[1])


def _quoted_printable(text: str, *, reuse: bool = False) -> bytes:
    """A body as quoted-printable UTF-8 with CRLF line ends, ending in a line end.

    With `reuse`, the same bytes (a test checks) made faster for the HTML body, where
    encoding was the largest single cost of an email: quoted-printable carries nothing
    across a line end, so the body can be encoded in pieces. Each long line (an
    abstract, an author list and the layout around them: the same in every email the
    paper is in) is encoded once per process and reused, and the short lines between
    two long ones are encoded together.
    """
    if not reuse:
        return _qp_lines(text.replace("\r\n", "\n").replace("\r", "\n").removesuffix("\n"))
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(lines) > 1 and not lines[-1]:
        lines.pop()  # the body's own last line end
    out: list[bytes] = []
    start = 0
    for n, line in enumerate(lines):
        if len(line) >= _QP_CACHED_LINE:
            if n > start:
                out.append(_qp_lines("\n".join(lines[start:n])))
            out.append(_qp_line(line))
            start = n + 1
    if start < len(lines) or not out:
        out.append(_qp_lines("\n".join(lines[start:])))
    return b"".join(out)


#: Lines at least this long are encoded once and reused; shorter ones cost more to
#: look up than to encode with their neighbours.
_QP_CACHED_LINE = 120


def _qp_lines(lines: str) -> bytes:
    """Lines (LF between them) as quoted-printable, with CRLF line ends, ending in one."""
    data = f"{lines}\n".replace("\n", "\r\n").encode()
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)
    if b"=20\r\n" in encoded or b"=09\r\n" in encoded:
        # binascii writes a blank that ends a line as =20 or =09 past the 76th column
        # when the line is full: RFC 2045 allows 76 characters; move it to a line of its own.
        encoded = _OVERLONG_BLANK_END.sub(rb"\1=\r\n\2", encoded)
    return encoded


_OVERLONG_BLANK_END = re.compile(rb"(?m)^([^\r\n]{74,})(=(?:20|09)\r)$")


# Long lines that recur (most of an email) are encoded once. A line seen once costs a
# slot until pushed out; the size holds a day's papers' lines with room to spare.
_qp_line = lru_cache(maxsize=32768)(_qp_lines)

#: Characters before a soft break's "=": RFC 2045 allows 76 in an encoded line.
_QP_WIDTH = 75
_SOFT_BREAK = "=\r\n"
#: What ends a text encoded with `_qp_lines(text + "\x02")`: the U+0002 sentinel that
#: keeps the text's last character off the end of the data, and the line end.
_QP_SENTINEL = b"=02\r\n"
#: Between two values encoded together: each value's sentinel, then a line that is one
#: U+0001 (no item text or link holds either: `display_text` drops them, links are
#: checked); cut apart at their encoding.
_VALUE_BREAK = "\x02\n\x01\n"
_QUOTED_VALUE_BREAK = b"=02\r\n=01\r\n"
#: What text encoded in pieces may not hold: see `_Fragment.quoted`.
_UNPIECED = re.compile("[\r\x01\x02]")


def _qp_segment(text: str) -> bytes:
    """`text` as quoted-printable that begins a line and ends in a line end: its own
    when the text ends in one, else a soft break (`=` CRLF).

    Quoted-printable carries nothing across a line end, and a soft break vanishes when
    decoded, so a body can be encoded in such pieces: the text around a page's or an
    item's slots once, and each email only its values. (The encoded lines differ from
    the whole body's encoding; they decode to the same body.)
    """
    if not text:
        return b""
    if text[-1] == "\n":
        return _qp_lines(text[:-1])
    return _soft_end(_qp_lines(text + "\x02")[: -len(_QP_SENTINEL)])


# An item's text around its slots is mostly its paper's (the abstract above all), and
# the same in each shape the paper is shown in (first or not, which reason parts):
# encoded once per paper, not once per shape.
_fixed_segment = lru_cache(maxsize=8192)(_qp_segment)


def _soft_end(encoded: bytes) -> bytes:
    """Encoded text made to end in a line end: a soft break unless it ends in one."""
    return encoded if not encoded or encoded[-2:] == b"\r\n" else encoded + b"=\r\n"


def _plain_segment(value: str) -> bytes:
    """`_qp_segment` of printable ASCII without "=": the value, cut by soft breaks."""
    if len(value) <= _QP_WIDTH:
        return f"{value}{_SOFT_BREAK}".encode() if value else b""
    lines = [value[n : n + _QP_WIDTH] for n in range(0, len(value), _QP_WIDTH)]
    return f"{_SOFT_BREAK.join(lines)}{_SOFT_BREAK}".encode()


@dataclass(slots=True)  # not frozen: made for every pick of every email, and never kept
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
    links, templates = settings.links, settings.templates
    items = [_item_view(p, digest, links) for p in digest.picks]
    unsubscribe = _web(links.unsubscribe(digest.audience, digest.day))
    mailto = _mailto(links.unsubscribe_mailto(digest.audience))
    subject = email_subject(digest, settings.site_name)
    values = _page_values(digest, recipient, settings, subject, feed_url, unsubscribe or mailto)

    html_page, text_page = html_template(templates), text_template(templates)
    html_shared, text_shared = (
        _bundled(templates, HTML_TEMPLATE),
        _bundled(templates, TEXT_TEMPLATE),
    )
    filled = [_FilledItem(view, n == 0, templates) for n, view in enumerate(items)]
    shells: dict[int, tuple[_Shell, dict[str, str]]] = {}

    def size_for(n: int) -> int:
        """The HTML's size in bytes with the first `n` items: its page's and theirs."""
        mine = {**values, "preheader": _preheader(items[:n])}
        with _template_errors(HTML_TEMPLATE):
            shell = _page_shell(html_page, html_shared, mine, items[:n], len(items) - n)
        escaped = {name: _html(value) for name, value in mine.items()}
        shells[n] = shell, escaped
        return shell.size(escaped) + sum(item.html_size for item in filled[:n])

    shown = _fit(len(items), size_for, settings.max_html_bytes)
    hidden = len(items) - shown
    html_shell, html_values = shells[shown]
    text_values = {**values, "preheader": _preheader(items[:shown])}
    with _template_errors(TEXT_TEMPLATE):
        text_shell = _page_shell(text_page, text_shared, text_values, items[:shown], hidden)
    text_values = text_shell.derive(text_values)

    def html() -> str:
        return html_shell.fill(html_values, [item.html for item in filled[:shown]])

    def text() -> str:
        return text_shell.fill(text_values, [item.text for item in filled[:shown]])

    html_qp, text_qp = _quoted_bodies(
        (html_shell, html_values, [item.html_fill for item in filled[:shown]]),
        (text_shell, text_values, [item.text_fill for item in filled[:shown]]),
    )
    message_id = make_message_id(digest, settings.list_id)
    headers = _headers(recipient, settings, subject, now, message_id, unsubscribe, mailto)
    return RenderedEmail(
        subject, text, html, shown, hidden, message_id, headers, text_qp=text_qp, html_qp=html_qp
    )


def _item_slots(count: int) -> list[Markup]:
    """Where the page places each item's HTML or text, filled in after the page renders.

    The items are rendered already (`_FilledItem`); the page only places them. As slots,
    the page is a short render, and the items keep their quoted-printable form.
    """
    return [Markup(slot(f"i{n}")) for n in range(count)]


#: The page's own values that differ from email to email (or run to run): slots in a
#: page rendered once per shape (`_page_shell`). The rest of the page context (item
#: counts) is part of the shape.
_PAGE_VALUES = frozenset(
    ("subject", "site_name", "heading", "audience", "reason", "feed_url",
     "unsubscribe_url", "preheader")
)  # fmt: skip
_SORTED_VALUES = sorted(_PAGE_VALUES)


def _page_shell(
    template: jinja2.Template, shared: bool, values: dict[str, str], items: list[ItemView],
    hidden: int,
) -> _Shell:  # fmt: skip
    """The page of an email body with `items` shown and `hidden` left out, items as slots.

    Every reader's page is the same but for a few values (the subject, the reason, two
    links) and how many items it has, so a bundled page (`shared`) is rendered once per
    shape with a slot for each value (`_shared_shell`) and filled per email: rendering
    the page and encoding its four hundred lines per email were a fifth of an email's
    cost. An overridden page is rendered per email: a template may use a value in ways
    a slot cannot stand for (compare it, test what it holds, encode it).
    """
    if shared:
        shape = (len(items), hidden, *(bool(values[name]) for name in _SORTED_VALUES))
        found = _shared_shell(template, shape)
        if found is not None:
            return found
    page = template.render(
        values, total=len(items) + hidden, items=items, item_html=_item_slots(len(items)),
        item_text=_item_slots(len(items)), hidden=hidden,
    )  # fmt: skip
    return _Shell.of(page, frozenset())


def _bundled(templates: str | None, name: str) -> bool:
    """Whether template `name` is the bundled one, not one from the `templates` folder."""
    with _template_errors(name):
        return is_bundled(templates, name)


@lru_cache(maxsize=256)
def _shared_shell(template: jinja2.Template, shape: tuple) -> _Shell | None:
    """The page for one shape (`_page_shell`) with slots for its values; None if it cannot be.

    Only bundled pages come here, and they only show their values; the checks below
    (the items left alone, no slot measured, cut or renamed) guard an edit of them.
    """
    count, hidden, *present = shape
    pages = []
    for pad in ("", _PAD):
        pairs = zip(_SORTED_VALUES, present, strict=True)
        slots = {name: slot(name + pad) if there else "" for name, there in pairs}
        probes = _Probes(count)
        try:
            page = template.render(
                slots, total=count + hidden, items=probes, item_html=_item_slots(count),
                item_text=_item_slots(count), hidden=hidden,
            )  # fmt: skip
        except Exception:  # the render per email reports a real error
            return None
        pages.append(page)
        if probes.looked:
            return None  # the template reads the items themselves: each renders its own
    # With every value 200 characters longer, the page must differ only in its slots'
    # names: a template that measures a value (`audience|length > 40`) changed it.
    if pages[1].replace(_PAD, "") != pages[0]:
        return None
    try:
        return _Shell.of(pages[0], _PAGE_VALUES)
    except ValueError:
        return None  # a value cut or changed by a filter: render per email


#: Lengthens the slots of a page's second render (`_shared_shell`).
_PAD = "_" * 200


class _Probes(list):
    """Stand-ins for a page's items while it is rendered once for many readers.

    The bundled pages only count the items (the items themselves come as slots); a
    page that reads one (`items[0].title`) must be rendered per email, which reading
    any attribute, or showing one, records.
    """

    def __init__(self, count: int) -> None:
        super().__init__(_Probe(self) for _ in range(count))
        self.looked = False


class _Probe:
    __slots__ = ("_owner",)

    def __init__(self, owner: _Probes) -> None:
        self._owner = owner

    def _look(self) -> str:
        self._owner.looked = True
        return ""

    def __getattr__(self, name: str) -> str:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._look()

    def __str__(self) -> str:
        return self._look()

    def __html__(self) -> str:
        return self._look()


@dataclass(frozen=True, slots=True)
class _Shell:
    """A rendered page holding slots for its values and its items (`i0`, `i1`, ...).

    Also kept as the pieces its quoted-printable form is made of (`_quoted_page`): the
    text between its slots encoded once, here; each email encodes only its values
    (`_quoted_values`) and puts in each item's own encoding.
    """

    slotted: Slotted
    #: The text around the slots, encoded (see `_quoted_page`); None when the page
    #: cannot be encoded in pieces (then the body is encoded whole).
    quoted: tuple[bytes, ...] | None
    #: Each slot as it is filled in the encoded page: an item's number, or a value's name.
    quoted_slots: tuple[int | str, ...]
    #: Slots a filter made of a value, e.g. `reason|wrap(72,)` (see `_slot_filter`).
    derived: tuple[str, ...]
    #: The UTF-8 size of the text around the slots.
    fixed_size: int

    @classmethod
    def of(cls, page: str, values: frozenset[str]) -> _Shell:
        """The shell of `page`; ValueError when a slot is neither an item nor in `values`."""
        slotted = Slotted.of(page)
        derived = []
        for name in slotted.parts[1::2]:
            if name in values or _ITEM_SLOT.fullmatch(name):
                continue
            if _DERIVED.get(name, ("",))[0] in values:
                derived.append(name)
                continue
            raise ValueError(f"unknown slot {name!r}")
        size = sum(map(_utf8_size, slotted.parts[::2]))
        slots = tuple(
            int(name[1:]) if _ITEM_SLOT.fullmatch(name) else name for name in slotted.parts[1::2]
        )
        return cls(slotted, _quoted_page(slotted.parts), slots, tuple(derived), size)

    def derive(self, values: dict[str, str]) -> dict[str, str]:
        """`values` with the derived slots' values added (a filter applied to a value)."""
        for name in self.derived:
            values[name] = _derived_value(name, values)
        return values

    def size(self, values: dict[str, str]) -> int:
        """The page's UTF-8 size with `values` filled in, not counting its items."""
        return self.fixed_size + sum(
            _utf8_size(values[name]) for name in self.slotted.parts[1::2] if name in values
        )

    def fill(self, values: dict[str, str], items: list[str]) -> str:
        """The page with `values` and the items' text in their slots."""
        return self.slotted.fill({**values, **{f"i{k}": item for k, item in enumerate(items)}})

    def value_names(self) -> Iterator[str]:
        """The names of the slots that hold a value (not an item), in order."""
        return (name for name in self.quoted_slots if name.__class__ is str)  # type: ignore[misc]

    def encode(
        self, values: dict[str, str], items: list[bytes | None], encoded: dict[str, bytes]
    ) -> bytes | None:
        """The page filled in, as quoted-printable: its encoded text, the values' encodings
        (`encoded`: value -> bytes) and the items' own. None when it cannot be."""
        if self.quoted is None or None in items:
            return None
        parts: list[bytes] = [b""] * (2 * len(self.quoted) - 1)
        parts[::2] = self.quoted
        parts[1::2] = [
            encoded[values[slot]] if slot.__class__ is str else items[slot]  # type: ignore[misc]
            for slot in self.quoted_slots
        ]
        return b"".join(parts)


_ITEM_SLOT = re.compile(r"i[0-9]+")


def _quoted_page(parts: tuple[str, ...]) -> tuple[bytes, ...] | None:
    """The text around a page's slots (`Slotted.parts`) as quoted-printable pieces.

    Each piece is a `_qp_segment`: the page's last one ends in a line end, as a whole
    body's encoding does, and an item's own encoding supplies the line end after it.
    None when the page cannot be encoded in pieces: an item shares a line with the
    page's text, the page ends in a slot, or it holds a carriage return (the whole
    body's encoder reads it as a line end) or a `_VALUE_BREAK` character.
    """
    if any(_UNPIECED.search(text) for text in parts[::2]):
        return None
    if len(parts) > 1 and not parts[-1]:
        # A page that ends in a slot, with no line end of its own: the whole body's
        # encoder would drop the last line end of what fills it.
        return None
    texts = list(parts[::2])
    if not texts[-1].endswith("\n"):
        texts[-1] += "\n"
    for n, name in enumerate(parts[1::2]):
        if not _ITEM_SLOT.fullmatch(name):
            continue
        starts_line = (n == 0 and not parts[0]) or parts[2 * n].endswith("\n")
        if not (starts_line and texts[n + 1].startswith("\n")):
            return None  # the item shares a line with the page's text
        texts[n + 1] = texts[n + 1][1:]
    return tuple(map(_qp_segment, texts))


@lru_cache(maxsize=8)
def html_template(templates: str | None = None) -> jinja2.Template:
    """The HTML body's template, compiled once per process and templates folder.

    Autoescaped, and an undefined name is an error: see `compile_html`.
    """
    html = compile_html(templates)
    try:
        return environment(templates).overlay(autoescape=True).from_string(html)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"template {HTML_TEMPLATE!r} after MJML: {exc.message}") from None


def compile_html(templates: str | None = None) -> str:
    """`email.mjml.j2` through MJML: HTML that still holds the per-email Jinja tags.

    Only our own template text goes through MJML: its `[% %]` stage has no values, so
    no item text can change the layout. The per-email `{{ }}`, `{% %}` and `{# #}` tags
    must come out of mjml2html as they went in (it copies the content of mj-text and
    mj-raw verbatim, and drops stray text elsewhere): a template where one does not is
    a ConfigError, rather than an email with a silently missing part.
    """
    with _template_errors(HTML_TEMPLATE):
        env = environment(templates).overlay(**_COMPILE_SYNTAX)
        mjml = env.get_template(HTML_TEMPLATE).render()
    try:
        html = mjml2html(mjml, disable_comments=True, fonts={}) + "\n"
    except ValueError as exc:
        raise ConfigError(f"template {HTML_TEMPLATE!r}: MJML error: {exc}") from None
    lost = Counter(_JINJA_TAG.findall(mjml)) - Counter(_JINJA_TAG.findall(html))
    if lost:
        raise ConfigError(
            f"template {HTML_TEMPLATE!r}: MJML dropped {next(iter(lost))!r}; per-email "
            "tags belong inside mj-text or mj-raw"
        )
    return html


@lru_cache(maxsize=8)
def item_template(templates: str | None = None) -> jinja2.Template:
    """`email_item.html.j2`, one item of the HTML body (autoescaped, by its name)."""
    with _template_errors(ITEM_TEMPLATE):
        return environment(templates).get_template(ITEM_TEMPLATE)


@lru_cache(maxsize=8)
def text_item_template(templates: str | None = None) -> jinja2.Template:
    """`email_item.txt.j2`, one item of the text part (not escaped: plain text)."""
    with _template_errors(TEXT_ITEM_TEMPLATE):
        return _text_environment(templates).get_template(TEXT_ITEM_TEMPLATE)


#: The slots of a reason's parts: ("label0", "value0"), ("label1", "value1"), ...
_WHY_SLOTS = tuple((f"label{n}", f"value{n}") for n in range(16))


class _FilledItem:
    """One pick's HTML and text: its paper's fragments with this reader's values filled in.

    The quoted-printable forms are made for the items the email shows (`_quoted_bodies`).
    """

    __slots__ = ("_fragments", "_html_values", "_text_values", "html_size")

    def __init__(self, view: ItemView, first: bool, templates: str | None) -> None:
        self._fragments = _item_fragments(
            templates, view.title, view.authors, view.abstract, view.extra_links, first,
            view.url is not None, view.more_url is not None, view.less_url is not None,
            bool(view.members), tuple([label != "" for label, _ in view.why]),
        )  # fmt: skip
        html = {
            "rank": str(view.rank),
            "url": _html(view.url),
            "more": _html(view.more_url),
            "less": _html(view.less_url),
            "members": _html(view.members),
            "why": _html(view.why_text),
        }
        # `_why_parts` makes at most three parts.
        for (label, value), (label_slot, value_slot) in zip(view.why, _WHY_SLOTS, strict=False):
            html[label_slot], html[value_slot] = _html(label), _html(value)
        text = {
            "rank": html["rank"],
            "url": view.url or "",
            "more": view.more_url or "",
            "less": view.less_url or "",
            "members": view.members,
            "why": view.why_text,
        }
        with _template_errors(TEXT_ITEM_TEMPLATE):
            self._html_values, self._text_values = html, self._fragments[1].derive(text)
        #: The HTML's size in UTF-8, from its paper's part measured once and the values.
        self.html_size = self._fragments[0].size(html)

    @property
    def html(self) -> Markup:
        """The item's HTML (made only for an email whose bodies are read as strings)."""
        return Markup(self._fragments[0].fill(self._html_values))

    @property
    def text(self) -> str:
        """The item's text."""
        return self._fragments[1].fill(self._text_values)

    @property
    def html_fill(self) -> tuple[_Fragment, dict[str, str]]:
        return self._fragments[0], self._html_values

    @property
    def text_fill(self) -> tuple[_Fragment, dict[str, str]]:
        return self._fragments[1], self._text_values


# An item's HTML and text are mostly its paper's (title, authors, abstract, code and
# project links) and the same in every email it is in: `email_item.html.j2` and
# `email_item.txt.j2` are rendered once per paper and shape (which parts the item has,
# and whether it comes first), with slots for what is the reader's, and each email
# fills them in.
@lru_cache(maxsize=32768)
def _item_fragments(
    templates: str | None, title: str, authors: str, abstract: str,
    extra_links: tuple[tuple[str, str], ...], first: bool, url: bool, more: bool,
    less: bool, members: bool, why_shape: tuple[bool, ...],
) -> tuple[_Fragment, _Fragment]:  # fmt: skip
    view = ItemView(
        rank=slot("rank"),  # type: ignore[arg-type]  # a slot, filled in per email
        title=title,
        url=slot("url") if url else None,
        authors=authors,
        abstract=abstract,
        extra_links=extra_links,
        why=tuple(
            (slot(f"label{n}") if labelled else "", slot(f"value{n}"))
            for n, labelled in enumerate(why_shape)
        ),
        why_text=slot("why"),
        members=slot("members") if members else "",
        more_url=slot("more") if more else None,
        less_url=slot("less") if less else None,
    )
    with _template_errors(ITEM_TEMPLATE):
        html = item_template(templates).render(item=view, first=first)
    with _template_errors(TEXT_ITEM_TEMPLATE):
        text = text_item_template(templates).render(item=view, first=first)
    # The page puts a line end after each item; the text's blank line after it stays.
    return _Fragment.of(html.rstrip("\n")), _Fragment.of(text.removesuffix("\n"))


@dataclass(frozen=True, slots=True)
class _Fragment:
    """An item's HTML or text for one paper and shape, with slots for the reader's values.

    Also kept as the pieces its quoted-printable form is made of: the text between its
    slots (the title, authors, abstract and layout: most of an item) encoded once,
    here, and each email's values encoded per email (`_quoted_values`).
    """

    slotted: Slotted
    #: The text around the slots as `_qp_segment`s, the last one ending in the item's
    #: line end; None when the text holds a carriage return (the whole body's encoder
    #: reads it as a line end) or a `_VALUE_BREAK` character.
    quoted: tuple[bytes, ...] | None
    #: Slots a filter made of another slot, e.g. `why|wrap(67,)` (see `_slot_filter`).
    derived: tuple[str, ...]
    #: The UTF-8 size of the text around the slots.
    fixed_size: int

    @classmethod
    def of(cls, text: str) -> _Fragment:
        slotted = Slotted.of(text)
        derived = tuple(name for name in slotted.parts[1::2] if name in _DERIVED)
        size = sum(map(_utf8_size, slotted.parts[::2]))
        quoted = None
        if not any(_UNPIECED.search(part) for part in slotted.parts[::2]):
            texts = list(slotted.parts[::2])
            texts[-1] += "\n"
            quoted = tuple(map(_fixed_segment, texts))
        return cls(slotted, quoted, derived, size)

    def derive(self, values: dict[str, str]) -> dict[str, str]:
        """`values` with the derived slots' values added (a filter applied to a value)."""
        for name in self.derived:
            values[name] = _derived_value(name, values)
        return values

    def fill(self, values: dict[str, str]) -> str:
        """The fragment with `values` in its slots."""
        return _filled(self.slotted, values)

    def encode(self, values: dict[str, str], encoded: dict[str, bytes]) -> bytes:
        """The fragment filled in as quoted-printable, from `encoded` (value -> bytes)."""
        assert self.quoted is not None
        parts: list[bytes] = [b""] * (2 * len(self.quoted) - 1)
        parts[::2] = self.quoted
        parts[1::2] = [encoded[value] for value in self.slotted.values(values)]
        return b"".join(parts)

    def size(self, values: dict[str, str]) -> int:
        """The UTF-8 size of the fragment filled with `values`."""
        return self.fixed_size + _utf8_size("".join(self.slotted.values(values)))


def _filled(slotted: Slotted, values: dict[str, str]) -> str:
    with _slot_errors():
        return slotted.fill(values)


@contextmanager
def _slot_errors() -> Iterator[None]:
    """A slot without a value: it went through a filter other than `wrap` or `indent`,
    say `upper` (a ConfigError, not a KeyError)."""
    try:
        yield
    except KeyError as exc:
        raise ConfigError(
            f"an email item template changes a per-reader value ({exc.args[0]!r}): "
            "show it with a plain {{ }}"
        ) from None


_Body = tuple[_Shell, dict[str, str], list[tuple[_Fragment, dict[str, str]]]]


def _quoted_bodies(*bodies: _Body) -> list[bytes | None]:
    """Each body (its page, the page's values, its items) as quoted-printable.

    Every value of every body is encoded in one go (`_quoted_values`), then each body
    is put together from the pieces encoded once per page and per item. None for a body
    that cannot be made in pieces; every one is None when a value cannot (it held a
    carriage return): the bodies are then encoded whole (`RenderedEmail.as_bytes`).
    """
    groups: list[Iterable[str]] = []
    with _slot_errors():
        for shell, values, fills in bodies:
            groups.append([values[name] for name in shell.value_names()])
            groups += [fragment.slotted.values(v) for fragment, v in fills if fragment.quoted]
    encoded = _quoted_values(groups)
    if encoded is None:
        return [None] * len(bodies)
    out = []
    for shell, values, fills in bodies:
        items = [fragment.encode(v, encoded) if fragment.quoted else None for fragment, v in fills]
        out.append(shell.encode(values, items, encoded))
    return out


def _quoted_values(groups: Iterable[Iterable[str]]) -> dict[str, bytes] | None:
    """Every distinct value as a `_qp_segment`; None if one holds a carriage return.

    A value of printable ASCII but "=" (a signed link, a rank, most labels) is its own
    encoding with soft breaks added; the rest are encoded together in one call, one
    per value costing more than the encoding, and cut apart at `_VALUE_BREAK`s.
    """
    out: dict[str, bytes] = {}
    rest: list[str] = []
    for value in dict.fromkeys(chain.from_iterable(groups)):
        if value.isascii() and "=" not in value and value.isprintable():
            out[value] = _plain_segment(value)  # printable ASCII but "=": a link, a rank
        elif "\r" in value:
            return None
        else:
            rest.append(value)
    if rest:
        encoded = _qp_lines(_VALUE_BREAK.join(rest) + "\x02")[: -len(_QP_SENTINEL)]
        pieces = encoded.split(_QUOTED_VALUE_BREAK)
        if len(pieces) != len(rest):
            return None  # a value held a break of its own (no item text or link can)
        out.update(zip(rest, map(_soft_end, pieces), strict=True))
    return out


#: Derived slot name -> (the slot it is made from, the filter, its arguments).
_DERIVED: dict[str, tuple[str, Callable[..., str], tuple, tuple]] = {}


def _slot_filter(function: Callable[..., str]) -> Callable[..., str]:
    """`function` as a text filter that also takes a slot, and then gives a slot.

    An item's text is rendered once with slots for the reader's values, but the text
    template wraps one of them (`item.why_text | wrap(67) | indent(8)`). Given a slot,
    the filter returns a new slot that stands for its result; each email fills it with
    the filter applied to its own value (`_derived_value`), as a render per email would.
    """

    @wraps(function)
    def apply(value: object, *args: object, **kwargs: object) -> str:
        if isinstance(value, str) and len(value) > 2 and value[0] == value[-1] == "\x00":
            base, options = value[1:-1], tuple(sorted(kwargs.items()))
            name = f"{base}|{function.__name__}{args!r}{options!r}"
            _DERIVED.setdefault(name, (base, function, args, options))
            return slot(name)
        return function(value, *args, **kwargs)

    return apply


def _derived_value(name: str, values: dict[str, str]) -> str:
    base, function, args, options = _DERIVED[name]
    value = values[base] if base in values else _derived_value(base, values)
    return function(value, *args, **dict(options))


def _html(text: str | None) -> str:
    """A reader's value as it goes into an item's HTML (escaped, as autoescaping would)."""
    if not text:
        return ""
    if "&" in text or "<" in text or ">" in text or '"' in text or "'" in text:
        return str(escape(text))
    return text  # the common case, a signed link: nothing to escape


@lru_cache(maxsize=8)
def text_template(templates: str | None = None) -> jinja2.Template:
    """`email.txt.j2`, loaded once per process and templates folder, with `wrap` as a filter."""
    with _template_errors(TEXT_TEMPLATE):
        return _text_environment(templates).get_template(TEXT_TEMPLATE)


@lru_cache(maxsize=8)
def _text_environment(templates: str | None) -> jinja2.Environment:
    env = environment(templates).overlay()
    # An overlay shares its parent's dict. `indent` is Jinja's, with a fast path (`_indent`).
    env.filters = {**env.filters, "wrap": _slot_filter(wrap), "indent": _slot_filter(_indent)}
    return env


@contextmanager
def _template_errors(name: str) -> Iterator[None]:
    """Jinja's errors as ConfigErrors naming the template, as `templates.render` words them."""
    try:
        yield
    except jinja2.TemplateNotFound as exc:
        raise ConfigError(f"template {exc.name!r} not found") from None
    except jinja2.TemplateSyntaxError as exc:
        where = f"{exc.filename or name}:{exc.lineno}"
        raise ConfigError(f"{where}: template error: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"template {name!r}: {exc.message}") from None


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


#: Text safe to display on one line: the renderers' one cleaning rule (`display_text`).
#: Control characters could confuse a mail client or a terminal, bidi overrides
#: reorder what the reader sees, and a lone surrogate cannot be encoded as UTF-8.
clean = display_text


# Cached: the text part wraps the same titles and abstracts in every reader's email.
@lru_cache(maxsize=16384)
def wrap(text: str, width: int) -> str:
    """`text` in lines of at most `width` characters, broken only at spaces.

    A word longer than `width` gets a line of its own, and runs of whitespace count as
    one space. On cleaned text this is Jinja's `wordwrap(width, break_long_words=False,
    break_on_hyphens=False)`, many times faster: that one goes through textwrap.
    """
    text = " ".join(text.split())
    width = max(width, 1)
    lines = []
    start, end = 0, len(text)
    while end - start > width:
        # The last space that ends a line of at most `width`; else the whole next word.
        cut = text.rfind(" ", start + 1, start + width + 1)
        if cut < 0:
            cut = text.find(" ", start + width)
            if cut < 0:
                break
        lines.append(text[start:cut])
        start = cut + 1
    lines.append(text[start:])
    return "\n".join(lines)


def _indent(text: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    """Jinja's `indent`, without its per-line work for the common text: no blank line.

    The text part indents each item's wrapped reason, a text no other email holds, so
    the result cannot be cached. Lines that are all non-empty and broken only at
    "\n" are indented by one replace; anything else goes to Jinja (a test checks both
    agree).
    """
    if (
        type(text) is str and text and text[0] != "\n" and text[-1] != "\n"
        and "\n\n" not in text and _OTHER_LINE_BREAKS.search(text) is None
    ):  # fmt: skip
        indention = width if isinstance(width, str) else " " * width
        indented = text.replace("\n", "\n" + indention)
        return indention + indented if first else indented
    return jinja2.filters.do_indent(text, width, first, blank)


#: What str.splitlines breaks at besides "\n".
_OTHER_LINE_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def trim(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary when one is near, with '…'."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + "…"


def _page_values(
    digest: ReaderDigest,
    recipient: Recipient,
    settings: EmailSettings,
    subject: str,
    feed_url: str | None,
    unsubscribe_url: str | None,
) -> dict[str, str]:
    """What both templates show besides the items and their counts ("" for nothing);
    the preheader, which depends on the items shown, is added per page."""
    return {
        "subject": subject,
        "site_name": clean(settings.site_name),
        "heading": _day(digest.day, short=False),
        "audience": _audience_line(digest, recipient),
        "reason": _reason(recipient, settings.site_name),
        "feed_url": _web(feed_url) or "",
        "unsubscribe_url": unsubscribe_url or "",
    }


def _item_view(pick: Pick, digest: ReaderDigest, links: Links) -> ItemView:
    item = pick.item
    title, authors, abstract, extra_links = _paper_view(item)
    why, why_text = _why(pick.why)
    url, more, less = links.pick(digest.audience, item, digest.day)  # http(s) or None
    return ItemView(
        rank=pick.rank,
        title=title,
        url=url,
        authors=authors,
        abstract=abstract,
        extra_links=extra_links,
        why=why,
        why_text=why_text,
        members=", ".join(clean(m) for m in pick.members) if pick.members else "",
        more_url=more,
        less_url=less,
    )


# The same papers go to many readers: what an email shows of a paper whoever gets it
# (title, authors, abstract, links) is cleaned and trimmed once, not once per email.
# Two weeks of a thousand new papers a day fit; an edited item is a different key.
@lru_cache(maxsize=16384)
def _paper_view(item: StoredItem) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
    return (
        _excerpt(item.title, TITLE_CHARS) or "(untitled)",
        _authors(item.authors),
        _excerpt(item.abstract, ABSTRACT_CHARS),
        _extra_links(item.code_url, item.project_urls, item.url),
    )


def _why(why: Explanation) -> tuple[tuple[tuple[str, str], ...], str]:
    """The reason as (label, value) parts and as one line.

    Not cached: a reason names the reader's own closest past paper and the terms shared
    with the reader's history, so hardly two picks share one (a cache only cost time).
    """
    return _why_parts(why), why.shown()


def _excerpt(text: str | None, limit: int) -> str:
    """`trim(clean(text), limit)`, cleaning no more of a long text than can be shown."""
    if text and len(text) > 2 * limit:
        # Cleaning only drops characters and collapses spaces, so a cleaned prefix that is
        # still longer than `limit` trims to what the whole text would.
        head = clean(text[: 2 * limit])
        if len(head) > limit:
            return trim(head, limit)
    return trim(clean(text), limit)


def _authors(authors: tuple[str, ...]) -> str:
    names = [_excerpt(a, AUTHOR_CHARS) for a in authors]
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
    for label, url in [("Code", _web(code_url)), *((None, url) for url in pages)]:
        if url and url not in seen:
            found.append((label or _host(url), url))
            seen.add(url)
    return tuple(found)


# A reason names one of the reader's interests and one paper the reader read before: a
# few hundred interests and a reader's own history recur in most of their reasons.
_reason_excerpt = lru_cache(maxsize=8192)(_excerpt)


def _why_parts(why: Explanation) -> tuple[tuple[str, str], ...]:
    parts = []
    whose, who = (f"{clean(why.reader)}'s", clean(why.reader)) if why.reader else ("your", "you")
    if why.interest:
        parts.append((f"Matches {whose} interest", _reason_excerpt(why.interest, 80)))
    if why.because_title:
        parts.append((f"Because {who} read", _reason_excerpt(why.because_title, 90)))
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
        ("Date", _date_header(now)),
        ("Message-ID", message_id),
        ("List-Id", f"<{settings.list_id}>"),
    ]
    targets = [f"<{u}>" for u in (unsubscribe, mailto) if u]
    if targets:
        headers.append(("List-Unsubscribe", ", ".join(targets)))
    if unsubscribe and unsubscribe.lower().startswith("https://"):
        # RFC 8058: the https URL accepts a POST with this body, no confirmation page.
        # The RFC allows one-click only over HTTPS, so a plain http service gets none.
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    return tuple(headers)


@lru_cache(maxsize=8)  # every email of a run has the same Date
def _date_header(now: datetime) -> str:
    return format_datetime(now)


def _to(recipient: Recipient) -> str:
    """ "Ada Lovelace <ada@example.org>", quoted as the name needs; ValueError if malformed."""
    address = (recipient.email or "").strip()
    name = clean(recipient.name)
    if _PLAIN_ADDRESS.fullmatch(address) and (not name or _PLAIN_NAME.fullmatch(name)):
        # The usual recipient: what the email package would write, without its parser
        # (about 50 us an email, read twice: a test checks the two agree).
        return f"{name} <{address}>" if name else address
    try:
        return str(Address(display_name=name, addr_spec=address))
    except (ValueError, IndexError, HeaderParseError):
        who = recipient.audience
        raise ValueError(f"{address!r} is not an email address (recipient {who})") from None


def _fit(count: int, size_for: Callable[[int], int], limit: int) -> int:
    """The most leading items whose HTML fits in `limit` bytes (`size_for(n)` with `n`).

    Sizes grow with the item count, so a binary search needs about log2(count) renders;
    only counts whose HTML was measured to fit are ever returned.
    """

    def fits(n: int) -> bool:
        return size_for(n) <= limit

    if fits(count):
        return count
    if not fits(0):
        raise ConfigError(f"max_html_bytes={limit} is too small for an email with no items")
    low, high = 0, count  # low fits, high does not
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            low = mid
        else:
            high = mid
    return low


def _utf8_size(text: str) -> int:
    """`len(text.encode())`, without encoding ASCII text (most of what is measured)."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


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
