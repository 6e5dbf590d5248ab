"""Only absolute http(s) URLs are links; everything else stays inert text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.links import safe_url
from digest.parsers.common import make_record

UNSAFE = [
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "java\rscript:alert(1)",
    "\x00javascript:alert(1)",
    "\x01https://example.org/",
    "javascript\u200b:alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD4=",
    "file:///etc/passwd",
    "ftp://example.org/file",
    "//evil.example/x",
    "///evil.example/x",
    "/relative/path",
    "example.org/no-scheme",
    "http:alert(1)",
    "https:/one-slash.example",
    "http://",
    "https://:443/",
    "http://[::1",
    "http://exa mple.com/",
    "http://example.com:99999/",
    'https://example.org/"onmouseover="alert(1)',
    "https://example.org/<script>",
    "https:\\\\evil.example\\x",
    "https://example.org/\u202eevil",
    "",
    "   ",
]
SAFE = [
    ("https://example.org/", "https://example.org/"),
    ("http://example.org/a?b=1&c=2#frag", "http://example.org/a?b=1&c=2#frag"),
    ("  https://example.org/trimmed  ", "https://example.org/trimmed"),
    ("HTTPS://EXAMPLE.ORG/", "HTTPS://EXAMPLE.ORG/"),
    ("https://[::1]:8080/x", "https://[::1]:8080/x"),
    ("https://ja.wikipedia.org/wiki/日本", "https://ja.wikipedia.org/wiki/日本"),
    ("https://arxiv.org/abs/2401.12345v2", "https://arxiv.org/abs/2401.12345v2"),
]


@pytest.mark.parametrize("value", UNSAFE)
def test_unsafe_urls_are_not_links(value: str) -> None:
    assert safe_url(value) is None


@pytest.mark.parametrize("value,expected", SAFE)
def test_http_urls_are_links(value: str, expected: str) -> None:
    assert safe_url(value) == expected


@pytest.mark.parametrize("value", [None, 3, ["https://example.org/"], b"https://example.org/"])
def test_non_strings_are_not_links(value: object) -> None:
    assert safe_url(value) is None


@pytest.mark.parametrize("value", UNSAFE)
def test_make_record_never_stores_an_unsafe_url(value: str) -> None:
    record = make_record("T", f"Code {value} and more", url=value)
    assert record.url is None
    assert record.abstract == f"Code {value} and more"  # kept, as inert text
    # Only an http(s) prefix of the text may become a link (`https://example.org/` of
    # `https://example.org/<script>`), never the unsafe remainder.
    for link in (record.code_url, *record.project_urls):
        assert link is None or safe_url(link) == link


@given(st.text(max_size=80), st.text(max_size=200))
def test_every_stored_link_is_http(url: str, abstract: str) -> None:
    record = make_record("T", abstract, url=url)
    for link in (record.url, record.code_url, *record.project_urls):
        if link is not None:
            assert link.lower().startswith(("http://", "https://"))
            assert safe_url(link) == link
