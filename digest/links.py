"""Identifiers and links found in item text: arXiv ids, DOIs, code and project URLs."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_NEW_ARXIV = r"\d{4}\.\d{4,5}"
_OLD_ARXIV = r"[a-z][a-z\-]+(?:\.[A-Z]{2})?/\d{7}"
_ARXIV_ID = rf"(?:{_NEW_ARXIV}|{_OLD_ARXIV})"
# An id only counts when something says it is an arXiv id: a bare "2401.12345"
# in an abstract may be a version number or a measurement.
_ARXIV_CONTEXT = re.compile(
    rf"(?:arxiv\.org/(?:abs|pdf|html)/|arxiv:\s*|huggingface\.co/papers/|"
    rf"oai:arxiv\.org:)({_ARXIV_ID})(?:v\d+)?",
    re.IGNORECASE,
)
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>]+)", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s<>\"'\]\[{}|\\^`]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""
_TRACKING_PARAMS = ("utm_", "ref", "fbclid", "gclid")
_CODE_HOSTS = ("github.com", "gitlab.com", "bitbucket.org", "huggingface.co", "codeberg.org")


def find_arxiv_id(text: str) -> str | None:
    """Return the first arXiv id (without version) that the text marks as one."""
    text = text or ""
    lowered = text.lower()
    # A cheap substring test first: the full pattern is slow on long abstracts.
    if "arxiv" not in lowered and "huggingface.co/papers" not in lowered:
        return None
    match = _ARXIV_CONTEXT.search(text)
    return match.group(1).lower() if match else None


def find_doi(text: str) -> str | None:
    """Return the first DOI in the text, lower-cased, without trailing punctuation."""
    if "10." not in (text or ""):
        return None
    match = _DOI.search(text or "")
    return match.group(1).rstrip(_TRAILING).lower() if match else None


def find_urls(text: str) -> list[str]:
    """Every http(s) URL in free text, with sentence punctuation trimmed off the end."""
    urls = []
    for raw in _URL.findall(text or ""):
        url = raw.rstrip(_TRAILING)
        # A closing parenthesis belongs to the URL only when it opened one.
        while url.endswith(")") and url.count("(") < url.count(")"):
            url = url[:-1]
        if url not in urls and urlsplit(url).netloc:
            urls.append(url)
    return urls


def split_links(text: str) -> tuple[str | None, tuple[str, ...]]:
    """Split the URLs in an abstract into (code repository URL, other project URLs)."""
    code: str | None = None
    projects: list[str] = []
    for url in find_urls(text):
        host = urlsplit(url).netloc.lower().removeprefix("www.")
        if code is None and host in _CODE_HOSTS[:3]:
            code = url.removesuffix(".git")
        elif "arxiv.org" not in host:
            projects.append(url)
    return code, tuple(projects)


def normalize_url(url: str | None) -> str | None:
    """A comparison key for a URL: scheme, www., fragment, tracking and slashes ignored.

    arXiv abstract, PDF and HTML pages of one paper all become one key.
    """
    if not url or not url.strip():
        return None
    arxiv = find_arxiv_id(url)
    if arxiv:
        return f"arxiv.org/abs/{arxiv}"
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    host = (parts.hostname or "").lower().removeprefix("www.")
    if not host:
        return None
    query = [
        (k, v) for k, v in parse_qsl(parts.query) if not k.lower().startswith(_TRACKING_PARAMS)
    ]
    path = parts.path.rstrip("/") or ""
    return urlunsplit(("", host, path, urlencode(sorted(query)), "")).lstrip("/")


# Whitespace, controls, invisible format characters and the characters that would end
# an HTML attribute or hide a scheme from a browser ("java\tscript:" is "javascript:"
# to a browser, which drops tabs and newlines from URLs).
_NOT_IN_LINK = re.compile(
    r"[\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\"<>\\`]"
)
_LINK_SCHEMES = ("http", "https")


def safe_url(value: object) -> str | None:
    """The URL if it is an absolute http(s) link that is safe to render, else None.

    Every URL a parser stores as a link (`url`, `code_url`, `project_urls`) passes
    through here, so renderers may use stored links as hrefs without checking again:
    `javascript:`, `data:`, `file:`, protocol-relative `//host` and obfuscated forms
    never get in. Surrounding spaces are trimmed; anything else is kept out, not repaired.
    """
    if not isinstance(value, str):
        return None
    url = value.strip()
    if not url or _NOT_IN_LINK.search(url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return None
    if parts.scheme.lower() not in _LINK_SCHEMES or not parts.hostname:
        return None
    return url
