"""The loop closes: what readers press in a digest changes the next day's ranking.

Day 1 is delivered by a real `digest run` (emails with tracked links); the links are
then followed over HTTP against the real service, and day 2 is run again by
`digest run` on a copy of the workspace. Every comparison is against a control:
the same day-1 workspace, the same day-2 papers, the same seed, and no feedback.

Fixtures (tests/fixtures/serve/learning): two topics told apart by their URLs
(`/graphs/...`, `/robots/...`); the reader `ada` is interested in neither. Day 0
gives two other readers a few clicks, as an imported history would.
"""

from __future__ import annotations

import base64
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest
from test_serve import SECRET, LiveServer, cli_env, email_html, write_config

from digest.ingest import ingest
from digest.serve import create_app
from digest.settings import load_settings
from digest.store import Store

LEARNING = Path(__file__).resolve().parent / "fixtures" / "serve" / "learning"
DAY0, DAY1, DAY2 = date(2026, 5, 3), date(2026, 5, 4), date(2026, 5, 5)
#: Emails carry links to this placeholder; tests point them at their live server.
BASE = "http://digest.invalid"


@dataclass(frozen=True)
class Pick:
    """One paper in a reader's day-2 digest."""

    position: int
    url: str
    score: float

    @property
    def topic(self) -> str:
        return self.url.split("/")[3]  # https://example.org/<topic>/<name>


def make_workspace(root: Path) -> Path:
    """Config, profiles, and a database holding day 0: gus's and rob's first clicks.

    Paths are relative to the config file, so a copied workspace is a workspace.
    """
    root.mkdir(parents=True)
    shutil.copytree(LEARNING / "profiles", root / "profiles")
    with Store.open(root / "digest.db") as store:
        assert ingest(store, [str(LEARNING / "day0.jsonl")], given=DAY0).new == 4
    return write_config(
        root,
        store={"db": "digest.db", "model": "digest.model"},
        readers={"profiles": "profiles"},
        sources={"feedback": [str(LEARNING / "feedback.csv")]},
        digest={"diversity": 0.0},
        model={"embeddings": "off", "epochs": 5, "update_epochs": 2, "seed": 0},
        output={"dir": "out"},
        links={"base_url": BASE},
    )


def run_day(root: Path, day: date, papers: Path) -> subprocess.Popen:
    """Ingest the day's papers, then start `digest run --date day` on the workspace."""
    with Store.open(root / "digest.db") as store:
        assert ingest(store, [str(papers)], given=day).failed == 0
    return subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "--config", str(root / "digest.toml"), "run",
         "--date", day.isoformat()],
        env=cli_env(DIGEST_SECRET=SECRET), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def finish(*runs: subprocess.Popen) -> None:
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
        assert "delivered: 3 email" in out, out


def run_day2(*roots: Path) -> None:
    """Day 2 on each workspace, side by side."""
    finish(*[run_day(root, DAY2, LEARNING / "day2.jsonl") for root in roots])


def day2_picks(root: Path, reader: str = "ada") -> list[Pick]:
    """The reader's planned day-2 digest: every day-2 paper, best first."""
    with sqlite3.connect(root / "digest.db") as conn:
        rows = conn.execute(
            "SELECT i.position, items.url, i.score FROM digest_items i "
            "JOIN digests d ON d.id = i.digest_id JOIN items ON items.id = i.item_id "
            "WHERE d.audience = ? AND d.digest_date = ? ORDER BY i.position",
            (reader, DAY2.isoformat()),
        ).fetchall()
    conn.close()
    assert len(rows) == 8, rows
    return [Pick(*row) for row in rows]


def email_links(root: Path, route: str) -> dict[str, str]:
    """Ada's day-1 email's links to `route` (c or f), by "<paper URL> <action>".

    The paper is read from each token's payload (signed, not secret), the action from
    the path: a click at /c/<token>, "more" or "less" at /f/<token>/more or /less.
    """
    body = email_html(root / "out" / "outbox" / DAY1.isoformat() / "ada.eml")
    with sqlite3.connect(root / "digest.db") as conn:
        urls = dict(conn.execute("SELECT id, url FROM items").fetchall())
    conn.close()
    out: dict[str, str] = {}
    pattern = rf"{re.escape(BASE)}/{route}/([A-Za-z0-9_.-]+)(?:/(more|less))?"
    for match in re.finditer(pattern, body):
        payload = match[1].split(".")[0]
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        reader, item_id, signed, _ = raw.decode().split("\x1f")
        assert (reader, signed) == ("ada", "pick")
        out[f"{urls[item_id]} {match[2] or 'click'}"] = match[0]
    return out


@pytest.fixture(scope="module")
def day1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace after day 1 was delivered: ada got every day-1 paper by email."""
    root = tmp_path_factory.mktemp("learning") / "day1"
    make_workspace(root)
    finish(run_day(root, DAY1, LEARNING / "day1.jsonl"))
    assert len(email_links(root, "c")) == 6
    return root


@pytest.fixture(scope="module")
def control(day1: Path) -> list[Pick]:
    """Ada's day-2 digest when she pressed nothing on day 1."""
    root = day1.parent / "control"
    shutil.copytree(day1, root)
    run_day2(root)
    return day2_picks(root)


@pytest.fixture
def copy_of_day1(day1: Path, tmp_path: Path) -> Iterator:
    """A fresh copy of the day-1 workspace per call, with its service running."""
    servers: list[LiveServer] = []

    def make(name: str) -> tuple[Path, httpx.Client]:
        root = tmp_path / name
        shutil.copytree(day1, root)
        settings = load_settings(str(root / "digest.toml"), env={"DIGEST_SECRET": SECRET})
        server = LiveServer(create_app(settings)).__enter__()
        servers.append(server)
        return root, httpx.Client(base_url=server.base, follow_redirects=False)

    yield make
    for server in servers:
        server.__exit__()


def follow(http: httpx.Client, link: str) -> httpx.Response:
    """GET an email's link on the live server."""
    return http.get(link.removeprefix(BASE))


def mean_position(picks: list[Pick], topic: str) -> float:
    positions = [p.position for p in picks if p.topic == topic]
    return sum(positions) / len(positions)


def test_the_control_ranking_does_not_already_favour_graphs(control: list[Pick]) -> None:
    # Otherwise the next test could not show a move toward graphs.
    assert [p.topic for p in control[:4]] != ["graphs"] * 4


def test_clicks_on_one_topic_move_the_next_days_ranking_toward_it(
    control: list[Pick], copy_of_day1
) -> None:
    root, http = copy_of_day1("clicked")
    clicks = {k: v for k, v in email_links(root, "c").items() if "/graphs/" in k}
    assert len(clicks) == 3
    for key, link in clicks.items():
        response = follow(http, link)
        assert response.status_code == 302
        assert response.headers["location"] == key.split()[0]
    run_day2(root)
    clicked = day2_picks(root)
    assert [p.topic for p in clicked[:4]] == ["graphs"] * 4
    assert mean_position(clicked, "graphs") < mean_position(control, "graphs")
    graphs = {p.url: p.score for p in clicked if p.topic == "graphs"}
    before = {p.url: p.score for p in control if p.topic == "graphs"}
    assert all(graphs[url] > before[url] for url in graphs), (graphs, before)


SIMILAR = "https://example.org/graphs/d2-equivariant"
PRESSED = "https://example.org/graphs/d1-message-passing"


def test_more_like_this_raises_similar_papers_and_less_like_this_lowers_them(
    control: list[Pick], copy_of_day1
) -> None:
    more_root, more_http = copy_of_day1("more")
    less_root, less_http = copy_of_day1("less")
    page = follow(more_http, email_links(more_root, "f")[f"{PRESSED} more"])
    assert page.status_code == 200 and "You will see more papers like" in page.text
    page = follow(less_http, email_links(less_root, "f")[f"{PRESSED} less"])
    assert page.status_code == 200 and "You will see fewer papers like" in page.text
    run_day2(more_root, less_root)

    def score(picks: list[Pick]) -> float:
        return next(p.score for p in picks if p.url == SIMILAR)

    def position(picks: list[Pick]) -> int:
        return next(p.position for p in picks if p.url == SIMILAR)

    more, less = day2_picks(more_root), day2_picks(less_root)
    assert score(more) > score(control) > score(less)
    assert position(more) < position(control) <= position(less)
