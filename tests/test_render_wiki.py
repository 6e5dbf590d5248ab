"""Wiki posts: shape, front matter, and escaping checked by parsing the output.

Every escaping test parses the rendered markdown with a CommonMark parser and
compares what a reader would see with the original text (after `plain_text`, the
documented stripping), so the tests judge the result, not the escaping code.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
import yaml
from conftest import HOSTILE
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

import digest.render.wiki as wiki_module
from digest.errors import ConfigError
from digest.records import Explanation, Pick, ReaderDigest, Recipient, StoredItem
from digest.render.links import Links, is_web_url
from digest.render.wiki import (
    _URL_SAFE,
    WikiPost,
    escape_markdown,
    link_destination,
    plain_text,
    post_path,
    render_post,
    wants_post,
    yaml_list,
    yaml_string,
)
from digest.tokens import TokenSigner

DAY = date(2026, 3, 11)
TEAM = Recipient("team:efficiency", "Efficient Models", members=("ada", "grace"))
ADA = Recipient("ada", "Ada Example", email="ada@example.org", channels=("email", "wiki"))
MD = MarkdownIt("commonmark")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# -- helpers: a strict front-matter reader and a token walker --------------------------------


def split_post(text: str) -> tuple[dict[str, Any], str]:
    """Front matter and body; the front matter must be exactly title, date and tags.

    Each value must be a double-quoted string or a list of them (read with json.loads,
    which accepts nothing YAML-only), or a bare ISO date.
    """
    assert text.startswith("---\n")
    head, sep, body = text[4:].partition("\n---\n")
    assert sep, "front matter is not closed"
    front: dict[str, Any] = {}
    for line in head.split("\n"):
        key, colon, raw = line.partition(": ")
        assert colon and key.isidentifier() and key not in front, line
        if _DATE.fullmatch(raw):
            front[key] = date.fromisoformat(raw)
        else:
            assert raw[0] in '"[', line
            front[key] = json.loads(raw)
    assert set(front) == {"title", "date", "tags"}
    assert isinstance(front["title"], str)
    assert all(isinstance(t, str) for t in front["tags"])
    return front, body


def inline_text(children: list[Token]) -> str:
    """What a reader sees of an inline run; fails on raw HTML or a line break."""
    out = []
    for child in children:
        assert child.type not in ("html_inline", "softbreak", "hardbreak", "image"), child
        if child.type in ("text", "code_inline"):
            out.append(child.content)
    return "".join(out)


def walk(tokens: list[Token]) -> list[Token]:
    """Every token, inline children included."""
    out = []
    for token in tokens:
        out.append(token)
        out.extend(walk(token.children or []))
    return out


def check_safe(body: str) -> list[Token]:
    """Parse `body`: no HTML anywhere, every link http(s). Returns the block tokens."""
    tokens = MD.parse(body)
    for token in walk(tokens):
        assert token.type not in ("html_inline", "html_block"), token
        if token.type == "link_open":
            assert re.match(r"https?://", str(token.attrs["href"]), re.IGNORECASE), token
        assert token.type != "image"
    return tokens


def headings(tokens: list[Token], level: int) -> list[str]:
    """Visible text of every heading of `level`."""
    tag = f"h{level}"
    return [
        inline_text(tokens[i + 1].children or [])
        for i, t in enumerate(tokens)
        if t.type == "heading_open" and t.tag == tag
    ]


def item_titles(tokens: list[Token]) -> list[str]:
    """Each item's title as seen: its `## N. ` heading without the rank."""
    out = []
    for n, text in enumerate(headings(tokens, 2), start=1):
        assert text.startswith(f"{n}. "), text
        out.append(text.removeprefix(f"{n}. "))
    return out


def list_items(tokens: list[Token]) -> list[str]:
    """Visible text of each bullet (one paragraph per bullet here)."""
    out = []
    for i, t in enumerate(tokens):
        if t.type == "list_item_open":
            out.append(inline_text(tokens[i + 2].children or []))
    return out


def paragraphs(tokens: list[Token]) -> list[str]:
    return [
        inline_text(tokens[i + 1].children or [])
        for i, t in enumerate(tokens)
        if t.type == "paragraph_open" and t.level == 0
    ]


def expected_title(title: str) -> str:
    return plain_text(title) or "(untitled)"


def item(n: int = 1, **fields: Any) -> StoredItem:
    defaults: dict[str, Any] = {
        "id": f"p{n}",
        "title": f"Paper {n}",
        "url": f"https://arxiv.org/abs/2603.0000{n}",
        "abstract": f"Abstract of paper {n}.",
        "authors": ("Ada Lovelace", "Grace Hopper"),
    }
    defaults.update(fields)
    return StoredItem(**defaults)


def team_digest(*picks: Pick) -> ReaderDigest:
    return ReaderDigest("team:efficiency", DAY, picks)


def pick(it: StoredItem, rank: int = 1, members: tuple[str, ...] = (), **why: Any) -> Pick:
    return Pick(it, rank, 1.0 / rank, Explanation(**why), members)


# -- shape --------------------------------------------------------------------------------


def test_team_post_lists_items_in_rank_order_with_members() -> None:
    picks = (
        pick(item(1, tags=("cs.LG",)), 1, ("ada", "grace"), interest="quantization"),
        pick(item(2, tags=("cs.LG", "cs.CL")), 2, ("grace",), terms=("moe", "sparse")),
    )
    post = render_post(team_digest(*picks), TEAM, Links())
    assert isinstance(post, WikiPost)
    assert post.path == "2026/03/2026-03-11-efficiency.md"
    assert (post.audience, post.day, post.is_team) == ("team:efficiency", DAY, True)
    front, body = split_post(post.text)
    assert front == {
        "title": "Efficient Models: papers for 2026-03-11",
        "date": DAY,
        "tags": ["digest", "efficiency", "cs.LG", "cs.CL"],
    }
    tokens = check_safe(body)
    assert headings(tokens, 1) == ["Efficient Models: papers for 2026-03-11"]
    assert item_titles(tokens) == ["Paper 1", "Paper 2"]
    bullets = list_items(tokens)
    assert "For: ada, grace" in bullets and "For: grace" in bullets
    assert "Why: matches your interest 'quantization'" in bullets
    assert "Why: shared terms: moe, sparse" in bullets
    assert "Authors: Ada Lovelace, Grace Hopper" in paragraphs(tokens)
    hrefs = [t.attrs["href"] for t in walk(tokens) if t.type == "link_open"]
    assert hrefs == ["https://arxiv.org/abs/2603.00001", "https://arxiv.org/abs/2603.00002"]
    assert post.text.endswith("\n") and not post.text.endswith("\n\n")


def test_reader_post_has_the_same_shape_without_for_lines() -> None:
    digest = ReaderDigest("ada", DAY, (pick(item(1), 1, ("ada",), interest="moe"),))
    post = render_post(digest, ADA, Links())
    assert post.path == "2026/03/2026-03-11-ada.md"
    front, body = split_post(post.text)
    assert front["title"] == "Ada Example: papers for 2026-03-11"
    tokens = check_safe(body)
    assert item_titles(tokens) == ["Paper 1"]
    assert not [b for b in list_items(tokens) if b.startswith("For:")]


def test_reader_links_are_tracked_and_team_links_are_not() -> None:
    links = Links(base_url="https://digest.example", signer=TokenSigner("s" * 32))
    reader = render_post(ReaderDigest("ada", DAY, (pick(item(1)),)), ADA, links)
    team = render_post(team_digest(pick(item(1))), TEAM, links)
    reader_href = [t.attrs["href"] for t in walk(MD.parse(reader.text)) if t.type == "link_open"]
    team_href = [t.attrs["href"] for t in walk(MD.parse(team.text)) if t.type == "link_open"]
    assert len(reader_href) == 1 and str(reader_href[0]).startswith("https://digest.example/c/")
    assert team_href == ["https://arxiv.org/abs/2603.00001"]


def test_code_and_project_links_only_when_web_urls() -> None:
    it = item(
        1,
        code_url="https://github.com/org/repo",
        project_urls=("https://project.example/", "ftp://files.example/x"),
    )
    _, body = split_post(render_post(team_digest(pick(it)), TEAM, Links()).text)
    tokens = check_safe(body)
    assert "Links: code · project" in list_items(tokens)
    hrefs = [t.attrs["href"] for t in walk(tokens) if t.type == "link_open"]
    assert hrefs[1:] == ["https://github.com/org/repo", "https://project.example/"]


def test_authors_and_abstract_are_trimmed() -> None:
    authors = tuple(f"Author {n}" for n in range(1, 11))
    it = item(1, authors=authors, abstract="word " * 400)
    _, body = split_post(render_post(team_digest(pick(it)), TEAM, Links()).text)
    paras = paragraphs(check_safe(body))
    names = ", ".join(authors[:6])
    assert f"Authors: {names} and 4 more" in paras
    abstract = next(p for p in paras if p.startswith("word"))
    assert abstract.endswith("word…") and len(abstract) <= 600


def test_an_empty_digest_still_makes_a_post() -> None:
    post = render_post(team_digest(), TEAM, Links())
    _, body = split_post(post.text)
    tokens = check_safe(body)
    assert item_titles(tokens) == []
    assert "No new papers matched today." in paragraphs(tokens)


def test_wants_post_teams_always_readers_by_channel() -> None:
    assert wants_post(TEAM)
    assert wants_post(ADA)
    assert not wants_post(Recipient("sam", "Sam", channels=("email", "feed")))


@pytest.mark.parametrize("name", ["../etc", "Ada", ".hidden", "a/b", "a\\b", "", "a" * 65, "é"])
def test_names_that_could_leave_the_folder_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="not a valid team name or handle"):
        render_post(ReaderDigest(name, DAY, ()), Recipient(name, "x"), Links())
    with pytest.raises(ConfigError):
        post_path(DAY, name)


def test_digest_and_recipient_must_agree() -> None:
    with pytest.raises(ValueError, match="recipient"):
        render_post(team_digest(), ADA, Links())


def test_a_template_folder_overrides_the_bundled_post(tmp_path: Path) -> None:
    (tmp_path / "post.md.j2").write_text(
        "{{ heading }}\n{% for e in entries %}{{ e.rank }} {{ e.title }}\n{% endfor %}"
    )
    post = render_post(team_digest(pick(item(1, url=None))), TEAM, Links(), templates=str(tmp_path))
    assert post.text == "Efficient Models\\: papers for 2026\\-03\\-11\n1 Paper 1\n"


def test_an_overridden_item_without_a_final_line_break_still_starts_each_entry_on_a_line(
    tmp_path: Path,
) -> None:
    """The bundled post puts a line break after each entry whatever the item template ends
    with: an overridden `post_item.md.j2` need not end in a blank line."""
    (tmp_path / "post_item.md.j2").write_text("## {{ entry.rank }}. {{ entry.title }}")
    digest = team_digest(pick(item(1, url=None)), pick(item(2, url=None), 2))
    post = render_post(digest, TEAM, Links(), templates=str(tmp_path))
    assert "\n## 1. Paper 1\n" in post.text and "\n## 2. Paper 2\n" in post.text


@pytest.mark.parametrize("ending", ["", "\n", "\n\n", "\n\n\n\n"])
def test_entries_ending_in_blank_lines_read_as_the_page_and_tidy_would_leave_them(
    tmp_path: Path, ending: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the bundled page, an entry's blank lines at its end are cut to the one line
    end `_tidy` would leave beside the page's own: the same post, with no run to fold."""
    (tmp_path / "post_item.md.j2").write_text("## {{ entry.rank }}. {{ entry.title }}" + ending)
    digest = team_digest(pick(item(1, url=None)), pick(item(2, url=None), 2))
    quick = render_post(digest, TEAM, Links(), templates=str(tmp_path))
    monkeypatch.setattr(wiki_module, "_page_spaces", lambda templates: False)
    assert render_post(digest, TEAM, Links(), templates=str(tmp_path)).text == quick.text
    assert "\n\n\n" not in quick.text


# -- escaping -----------------------------------------------------------------------------


def hostile_pick(text: str, audience: str) -> Pick:
    """`text` in every field of one item and its reason (and as a member of a team's pick)."""
    it = item(1, title=text, abstract=text, authors=(text, "Ada"), tags=(text,))
    members = (text, "grace") if audience.startswith("team:") else ()
    return pick(it, 1, members, interest=text, because_title=text, terms=(text,))


def test_hostile_texts_render_literally(hostile_text: dict[str, Any]) -> None:
    """Each text of the shared corpus, in every field, reads back as the corpus says."""
    shown = hostile_text["shown"]
    for recipient in (TEAM, ADA):
        p = hostile_pick(hostile_text["value"], recipient.audience)
        post = render_post(ReaderDigest(recipient.audience, DAY, (p,)), recipient, Links())
        post.text.encode("utf-8")  # writable: no lone surrogates left
        _, body = split_post(post.text)
        tokens = check_safe(body)
        assert plain_text(hostile_text["value"]) == shown
        assert item_titles(tokens) == [shown or "(untitled)"]
        bullets = list_items(tokens)
        assert f"Why: {plain_text(p.why.text())}" in bullets
        paras = paragraphs(tokens)
        if shown and len(shown) <= 600:
            assert shown in paras
            assert f"Authors: {shown}, Ada" in paras
        elif shown:
            assert any(x.endswith("…") and shown.startswith(x[:-1]) for x in paras)
        if recipient.is_team:
            assert (f"For: {shown}, grace" if shown else "For: grace") in bullets


def test_hostile_urls_link_only_web_urls(hostile_url: dict[str, Any]) -> None:
    url = hostile_url["value"]
    it = item(1, title="T", url=url, code_url=url, project_urls=(url,))
    post = render_post(team_digest(pick(it)), TEAM, Links())
    tokens = check_safe(split_post(post.text)[1])
    hrefs = [str(t.attrs["href"]) for t in walk(tokens) if t.type == "link_open"]
    assert item_titles(tokens) == ["T"]
    if hostile_url["link"]:
        # The title and the code link (the project page repeats the code link's URL).
        assert [unquote(h) for h in hrefs] == [unquote(url)] * 3
    else:
        assert hrefs == []


@pytest.mark.parametrize(
    ("url", "linked"),
    [
        ("javascript:alert(1)", False),
        ("data:text/html,x", False),
        ("//evil.example/x", False),
        ("https://example.org/x](javascript:alert(1))", True),
        ("HTTPS://EXAMPLE.ORG/x", True),
        ("https://example.org/a b", False),
    ],
)
def test_only_http_urls_become_links(url: str, linked: bool) -> None:
    post = render_post(team_digest(pick(item(1, url=url, title="T"))), TEAM, Links())
    tokens = check_safe(split_post(post.text)[1])
    links = [t for t in walk(tokens) if t.type == "link_open"]
    assert len(links) == int(linked)
    assert item_titles(tokens) == ["T"]


@pytest.mark.parametrize("name", HOSTILE["names"])
def test_hostile_names_survive_front_matter_and_heading(name: str) -> None:
    recipient = Recipient("team:efficiency", name, members=("ada",))
    post = render_post(team_digest(), recipient, Links())
    front, body = split_post(post.text)
    title = f"{plain_text(name) or 'efficiency'}: papers for 2026-03-11"
    assert front["title"] == title
    assert headings(check_safe(body), 1) == [title]


def test_front_matter_reads_back_with_a_yaml_parser() -> None:
    """A cross-check with a real YAML reader (PyYAML, a development dependency)."""
    for name in HOSTILE["names"]:
        post = render_post(team_digest(), Recipient("team:efficiency", name), Links())
        head = post.text.split("\n---\n", 1)[0].removeprefix("---\n")
        assert yaml.safe_load(head) == split_post(post.text)[0]


def test_plain_text_strips_controls_and_bidi_and_collapses_whitespace() -> None:
    assert plain_text("  a\tb\n\nc\x00d\x1be\u202ef\u2066g\u2069 \u00a0h  ") == "a b cdefg h"
    assert plain_text("keep 😀 👩\u200d🔬 ü") == "keep 😀 👩\u200d🔬 ü"
    assert plain_text(None) == ""


@pytest.mark.parametrize(
    "text", ["# h", "> q", "- l", "+ l", "* l", "1. l", "1) l", "===", "---", "    code", "<div>"]
)
def test_escaped_text_is_plain_at_the_start_of_a_line(text: str) -> None:
    tokens = check_safe(escape_markdown(text) + "\n")
    assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"]
    assert paragraphs(tokens) == [plain_text(text)]


def test_escaping_leaves_no_template_or_front_matter_markers() -> None:
    out = escape_markdown("{{ x }} {% raw %} --- ")
    assert "{{" not in out and "{%" not in out and "---" not in out


def test_yaml_string_escapes_what_yaml_would_misread() -> None:
    assert yaml_string('a "b" \\ c') == '"a \\"b\\" \\\\ c"'
    assert yaml_string("x\ny\u2028z\x85\ufeff") == '"x\\u000ay\\u2028z\\u0085\\ufeff"'
    assert yaml_list(["a", "b: c"]) == '["a", "b: c"]'


@settings(max_examples=300, deadline=None)
@given(st.text(), st.sampled_from([None, "https://example.org/x"]))
def test_any_title_round_trips(title: str, url: str | None) -> None:
    post = render_post(team_digest(pick(item(1, title=title, url=url))), TEAM, Links())
    tokens = check_safe(split_post(post.text)[1])
    assert item_titles(tokens) == [expected_title(title)]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_escapes_to_one_literal_paragraph(text: str) -> None:
    tokens = check_safe(escape_markdown(text) + "\n")
    assert paragraphs(tokens) == ([plain_text(text)] if plain_text(text) else [])


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_string_round_trips_through_yaml_string(text: str) -> None:
    assert json.loads(yaml_string(text)) == text
    assert yaml.safe_load("v: " + yaml_string(text)) == {"v": text}


@given(st.text(st.characters(min_codepoint=0, max_codepoint=127)))
def test_ascii_text_skips_the_per_character_escaping_only_when_it_changes_nothing(
    text: str,
) -> None:
    """The fast path for plain ASCII gives what escaping each character gives."""
    assert yaml_string(text) == '"' + "".join(map(wiki_module._yaml_char, text)) + '"'


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from("aZ09/:?#[]@!$&'*+,;=%-._~ \"<>\\()^`{|}é\ufffe\x7f"), max_size=40))
def test_a_link_destination_is_the_url_percent_encoded_where_markdown_needs_it(path: str) -> None:
    url = f"https://example.org/{path}"
    expected = quote(url, safe=_URL_SAFE) if is_web_url(url) else None
    assert link_destination(url) == expected
