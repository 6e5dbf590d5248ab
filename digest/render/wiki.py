"""Wiki posts: one markdown page per team, and per wiki reader, per day.

A post is YAML front matter (title, date, tags) and a markdown body of ranked items.
Markdown has no autoescape, so every value from an item or a profile is made safe
here, in Python, before the template sees it; the template only lays the pieces out.

Escaping rules (the same for every value that lands in the body):

- `plain_text` (`digest.text.display_text`, the rule email and feeds use too): C0/C1
  control characters, unpaired surrogates, bidi controls (U+061C, U+200E, U+200F,
  U+202A-U+202E, U+2066-U+2069), a BOM and U+FFFE/U+FFFF are removed; every run of
  whitespace (newlines and tabs included) becomes one space; the ends are trimmed.
  Everything else is kept as written, so the visible text is exactly `plain_text(value)`.
- `escape_markdown`: `plain_text`, then a backslash before every ASCII punctuation
  character. That makes every emphasis, link, code, heading, quote, list, table and
  math marker literal, turns `<` and `&` into text (no HTML, no entities), and leaves
  no `{{`, `{%` or `---` for a templating wiki or a front-matter reader to act on. The
  result is one line, safe at the start of a line too.
- Links: only http(s) URLs (`links.is_web_url`) become links; their destination has
  parentheses, angle brackets, backslashes, quotes and non-ASCII percent-encoded.
- Front matter values are YAML double-quoted strings (`yaml_string`), which are also
  valid JSON strings.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from urllib.parse import quote

import jinja2

from digest.errors import ConfigError
from digest.records import Explanation, Pick, ReaderDigest, Recipient, StoredItem
from digest.render.links import Links, is_web_url
from digest.render.templates import Slotted, is_bundled, render, slot
from digest.text import display_text

TEMPLATE = "post.md.j2"
ITEM_TEMPLATE = "post_item.md.j2"
#: Team names and handles, as `digest.profiles` accepts them: nothing that can leave a folder.
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MAX_AUTHORS = 6
MAX_ABSTRACT = 600
MAX_TAGS = 5

#: Every ASCII punctuation character but the backslash, which `escape_markdown` does first.
_MD_PUNCTUATION = string.punctuation.replace("\\", "")
_UNTITLED = "\\(untitled\\)"
# Everything a URL may hold except what ends or confuses a markdown link destination.
_URL_SAFE = "/:?#[]@!$&'*+,;=%-._~"
#: A URL of only what `quote` leaves alone (letters, digits and `_URL_SAFE`): a signed
#: link always is, and each post has one per pick.
_DESTINATION_AS_IS = re.compile(f"[A-Za-z0-9{re.escape(_URL_SAFE)}]+")
_YAML_BACKSLASH = {'"': '\\"', "\\": "\\\\"}


@dataclass(frozen=True)
class WikiPost:
    """One rendered post: where it goes under the wiki root, and its markdown."""

    #: Relative, with forward slashes: "2026/03/2026-03-11-efficiency.md".
    path: str
    text: str
    #: The digest's audience (a handle or `team:<name>`) and day, for the commit message.
    audience: str
    day: date

    @property
    def is_team(self) -> bool:
        return self.audience.startswith("team:")


def wants_post(recipient: Recipient) -> bool:
    """Every team gets a post; a reader only when `wiki` is one of their channels."""
    return recipient.is_team or "wiki" in recipient.channels


def render_post(
    digest: ReaderDigest,
    recipient: Recipient,
    links: Links,
    *,
    templates: str | None = None,
) -> WikiPost:
    """The day's post for one team or reader; a bad name is a ConfigError, never a path."""
    if digest.audience != recipient.audience:
        raise ValueError(f"digest for {digest.audience!r} given recipient {recipient.audience!r}")
    path = post_path(digest.day, digest.name)  # refuses a bad name before any rendering
    title = post_title(digest, recipient)
    entries = [_entry(digest, pick, links) for pick in digest.picks]
    spaces = _page_spaces(templates)
    text = render(
        TEMPLATE,
        templates,
        front={
            "title": yaml_string(title),
            "date": digest.day.isoformat(),
            "tags": yaml_list(post_tags(digest)),
        },
        heading=escape_markdown(title),
        intro=escape_markdown(_intro(digest, recipient)),
        entries=entries,
        entry_text=[
            _entry_text(entry, pick.item, templates, spaces)
            for entry, pick in zip(entries, digest.picks, strict=True)
        ],
        is_team=digest.is_team,
    )
    return WikiPost(path=path, text=_tidy(text), audience=digest.audience, day=digest.day)


def post_name(name: str) -> str:
    """`name` when it is a valid team name or handle; refuses anything path-like."""
    if not NAME.fullmatch(name):
        raise ConfigError(f"{name!r} is not a valid team name or handle for a wiki post")
    return name


def post_path(day: date, name: str) -> str:
    """`YYYY/MM/YYYY-MM-DD-<name>.md`, relative to the wiki root."""
    return f"{day.year:04d}/{day.month:02d}/{day.isoformat()}-{post_name(name)}.md"


def post_title(digest: ReaderDigest, recipient: Recipient) -> str:
    """`Efficient Models: papers for 2026-03-11`: the display name, else the handle."""
    who = plain_text(recipient.name) or digest.name
    return f"{who}: papers for {digest.day.isoformat()}"


def post_tags(digest: ReaderDigest) -> list[str]:
    """`digest`, the team or handle, then the items' most common tags (a wiki can list by tag)."""
    counts = Counter(tag for pick in digest.picks for tag in _item_tags(pick))
    tags = ["digest", digest.name]
    for tag, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_TAGS]:
        if tag not in tags:
            tags.append(tag)
    return tags


def _item_tags(pick: Pick) -> tuple[str, ...]:
    """An item's tags as plain text, each counted once per item."""
    return _paper(pick.item).tags


#: One line of visible text: the renderers' one cleaning rule (`display_text`).
plain_text = display_text


def escape_markdown(text: str | None) -> str:
    """Markdown whose visible text is exactly `plain_text(text)`: no markup survives.

    A backslash goes before every ASCII punctuation character. (One `str.replace` per
    character present: an order of magnitude faster than `str.translate` with a dict.)
    """
    return _escape_punctuation(plain_text(text))


def _escape_punctuation(text: str) -> str:
    """`escape_markdown` of a text `plain_text` made already."""
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    for ch in _MD_PUNCTUATION:
        if ch in text:
            text = text.replace(ch, "\\" + ch)
    return text


def link_destination(url: str | None) -> str | None:
    """A markdown link destination for an http(s) URL; None for anything else."""
    if not is_web_url(url):
        return None
    return _destination(url)


def _destination(url: str | None) -> str | None:
    """`link_destination` of a URL known to be http(s) already, or of None."""
    if url is None:
        return None
    if _DESTINATION_AS_IS.fullmatch(url):
        return url  # what quote() would give: nothing in it to percent-encode
    return quote(url, safe=_URL_SAFE)


def markdown_link(text: str, url: str | None) -> str:
    """`[text](url)` for an http(s) URL, otherwise the escaped text alone."""
    label = escape_markdown(text)
    dest = link_destination(url)
    return f"[{label}]({dest})" if dest and label else label


def yaml_string(text: str) -> str:
    """A YAML double-quoted scalar (also a JSON string) that reads back as `text`.

    Beyond `"` and `\\`, every BMP character YAML may not hold raw or might read as a
    line break (controls, surrogates, U+0085, U+2028, U+2029, format characters and
    unassigned code points, U+FFFE/U+FFFF) is written as a `\\uXXXX` escape.
    """
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'  # the common case: nothing to escape
    return '"' + "".join(_yaml_char(ch) for ch in text) + '"'


def yaml_list(values: Iterable[str]) -> str:
    """A YAML flow sequence of double-quoted strings: `["digest", "efficiency"]`."""
    return "[" + ", ".join(yaml_string(v) for v in values) + "]"


def _yaml_char(ch: str) -> str:
    if ch in _YAML_BACKSLASH:
        return _YAML_BACKSLASH[ch]
    code = ord(ch)
    if " " <= ch <= "~" or code > 0xFFFF:
        return ch
    if code < 0x80 or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Cn", "Zl", "Zp"):
        return f"\\u{code:04x}"
    return ch


@dataclass(slots=True)  # not frozen: made for every pick of every post, and never kept
class _Entry:
    """One pick as the template sees it: every string already markdown."""

    rank: int
    title: str
    authors: str
    abstract: str
    links: tuple[str, ...]
    why: str
    members: str


@dataclass(frozen=True, slots=True)
class _Paper:
    """What a post shows of an item whoever it goes to, as markdown."""

    label: str
    authors: str
    abstract: str
    links: tuple[str, ...]
    tags: tuple[str, ...]


def _entry(digest: ReaderDigest, pick: Pick, links: Links) -> _Entry:
    paper = _paper(pick.item)
    # Links.pick gives only http(s) URLs (or None): no need to check them again.
    dest = _destination(links.pick(digest.audience, pick.item, digest.day).url)
    title = f"[{paper.label}]({dest})" if dest and paper.label else paper.label
    return _Entry(
        rank=pick.rank,
        title=title or _UNTITLED,
        authors=paper.authors,
        abstract=paper.abstract,
        links=paper.links,
        why=_why(pick.why),
        members=_names(pick.members) if digest.is_team else "",
    )


# The same papers go to many readers and teams: their markdown is made once, not once
# per post (escaping a long abstract was most of a post's cost). Two weeks of a
# thousand new papers a day fit; an edited item is a different key.
@lru_cache(maxsize=16384)
def _paper(item: StoredItem) -> _Paper:
    return _Paper(
        label=escape_markdown(item.title),
        authors=_authors(item.authors),
        abstract=escape_markdown(_trim(plain_text(item.abstract), MAX_ABSTRACT)),
        links=_extra_links(item.code_url, item.project_urls),
        tags=tuple(sorted({t for t in (plain_text(tag) for tag in item.tags) if t})),
    )


def _why(why: Explanation) -> str:
    """The reason as markdown (not cached: hardly two picks share a reason)."""
    return _escape_punctuation(why.shown())


def _entry_text(entry: _Entry, item: StoredItem, templates: str | None, spaces: bool) -> str:
    """One pick's markdown: its paper's fragment with this post's values filled in."""
    fragment = _entry_fragment(item, bool(entry.members), templates, spaces)
    values = {"rank": str(entry.rank), "title": entry.title, "why": entry.why}
    return fragment.fill({**values, "members": entry.members})


# A pick's markdown is mostly its paper's (authors, abstract, links) and the same in
# every post it is in: `post_item.md.j2` is rendered once per paper and shape, with
# slots for the post's own values (rank, linked title, reason, members).
@lru_cache(maxsize=16384)
def _entry_fragment(
    item: StoredItem, members: bool, templates: str | None, page_spaces: bool
) -> Slotted:
    """The pick's markdown with slots; with `page_spaces` (the bundled page, which puts a
    line end after each entry), ending in one line end, not a blank line: the page's
    own makes the blank line, and `_tidy` has no run of three line ends to fold."""
    paper = _paper(item)
    entry = _Entry(
        rank=slot("rank"),  # type: ignore[arg-type]  # a slot, filled in per post
        title=slot("title"),
        authors=paper.authors,
        abstract=paper.abstract,
        links=paper.links,
        why=slot("why"),
        members=slot("members") if members else "",
    )
    text = render(ITEM_TEMPLATE, templates, entry=entry)
    kept = text.rstrip("\n")
    if page_spaces and len(text) - len(kept) >= 2 and not kept.endswith("\x00"):
        text = kept + "\n"  # what `_tidy` leaves of the two with the page's line end
    return Slotted.of(text)


def _page_spaces(templates: str | None) -> bool:
    """Whether the post's page is the bundled one (see `_entry_fragment`)."""
    try:
        return is_bundled(templates, TEMPLATE)
    except jinja2.TemplateNotFound:
        return False  # `render` reports the missing page


def _names(names: tuple[str, ...]) -> str:
    """Names as markdown, joined; one with nothing visible left is left out."""
    return ", ".join(n for n in (escape_markdown(m) for m in names) if n)


def _authors(authors: tuple[str, ...]) -> str:
    """The first few authors, then "and N more": a wiki page is skimmed, not cited."""
    names = [escape_markdown(a) for a in authors]
    names = [n for n in names if n]
    if len(names) <= MAX_AUTHORS:
        return ", ".join(names)
    return ", ".join(names[:MAX_AUTHORS]) + f" and {len(names) - MAX_AUTHORS} more"


def _extra_links(code_url: str | None, project_urls: tuple[str, ...]) -> tuple[str, ...]:
    """Code and project links, only those that are http(s)."""
    out = []
    if link_destination(code_url):
        out.append(markdown_link("code", code_url))
    projects = [u for u in project_urls if link_destination(u)]
    for n, url in enumerate(projects, start=1):
        label = "project" if len(projects) == 1 else f"project {n}"
        out.append(markdown_link(label, url))
    return tuple(out)


def _trim(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "…"


def _intro(digest: ReaderDigest, recipient: Recipient) -> str:
    count = len(digest.picks)
    if not count:
        return "No new papers matched today."
    papers = "paper" if count == 1 else "papers"
    if digest.is_team:
        members = f" ({', '.join(recipient.members)})" if recipient.members else ""
        return f"{count} {papers} ranked for team {digest.name}{members}."
    return f"{count} {papers} ranked for {digest.name}."


def _tidy(text: str) -> str:
    """At most one blank line in a row and one final newline, whatever the template did."""
    # str.replace, not re.sub: a regular expression scans a long post an order slower.
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip("\n") + "\n"
