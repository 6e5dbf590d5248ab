"""`digest serve` over real HTTP: the app on uvicorn on a loopback port, a real SQLite file.

Most tests run the app in a thread of the test process (so its clock can be moved);
the end-to-end ones start the real `digest serve` command as a subprocess. Both
speak HTTP to it with httpx and read the database the service writes.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from lxml import etree

from digest.cli import cli
from digest.errors import ConfigError, StorageError
from digest.ingest import ingest
from digest.serve import create_app, listen
from digest.settings import Settings, load_settings
from digest.store import Store
from digest.tokens import TokenSigner

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "serve"
SECRET = "serve-test-secret-0123456789abcdef"
DAY = date(2026, 3, 11)
SIGNER = TokenSigner(SECRET)
#: Titles of the papers in fixtures/serve/items.jsonl, by the short names tests use.
TITLES = {
    "sparse": "Sparse Attention for Long Documents",
    "gnn": "Graph Neural Networks for Molecules",
    "markup": '<script>alert("x")</script> & "Quoted" <b>Markup</b> in a Title',
    "unsafe": "A Paper Whose Link Will Be Made Unsafe",
    "nolink": "A Paper With No Link At All",
}


# -- the server and its database ----------------------------------------------------------


class LiveServer:
    """The real app on uvicorn, in a thread, on a loopback port of its own."""

    def __init__(self, app) -> None:
        self.sock = listen("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_until(lambda: self.server.started, "the server to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def wait_until(ready, what: str, limit: float = 60.0) -> None:
    """Poll `ready()` until true; fail naming `what` if it never is."""
    deadline = time.monotonic() + limit
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


@dataclass
class Clock:
    """The service's clock, moved by hand."""

    now: datetime = field(default_factory=lambda: datetime(2026, 3, 11, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Site:
    """A workspace (database, config, feeds folder) and its running service."""

    root: Path
    config: Path
    db: Path
    settings: Settings
    ids: dict[str, str]
    clock: Clock
    http: httpx.Client

    def events(self) -> list[tuple[str, str, str]]:
        """(reader, item id, event) of every event stored (the service is the only writer)."""
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute("SELECT reader, item_id, event FROM events ORDER BY id").fetchall()
        conn.close()
        return rows

    def unsubscribed(self) -> set[str]:
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute("SELECT handle FROM readers WHERE unsubscribed_at IS NOT NULL")
            out = {r[0] for r in rows}
        conn.close()
        return out


def write_config(folder: Path, **sections: dict) -> Path:
    """A digest.toml in `folder` from {"section": {"key": value}}."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path = folder / "digest.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_workspace(root: Path, click_window: float = 600.0) -> tuple[Path, Path, dict[str, str]]:
    """The fixture papers in a fresh database, readers ada and grace; config, db, ids."""
    db = root / "digest.db"
    config = write_config(
        root,
        store={"db": str(db)},
        output={"dir": str(root / "out")},
        serve={"click_window": click_window},
    )
    with Store.open(db) as store:
        summary = ingest(store, [str(FIXTURES / "items.jsonl")], given=DAY)
        assert summary.new == len(TITLES)
        with store.transaction():
            for handle in ("ada", "grace"):
                store.ensure_reader(handle, origin="profile", email=f"{handle}@example.org")
        by_title = dict(store.conn.execute("SELECT title, id FROM items").fetchall())
    return config, db, {name: by_title[title] for name, title in TITLES.items()}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    config, db, ids = make_workspace(tmp_path)
    settings = load_settings(str(config), env={"DIGEST_SECRET": SECRET})
    clock = Clock()
    with (
        LiveServer(create_app(settings, clock=clock)) as server,
        httpx.Client(base_url=server.base, follow_redirects=False, timeout=30) as http,
    ):
        yield Site(tmp_path, config, db, settings, ids, clock, http)


def token(reader: str, item_id: str, action: str, signer: TokenSigner = SIGNER) -> str:
    return signer.sign(reader, item_id, action, DAY)


def pick(reader: str, item_id: str, link: str) -> str:
    """The path of one of an item's links as digests carry them: one "pick" token for all."""
    signed = token(reader, item_id, "pick")
    return f"/c/{signed}" if link == "click" else f"/f/{signed}/{link}"


def set_url(db: Path, item_id: str, url: str | None) -> None:
    """Overwrite an item's stored URL directly in SQL (nothing in digest would store it)."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE items SET url = ? WHERE id = ?", (url, item_id))
    conn.close()


# -- health and clicks ------------------------------------------------------------------------


def test_healthz_says_ok(site: Site) -> None:
    response = site.http.get("/healthz")
    assert response.status_code == 200
    assert response.text == "ok\n"


def test_a_click_is_recorded_then_redirects_to_the_items_own_url(site: Site) -> None:
    item = site.ids["gnn"]
    response = site.http.get(f"/c/{token('ada', item, 'click')}")
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.org/papers/gnn?id=2&ref=digest#results"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert site.events() == [("ada", item, "click")]


def test_a_click_from_a_reader_the_database_does_not_know_yet_is_recorded(site: Site) -> None:
    # A reader may exist only through feedback: the event must not fail on the foreign key.
    item = site.ids["sparse"]
    assert site.http.get(f"/c/{token('newcomer', item, 'click')}").status_code == 302
    assert site.events() == [("newcomer", item, "click")]


def test_head_requests_are_answered_but_never_counted(site: Site) -> None:
    item = site.ids["sparse"]
    assert site.http.head(f"/c/{token('ada', item, 'click')}").status_code == 302
    assert site.http.head(f"/f/{token('ada', item, 'more')}").status_code == 200
    assert site.http.head(f"/u/{token('ada', '', 'unsubscribe')}").status_code == 200
    assert site.events() == []
    assert site.unsubscribed() == set()


def test_repeated_clicks_within_the_window_count_once(site: Site) -> None:
    item = site.ids["sparse"]
    path = f"/c/{token('ada', item, 'click')}"
    for _ in range(5):
        assert site.http.get(path).status_code == 302
        site.clock.now += timedelta(seconds=60)
    assert site.events() == [("ada", item, "click")]
    site.clock.now += timedelta(seconds=601)  # serve.click_window = 600 s since the last
    assert site.http.get(path).status_code == 302
    assert site.events() == [("ada", item, "click")] * 2
    # Another reader's click on the same paper is theirs: it counts.
    assert site.http.get(f"/c/{token('grace', item, 'click')}").status_code == 302
    assert site.events()[-1] == ("grace", item, "click")


def test_simultaneous_presses_of_one_link_count_once(site: Site) -> None:
    item = site.ids["gnn"]
    path = f"/c/{token('grace', item, 'click')}"
    barrier = threading.Barrier(16)
    statuses: list[int] = []

    def press() -> None:
        with httpx.Client(base_url=str(site.http.base_url), timeout=30) as client:
            barrier.wait()
            statuses.append(client.get(path).status_code)

    threads = [threading.Thread(target=press) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [302] * 16
    assert site.events() == [("grace", item, "click")]


def test_a_token_for_an_item_no_longer_stored_records_nothing(site: Site) -> None:
    for path in (f"/c/{token('ada', 'p-gone', 'click')}", f"/f/{token('ada', 'p-gone', 'more')}"):
        response = site.http.get(path)
        assert response.status_code == 404
        assert "location" not in response.headers
    assert site.events() == []


def test_a_database_locked_past_the_timeout_gets_a_retry_page_then_works_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process holds the write lock longer than the busy timeout (cut to 0.2 s
    # here from 30 s): the reader gets a page asking to retry, not a traceback.
    monkeypatch.setattr("digest.store._BUSY_SECONDS", 0.2)
    config, db, ids = make_workspace(tmp_path)
    settings = load_settings(str(config), env={"DIGEST_SECRET": SECRET})
    path = f"/c/{token('ada', ids['sparse'], 'click')}"
    with (
        LiveServer(create_app(settings)) as server,
        httpx.Client(base_url=server.base) as http,
    ):
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        busy = http.get(path)
        other.execute("ROLLBACK")
        other.close()
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "60"
        assert "try the link again" in busy.text
        assert_small_accessible_page(busy.text)
        assert http.get(path).status_code == 302
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT reader, event FROM events").fetchall() == [("ada", "click")]
    conn.close()


def test_an_unexpected_failure_gets_a_500_page_and_the_connection_is_closed(site: Site) -> None:
    with sqlite3.connect(site.db) as conn:
        conn.execute("ALTER TABLE items RENAME TO items_elsewhere")  # a broken database
    conn.close()
    response = site.http.get(f"/c/{token('ada', site.ids['sparse'], 'click')}")
    assert response.status_code == 500
    assert response.headers["connection"] == "close"
    assert "location" not in response.headers
    assert "Traceback" not in response.text and "items" not in response.text
    assert_small_accessible_page(response.text)
    assert site.http.get("/healthz").status_code == 200


# -- tokens that are not ours ----------------------------------------------------------------


def _tampered_payload(good: str) -> str:
    """The same signature on a payload naming another reader."""
    payload, signature = good.split(".")
    fields = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).split(b"\x1f")
    fields[0] = b"mallory"
    forged = base64.urlsafe_b64encode(b"\x1f".join(fields))
    return forged.decode().rstrip("=") + "." + signature


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


def _unsigned(data: list[str]) -> str:
    return base64.urlsafe_b64encode("\x1f".join(data).encode()).decode().rstrip("=")


def bad_tokens(item_id: str) -> dict[str, tuple[str, str]]:
    """name -> (route, token): every one must record nothing and get a 4xx page."""
    click = token("ada", item_id, "click")
    more = token("ada", item_id, "more")
    unsubscribe = token("ada", "", "unsubscribe")
    other = TokenSigner("another-deployments-secret-0123456789")
    return {
        "click-payload-edited": ("c", _tampered_payload(click)),
        "click-signature-flipped": ("c", _flip(click, len(click) - 5)),
        "click-payload-byte-flipped": ("c", _flip(click, 3)),
        "click-truncated-by-one": ("c", click[:-1]),
        "click-truncated-to-payload": ("c", click.split(".")[0]),
        "click-truncated-to-payload-and-dot": ("c", click.split(".")[0] + "."),
        "click-signed-with-another-secret": ("c", token("ada", item_id, "click", other)),
        "click-token-on-feedback-route": ("f", click),
        "click-token-on-unsubscribe-route": ("u", click),
        "more-token-on-click-route": ("c", more),
        "unsubscribe-token-on-click-route": ("c", unsubscribe),
        "unsubscribe-token-on-feedback-route": ("f", unsubscribe),
        "more-signed-with-another-secret": ("f", token("ada", item_id, "more", other)),
        "more-truncated": ("f", more[: len(more) // 2]),
        "unsubscribe-signed-with-another-secret": ("u", token("ada", "", "unsubscribe", other)),
        "unsubscribe-for-another-reader-edited": ("u", _tampered_payload(unsubscribe)),
        "unsubscribe-truncated": ("u", unsubscribe[:-3]),
        "unsigned-payload": ("c", _unsigned(["ada", item_id, "click", "2026-03-11"])),
        "garbage": ("c", "not-a-token"),
        "dots": ("c", "..."),
        "percent-encoded-bytes": ("c", "%ff%fe%00"),
        "non-ascii": ("u", "ünïcödé.ßignature"),
        "very-long": ("c", "A" * 5000 + "." + "B" * 43),
        "two-signatures": ("c", click + "." + click.split(".")[1]),
    }


BAD = list(bad_tokens("x"))


@pytest.mark.parametrize("name", BAD)
def test_a_token_that_is_not_ours_records_nothing_and_gets_a_4xx_page(
    site: Site, name: str
) -> None:
    route, raw = bad_tokens(site.ids["sparse"])[name]
    for method in ("GET", "POST"):
        if route == "c" and method == "POST":
            continue
        response = site.http.request(method, f"/{route}/{raw}", data={"undo": "1"})
        assert 400 <= response.status_code < 500, (method, response.status_code)
        assert "location" not in response.headers
        assert response.headers["content-type"].startswith("text/html")
        assert "<h1>" in response.text
    assert site.events() == []
    assert site.unsubscribed() == set()


# -- no open redirect -------------------------------------------------------------------------


def test_no_url_in_the_request_is_ever_redirected_to(site: Site) -> None:
    item = site.ids["sparse"]
    stored = "https://arxiv.org/abs/2603.00001"
    good = token("ada", item, "click")
    smuggled = [
        (f"/c/{good}?url=https://evil.example/&next=//evil.example&redirect=evil", {}),
        (f"/c/{good}/https://evil.example/", {}),
        (f"/c/{good}/", {"host": "evil.example"}),
        (f"/c/{good}", {"host": "evil.example", "x-forwarded-host": "evil.example"}),
        (f"//evil.example/c/{good}", {}),
        (f"/c/{good}%2F%2Fevil.example", {}),
        (f"/c/{good}@evil.example", {}),
        ("/c/https%3A%2F%2Fevil.example%2F", {}),
        ("/c/%2F%2Fevil.example", {}),
    ]
    for path, headers in smuggled:
        response = site.http.get(path, headers=headers)
        assert response.status_code in (302, 400, 404), (path, response.status_code)
        location = response.headers.get("location")
        assert location in (None, stored), (path, location)
        assert "evil" not in response.text
    assert site.events() == [("ada", item, "click")]  # the first one only: the window


UNSAFE_URLS = [
    "javascript:alert(document.cookie)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "file:///etc/passwd",
    "ftp://example.org/paper.pdf",
    "//evil.example/paper",
    "/relative/paper",
    "http:///no-host",
    "https://example.org/a\r\nSet-Cookie: stolen=1",
    "https://example.org/with space",
    "mailto:someone@example.org",
    "",
    None,
]


@pytest.mark.parametrize("url", UNSAFE_URLS, ids=repr)
def test_a_stored_url_that_is_not_http_is_never_redirected_to(site: Site, url: str | None) -> None:
    item = site.ids["unsafe"]
    set_url(site.db, item, url)
    response = site.http.get(f"/c/{token('ada', item, 'click')}")
    assert response.status_code == 404
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers
    assert site.events() == []


def test_an_item_stored_without_a_url_gets_a_page_not_a_redirect(site: Site) -> None:
    response = site.http.get(f"/c/{token('ada', site.ids['nolink'], 'click')}")
    assert response.status_code == 404
    assert "no web link" in response.text
    assert site.events() == []


# -- more / less like this --------------------------------------------------------------------


def test_more_like_this_records_a_like_and_the_button_undoes_it(site: Site) -> None:
    item = site.ids["gnn"]
    path = pick("ada", item, "more")
    page = site.http.get(path)
    assert page.status_code == 200
    assert "more papers like “Graph Neural Networks for Molecules”" in page.text
    form = parse_page(page.text).forms
    assert form == [{"method": "post", "action": path.rsplit("/", 1)[1], "button": "Undo"}]
    assert urljoin(f"https://host/digest{path}", form[0]["action"]) == f"https://host/digest{path}"
    assert site.events() == [("ada", item, "like")]
    assert site.http.get(path).status_code == 200  # a refresh: still one like
    assert site.events() == [("ada", item, "like")]

    undone = site.http.post(path, data={"undo": "1"})
    assert undone.status_code == 200
    assert "no longer counts as liked" in undone.text
    assert site.events() == []
    again = site.http.post(path, data={"undo": "1"})
    assert "nothing to undo" in again.text
    assert site.events() == []


def test_less_like_this_records_a_dislike_and_undo_takes_back_only_that(site: Site) -> None:
    item = site.ids["sparse"]
    assert site.http.get(pick("grace", item, "click")).status_code == 302
    path = pick("grace", item, "less")
    page = site.http.get(path)
    assert page.status_code == 200
    assert "fewer papers like “Sparse Attention for Long Documents”" in page.text
    assert site.events() == [("grace", item, "click"), ("grace", item, "dislike")]
    assert site.http.post(path).status_code == 200
    assert site.events() == [("grace", item, "click")]


def test_the_latest_of_more_and_less_like_this_wins(site: Site) -> None:
    item = site.ids["gnn"]
    more, less = pick("ada", item, "more"), pick("ada", item, "less")
    assert site.http.get(more).status_code == 200
    assert site.http.get(less).status_code == 200
    assert site.events() == [("ada", item, "dislike")]  # not a like (+2) and a dislike (-1)
    site.clock.now += timedelta(days=3)
    assert site.http.get(more).status_code == 200
    assert site.events() == [("ada", item, "like")]
    assert site.http.get(f"/c/{token('ada', item, 'click')}").status_code == 302
    assert site.http.get(less).status_code == 200
    assert site.events() == [("ada", item, "click"), ("ada", item, "dislike")]


def test_links_signed_one_per_action_keep_working(site: Site) -> None:
    """Digests sent before one token stood for an item's three links carry one per link."""
    item = site.ids["gnn"]
    assert site.http.get(f"/c/{token('ada', item, 'click')}").status_code == 302
    assert site.http.get(f"/f/{token('ada', item, 'less')}").status_code == 200
    assert site.events() == [("ada", item, "click"), ("ada", item, "dislike")]
    assert site.http.get(f"/f/{token('ada', item, 'more')}").status_code == 200
    assert site.events() == [("ada", item, "click"), ("ada", item, "like")]


def test_a_pick_token_does_only_what_an_items_links_do(site: Site) -> None:
    item = site.ids["gnn"]
    picked, more = token("ada", item, "pick"), token("ada", item, "more")
    for path in (f"/u/{picked}", f"/f/{picked}", f"/f/{more}/less", f"/f/{more}/more"):
        for method in ("GET", "POST"):
            response = site.http.request(method, path, data={"undo": "1"})
            assert 400 <= response.status_code < 500, (path, method, response.status_code)
    assert site.http.get(f"/c/{more}").status_code == 400
    assert site.http.get(f"/f/{picked}/unsubscribe").status_code == 404
    assert site.http.post(f"/f/{picked}/click").status_code == 404
    assert site.events() == []
    assert site.unsubscribed() == set()


def test_undo_works_for_a_week_and_no_longer(site: Site) -> None:
    item = site.ids["sparse"]
    path = f"/f/{token('ada', item, 'more')}"
    site.http.get(path)
    site.clock.now += timedelta(days=8)
    assert "nothing to undo" in site.http.post(path).text
    assert site.events() == [("ada", item, "like")]


def test_pages_escape_the_title_they_show(site: Site) -> None:
    page = site.http.get(f"/f/{token('ada', site.ids['markup'], 'less')}")
    assert page.status_code == 200
    assert "<script>" not in page.text and "<b>" not in page.text
    assert "&lt;script&gt;alert(" in page.text
    assert 'alert("x")' in parse_page(page.text).text


# -- unsubscribe ------------------------------------------------------------------------------


def test_the_unsubscribe_page_asks_and_a_get_never_unsubscribes(site: Site) -> None:
    path = f"/u/{token('ada', '', 'unsubscribe')}"
    for _ in range(3):  # mail scanners follow links, sometimes several times
        page = site.http.get(path)
        assert page.status_code == 200
        assert site.unsubscribed() == set()
    assert "Stop sending digests to ada?" in page.text
    assert parse_page(page.text).forms == [
        {"method": "post", "action": path.rsplit("/", 1)[1], "button": "Unsubscribe"}
    ]
    # Relative to the page, so a service published under a sub-path posts back to itself.
    action = parse_page(page.text).forms[0]["action"]
    assert urljoin(f"https://host/digest{path}", action) == f"https://host/digest{path}"
    assert site.http.get(path, params={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert site.unsubscribed() == set()


def test_a_one_click_post_unsubscribes(site: Site) -> None:
    # RFC 8058: the mail client POSTs exactly this body to the List-Unsubscribe URL.
    response = site.http.post(
        f"/u/{token('ada', '', 'unsubscribe')}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "ada will get no more digests" in response.text
    assert site.unsubscribed() == {"ada"}
    again = site.http.post(f"/u/{token('ada', '', 'unsubscribe')}")
    assert again.status_code == 200 and site.unsubscribed() == {"ada"}


def test_unsubscribing_holds_for_a_reader_the_database_does_not_know_yet(site: Site) -> None:
    response = site.http.post(f"/u/{token('stranger', '', 'unsubscribe')}")
    assert response.status_code == 200
    assert site.unsubscribed() == {"stranger"}


# -- private feeds ----------------------------------------------------------------------------


def write_feeds(site: Site) -> str:
    """Feed files for ada and a team; ada's private token."""
    folder = site.settings.feeds_dir()
    folder.mkdir(parents=True)
    for stem in ("ada", "grace", "team-efficiency"):
        (folder / f"{stem}.atom").write_text(f"<feed>{stem} atom</feed>\n", encoding="utf-8")
        (folder / f"{stem}.rss").write_text(f"<rss>{stem} rss</rss>\n", encoding="utf-8")
    with Store.open(site.db, create=False) as store, store.transaction():
        return store.feed_token("ada")


def test_a_feed_is_served_by_its_private_token_only(site: Site) -> None:
    feed = write_feeds(site)
    atom = site.http.get(f"/feeds/{feed}.atom")
    assert atom.status_code == 200
    assert atom.headers["content-type"].startswith("application/atom+xml")
    assert atom.text == "<feed>ada atom</feed>\n"
    rss = site.http.get(f"/feeds/{feed}.rss")
    assert rss.status_code == 200
    assert rss.headers["content-type"].startswith("application/rss+xml")
    assert rss.text == "<rss>ada rss</rss>\n"
    for path in (
        "/feeds/ada.atom", "/feeds/ada.rss", "/feeds/grace.atom", "/feeds/team-efficiency.atom",
        f"/feeds/{feed}.xml", f"/feeds/{feed}.atom.atom", f"/feeds/{feed[:-1]}.atom",
        f"/feeds/{feed}x.atom", "/feeds/.atom", f"/feeds/{'A' * len(feed)}.atom",
        f"/feeds/..%2F{feed}.atom", "/feeds/%2E%2E%2Fada.atom",
    ):  # fmt: skip
        response = site.http.get(path)
        assert response.status_code == 404, path
        assert "<feed>" not in response.text and "<rss>" not in response.text


def test_rotating_the_feed_token_retires_the_old_url(site: Site) -> None:
    old = write_feeds(site)
    assert site.http.get(f"/feeds/{old}.atom").status_code == 200
    result = run_cli(site.config, "readers", "rotate-feed-token", "ada")
    assert result.returncode == 0, result.stderr
    new = re.search(r"/feeds/([A-Za-z0-9_-]+)\.atom", result.stdout).group(1)
    assert new != old
    assert site.http.get(f"/feeds/{old}.atom").status_code == 404
    assert site.http.get(f"/feeds/{old}.rss").status_code == 404
    assert site.http.get(f"/feeds/{new}.atom").text == "<feed>ada atom</feed>\n"
    assert site.http.get(f"/feeds/{new}.rss").text == "<rss>ada rss</rss>\n"


def test_a_feed_token_is_only_made_for_a_known_reader(site: Site) -> None:
    with Store.open(site.db, create=False) as store:
        for make in (store.feed_token, store.rotate_feed_token):
            with pytest.raises(StorageError, match="unknown reader 'nobody'"):
                make("nobody")
        first = store.feed_token("grace")
        assert store.feed_token("grace") == first  # made once, then kept
        assert store.reader_for_feed_token(first) == "grace"
        assert store.reader_for_feed_token("nobody") is None


# -- pages ------------------------------------------------------------------------------------


class Page(HTMLParser):
    """What the accessibility checks need from a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.headings: list[str] = []
        self.forms: list[dict[str, str]] = []
        self.buttons: list[str] = []
        self.text = ""
        self.styles = ""
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "form":
            self.forms.append(
                {"method": dict(attrs).get("method"), "action": dict(attrs).get("action")}
            )
        if tag in ("h1", "button", "style"):
            self._open.append(tag)
            if tag == "h1":
                self.headings.append("")
            if tag == "button":
                self.buttons.append("")

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1] == tag:
            self._open.pop()
        if tag == "button" and self.forms:
            self.forms[-1]["button"] = self.buttons[-1].strip()

    def handle_data(self, data: str) -> None:
        self.text += data
        where = self._open[-1] if self._open else None
        if where == "h1":
            self.headings[-1] += data
        elif where == "button":
            self.buttons[-1] += data
        elif where == "style":
            self.styles += data


def parse_page(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def assert_small_accessible_page(html: str) -> Page:
    page = parse_page(html)
    assert html.lstrip().lower().startswith("<!doctype html>")
    root = [attrs for tag, attrs in page.tags if tag == "html"]
    assert len(root) == 1 and root[0].get("lang"), "the page must say its language"
    metas = [attrs for tag, attrs in page.tags if tag == "meta"]
    assert any(
        m.get("name") == "viewport" and "width=device-width" in (m.get("content") or "")
        for m in metas
    ), "a viewport meta, so phones do not zoom out"
    assert any(m.get("charset", "").lower() == "utf-8" for m in metas)
    assert len(page.headings) == 1 and page.headings[0].strip(), "exactly one, non-empty h1"
    assert [tag for tag, _ in page.tags].count("title") == 1
    assert all(text.strip() for text in page.buttons), "every button says what it does"
    # Nothing loaded from anywhere: no scripts, images, frames, stylesheets or fonts.
    for tag, attrs in page.tags:
        assert tag not in ("script", "img", "iframe", "link", "object", "embed"), tag
        for name in ("src", "href", "srcset", "poster", "data"):
            assert name not in attrs, (tag, name)
        if tag == "form":
            action = attrs["action"]
            assert re.fullmatch(r"[A-Za-z0-9_.-]+", action), "forms post back to the page only"
    assert "url(" not in page.styles and "@import" not in page.styles
    assert len(html.encode()) < 8_000
    return page


def test_every_page_is_small_accessible_html_with_nothing_external(site: Site) -> None:
    item = site.ids["gnn"]
    more = f"/f/{token('ada', item, 'more')}"
    unsubscribe = f"/u/{token('ada', '', 'unsubscribe')}"
    pages = {
        "more like this": site.http.get(more),
        "less like this": site.http.get(f"/f/{token('ada', item, 'less')}"),
        "undone": site.http.post(more),
        "nothing to undo": site.http.post(more),
        "unsubscribe": site.http.get(unsubscribe),
        "unsubscribed": site.http.post(unsubscribe),
        "invalid link": site.http.get("/c/garbage"),
        "no web link": site.http.get(f"/c/{token('ada', site.ids['nolink'], 'click')}"),
        "unknown item": site.http.get(f"/f/{token('ada', 'p-gone', 'more')}"),
        "unknown path": site.http.get("/nothing/here"),
        "wrong method": site.http.post(f"/c/{token('ada', item, 'click')}"),
        "unknown feed": site.http.get("/feeds/ada.atom"),
    }
    for name, response in pages.items():
        assert response.headers["content-type"] == "text/html; charset=utf-8", name
        csp = response.headers.get("content-security-policy", "")
        assert "default-src 'none'" in csp, name
        assert_small_accessible_page(response.text)
    assert pages["wrong method"].status_code == 405
    assert pages["unknown path"].status_code == 404


# -- the `digest serve` command ---------------------------------------------------------------


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a `digest` subprocess: this checkout, no inherited DIGEST_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def run_cli(
    config: Path, *args: str, secret: str | None = SECRET, **kwargs
) -> subprocess.CompletedProcess:
    env = cli_env(DIGEST_SECRET=secret) if secret else cli_env()
    return subprocess.run(
        [sys.executable, "-m", "digest.cli", "--config", str(config), *args],
        env=env, capture_output=True, text=True, timeout=600, **kwargs,
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """`digest serve --port N` as a subprocess, ready once /healthz answers.

    Its stderr goes to a file beside the config (a pipe nobody reads could fill up
    and stall the server), read back by `stop` and `log`.
    """

    def __init__(self, config: Path, secret: str = SECRET) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.stderr = config.parent / "serve-stderr.log"
        command = [sys.executable, "-m", "digest.cli", "--config", str(config), "serve"]
        with self.stderr.open("w", encoding="utf-8") as err:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)], env=cli_env(DIGEST_SECRET=secret),
                stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8")

    def __enter__(self) -> ServeProcess:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"digest serve exited: {self.log()}")
            try:
                return httpx.get(f"{self.base}/healthz", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, "digest serve to answer /healthz")
        return self

    def stop(self) -> tuple[int, str]:
        """Ctrl-C, as an operator would; the exit status and what it wrote to stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)
        return self.process.returncode, self.log()

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_the_serve_command_records_clicks_and_one_click_unsubscribes(tmp_path: Path) -> None:
    config, db, ids = make_workspace(tmp_path)
    with ServeProcess(config) as server, httpx.Client(base_url=server.base) as http:
        click = http.get(f"/c/{token('grace', ids['sparse'], 'click')}")
        assert click.status_code == 302
        assert click.headers["location"] == "https://arxiv.org/abs/2603.00001"
        assert http.get(f"/c/{_flip(token('grace', ids['gnn'], 'click'), 4)}").status_code == 400
        one_click = http.post(
            f"/u/{token('grace', '', 'unsubscribe')}", content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        assert one_click.status_code == 200
        status, err = server.stop()
    assert status == 130, err  # the CLI's exit status for Ctrl-C, after a clean shutdown
    assert err.splitlines()[-1] == "interrupted"
    assert "Traceback" not in err
    with Store.open(db, create=False) as store:
        assert [event[:3] for event in store.events()] == [("grace", ids["sparse"], "click")]
        assert store.unsubscribed() == {"grace"}


@pytest.mark.parametrize(
    "secret,setup,message",
    [
        (None, None, "error: no link secret: set $DIGEST_SECRET or links.secret_file"),
        ("too-short", None, "error: the link secret must be at least 16 characters"),
        (None, "missing-file", "cannot read the secret"),
        (None, "empty-file", "error: no link secret"),
    ],
)
def test_the_server_refuses_to_start_without_a_secret(
    tmp_path: Path, secret: str | None, setup: str | None, message: str
) -> None:
    config, _, _ = make_workspace(tmp_path)
    if setup:
        secret_file = tmp_path / "secret"
        if setup == "empty-file":
            secret_file.write_text("\n", encoding="utf-8")
        with config.open("a", encoding="utf-8") as out:
            out.write(f'[links]\nsecret_file = "{secret_file}"\n')
    result = run_cli(config, "serve", "--port", str(free_port()), secret=secret)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_the_app_cannot_be_made_without_a_secret(tmp_path: Path) -> None:
    config, _, _ = make_workspace(tmp_path)
    with pytest.raises(ConfigError, match="no link secret"):
        create_app(load_settings(str(config), env={}))


def test_a_port_already_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    config, _, _ = make_workspace(tmp_path)
    with listen("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        result = run_cli(config, "serve", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert "Traceback" not in result.stderr


# -- unsubscribing, as `digest run` and `digest profiles` see it -------------------------------


def example_config(root: Path, base_url: str) -> Path:
    """The bundled example (examples/digest.toml) with its outputs under `root`."""
    examples = ROOT / "examples"
    return write_config(
        root,
        store={"db": str(root / "example.db"), "model": str(root / "example.model")},
        readers={"profiles": str(ROOT / "profiles")},
        sources={
            "paths": [str(examples / p) for p in ("dumps", "feeds", "items")],
            "feedback": [str(examples / "feedback.csv")],
        },
        model={"epochs": 3, "update_epochs": 1, "embeddings": "off"},
        output={"dir": str(root / "out")},
        email={
            "sender": "digest <digest@example.org>",
            "list_id": "digest.example.org",
            "unsubscribe_mailbox": "unsubscribe@example.org",
        },
        wiki={"commit": False},
        links={"base_url": base_url},
    )


def unsubscribe_link(eml: Path) -> str:
    """The https link of a message's List-Unsubscribe header."""
    header = message_from_bytes(eml.read_bytes())["List-Unsubscribe"]
    return re.search(r"<(https?://[^>]+)>", header).group(1)


def email_html(eml: Path) -> str:
    """The HTML part of a delivered message, decoded."""
    message = message_from_bytes(eml.read_bytes())
    part = next(p for p in message.walk() if p.get_content_type() == "text/html")
    return part.get_payload(decode=True).decode("utf-8")


def test_the_feed_link_in_a_delivered_email_serves_that_readers_feed(tmp_path: Path) -> None:
    config = example_config(tmp_path, "http://127.0.0.1:9")
    day = run_cli(config, "run", "--date", "2026-03-11")
    assert day.returncode == 0, day.stderr
    html = email_html(tmp_path / "out" / "outbox" / "2026-03-11" / "ada.eml")
    links = set(re.findall(r"http://127\.0\.0\.1:9/feeds/[A-Za-z0-9_-]{16,}\.atom", html))
    assert len(links) == 1, links
    feed = links.pop().removeprefix("http://127.0.0.1:9")
    folder = tmp_path / "out" / "feeds"
    settings = load_settings(str(config), env={"DIGEST_SECRET": SECRET})
    with (
        LiveServer(create_app(settings)) as server,
        httpx.Client(base_url=server.base) as http,
    ):
        atom = http.get(feed)
        rss = http.get(feed.replace(".atom", ".rss"))
        by_handle = http.get("/feeds/ada.atom")
    assert atom.status_code == 200 and atom.content == (folder / "ada.atom").read_bytes()
    assert rss.status_code == 200 and rss.content == (folder / "ada.rss").read_bytes()
    assert by_handle.status_code == 404
    assert f"{feed}".encode() in atom.content  # the feed names its own private URL


def feed_self(data: bytes) -> tuple[str, str]:
    """An Atom feed's id and rel="self" link."""
    root = etree.fromstring(data)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    return root.findtext("a:id", namespaces=ns), root.find("a:link[@rel='self']", ns).get("href")


def test_a_team_feed_is_served_by_its_own_private_token(tmp_path: Path) -> None:
    config = example_config(tmp_path, "http://127.0.0.1:9")
    day = run_cli(config, "run", "--date", "2026-03-10")
    assert day.returncode == 0, day.stderr
    folder = tmp_path / "out" / "feeds"
    team_atom = (folder / "teams" / "efficiency.atom").read_bytes()
    feed_id, self_url = feed_self(team_atom)
    assert feed_id == self_url
    assert re.fullmatch(r"http://127\.0\.0\.1:9/feeds/[A-Za-z0-9_-]{16,}\.atom", self_url)
    for path in folder.rglob("*.*"):  # no feed names a path on this machine
        assert b"file:" not in path.read_bytes() and str(tmp_path).encode() not in path.read_bytes()
    old = self_url.removeprefix("http://127.0.0.1:9")
    settings = load_settings(str(config), env={"DIGEST_SECRET": SECRET})
    with (
        LiveServer(create_app(settings)) as server,
        httpx.Client(base_url=server.base) as http,
    ):
        atom, rss = http.get(old), http.get(old.replace(".atom", ".rss"))
        assert atom.status_code == 200 and atom.content == team_atom
        assert atom.headers["content-type"].startswith("application/atom+xml")
        assert rss.status_code == 200
        assert rss.content == (folder / "teams" / "efficiency.rss").read_bytes()
        assert http.get("/feeds/efficiency.atom").status_code == 404
        assert http.get("/feeds/teams/efficiency.atom").status_code == 404

        rotated = run_cli(config, "readers", "rotate-feed-token", "team:efficiency")
        assert rotated.returncode == 0, rotated.stderr
        new = re.search(r"/feeds/([A-Za-z0-9_-]+)\.atom", rotated.stdout).group(0)
        assert rotated.stdout.startswith("team:efficiency: new feed http://127.0.0.1:9/feeds/")
        assert http.get(old).status_code == 404
        assert http.get(new).content == team_atom
    # The next delivery writes the team's feed under its new name.
    again = run_cli(config, "run", "--date", "2026-03-11")
    assert again.returncode == 0, again.stderr
    assert feed_self((folder / "teams" / "efficiency.atom").read_bytes())[1].endswith(new)

    unknown = run_cli(config, "readers", "rotate-feed-token", "team:nope")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: no team 'nope' in ")
    assert "Traceback" not in unknown.stderr


def test_without_a_base_url_a_feed_is_named_by_a_tag_uri_not_a_path(tmp_path: Path) -> None:
    config = example_config(tmp_path, "")
    day = run_cli(config, "run", "--date", "2026-03-11")
    assert day.returncode == 0, day.stderr
    folder = tmp_path / "out" / "feeds"
    for name, audience in (("ada.atom", "ada"), ("teams/efficiency.atom", "team:efficiency")):
        data = (folder / name).read_bytes()
        expected = f"tag:digest.example.org,2026:feeds/{audience}.atom"
        assert feed_self(data) == (expected, expected)
        assert b"file:" not in data and str(tmp_path).encode() not in data


def profile_subscribed(config: Path, handle: str) -> bool:
    """What `digest profiles show HANDLE` says (the CLI in-process: it is asked often)."""
    shown = CliRunner().invoke(cli, ["--config", str(config), "profiles", "show", handle])
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.stdout)["subscribed"]


def test_an_unsubscribed_reader_is_skipped_from_the_next_run_until_subscribed_again(
    tmp_path: Path,
) -> None:
    config = example_config(tmp_path, "http://127.0.0.1:9")  # links are re-pointed below
    outbox = tmp_path / "out" / "outbox"
    first = run_cli(config, "run", "--date", "2026-03-10")
    assert first.returncode == 0, first.stderr
    assert {p.name for p in (outbox / "2026-03-10").iterdir()} == {
        "ada.eml",
        "grace.eml",
        "sam.eml",
    }
    assert profile_subscribed(config, "ada") is True

    link = unsubscribe_link(outbox / "2026-03-10" / "ada.eml")
    settings = load_settings(str(config), env={"DIGEST_SECRET": SECRET})
    with LiveServer(create_app(settings)) as server, httpx.Client() as http:
        url = link.replace("http://127.0.0.1:9", server.base)
        assert http.get(url).status_code == 200
        assert profile_subscribed(config, "ada") is True  # looking is not unsubscribing
        assert http.post(url, content=b"List-Unsubscribe=One-Click").status_code == 200
    assert profile_subscribed(config, "ada") is False

    second = run_cli(config, "run", "--date", "2026-03-11")
    assert second.returncode == 0, second.stderr
    assert {p.name for p in (outbox / "2026-03-11").iterdir()} == {"grace.eml", "sam.eml"}
    with Store.open(tmp_path / "example.db", create=False) as store:
        sent = store.conn.execute(
            "SELECT DISTINCT reader FROM sends WHERE digest_date = '2026-03-11'"
        ).fetchall()
    assert ("ada",) not in sent and ("grace",) in sent

    again = run_cli(config, "readers", "subscribe", "ada")
    assert again.returncode == 0 and "ada: subscribed again" in again.stdout
    assert profile_subscribed(config, "ada") is True
    third = run_cli(config, "run", "--date", "2026-03-11")
    assert third.returncode == 0, third.stderr
    assert (outbox / "2026-03-11" / "ada.eml").is_file()


# -- events while `digest run` writes the same database ---------------------------------------

READERS = 300
TOPICS = ["sparse attention", "graph neural networks", "protein folding", "robot grasping"]


def many_readers(folder: Path) -> list[str]:
    """READERS profiles, each on an email and a feed channel."""
    folder.mkdir()
    handles = [f"r{n:03d}" for n in range(READERS)]
    for n, handle in enumerate(handles):
        (folder / f"{handle}.toml").write_text(
            f'name = "Reader {n}"\nemail = "{handle}@example.org"\n'
            f'interests = ["{TOPICS[n % len(TOPICS)]}"]\ndigest_size = 5\n'
            'channels = ["email", "feed"]\n',
            encoding="utf-8",
        )
    return handles


def papers(path: Path, prefix: str, count: int) -> Path:
    """`count` papers with http URLs, spread over TOPICS, as a JSON-lines file."""
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            topic = TOPICS[n % len(TOPICS)]
            title = f"{prefix} {n}: advances in {topic}"
            abstract = f"We study {topic} ({prefix} {n}) and report results on {topic} benchmarks."
            url = f"https://example.org/{prefix}/{n}"
            out.write(json.dumps({"title": title, "abstract": abstract, "url": url}) + "\n")
    return path


def test_clicks_during_a_digest_run_are_all_recorded_once(tmp_path: Path) -> None:
    handles = many_readers(tmp_path / "profiles")
    db = tmp_path / "digest.db"
    with Store.open(db) as store:
        assert ingest(store, [str(papers(tmp_path / "old.jsonl", "old", 40))], given=DAY).new == 40
        clicked = dict(store.conn.execute("SELECT id, url FROM items").fetchall())
    config = write_config(
        tmp_path,
        store={"db": str(db), "model": str(tmp_path / "digest.model")},
        readers={"profiles": str(tmp_path / "profiles")},
        sources={"paths": [str(papers(tmp_path / "new.jsonl", "new", 200))]},
        model={"epochs": 3, "embeddings": "off"},
        output={"dir": str(tmp_path / "out")},
        links={"base_url": "https://digest.example.org"},
    )
    pairs = iter([(h, i) for i in sorted(clicked) for h in handles])
    lock = threading.Lock()
    # (reader, item, status or transport error, Location, answered while the run was going)
    sent: list[tuple[str, str, int | str, str | None, bool]] = []

    with ServeProcess(config) as server:
        run = subprocess.Popen(
            [sys.executable, "-m", "digest.cli", "--config", str(config), "run",
             "--date", "2026-03-12"],
            env=cli_env(DIGEST_SECRET=SECRET), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip

        def clicker() -> None:
            with httpx.Client(base_url=server.base, timeout=60) as http:
                while run.poll() is None or len(sent) < 500:
                    with lock:
                        reader, item = next(pairs, (None, None))
                    if reader is None:
                        return
                    try:
                        response = http.get(f"/c/{token(reader, item, 'click')}")
                        status, location = response.status_code, response.headers.get("location")
                    except httpx.TransportError as exc:
                        status, location = repr(exc), None
                    with lock:
                        sent.append((reader, item, status, location, run.poll() is None))

        threads = [threading.Thread(target=clicker) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        out, err = run.communicate(timeout=600)
        health = httpx.get(f"{server.base}/healthz").status_code
    assert run.returncode == 0, err
    assert "delivered: 300 email, 300 feed" in out
    assert health == 200
    assert len({p.name for p in (tmp_path / "out" / "outbox" / "2026-03-12").iterdir()}) == 300
    assert [s for s in sent if s[2] != 302 or s[3] != clicked[s[1]]] == []
    assert sum(1 for s in sent if s[4]) >= 100, "the clicks must land while the run is going"
    assert "Traceback" not in server.log() and "ERROR" not in server.log()
    with sqlite3.connect(db) as conn:
        recorded = conn.execute(
            "SELECT reader, item_id, count(*) FROM events WHERE event = 'click' "
            "AND origin = 'link' GROUP BY reader, item_id"
        ).fetchall()
        total = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    conn.close()
    assert {(r, i) for r, i, _ in recorded} == {(r, i) for r, i, *_ in sent}
    assert all(n == 1 for _, _, n in recorded)
    assert total == len(sent)
