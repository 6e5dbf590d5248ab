"""`digest run` end to end: the daily job's guarantees, checked on real parts.

Every test builds a small site in a temporary folder (the bundled example dumps, feeds,
JSON items, feedback and reader profiles, a config file, a git repository for the wiki)
and runs the real command: in-process through click's runner, or as a real subprocess
(`python -m digest.cli`) where the process itself matters (`make run`, kill -9, progress
on a pipe). Results are read back from what a reader would get (the .eml files, the
Atom feeds, the wiki posts, what an SMTP server on loopback received) and from the
ledger in the SQLite file, and the two are checked against each other.

The model trains with `embeddings = "off"` and few epochs, so a run takes about a second.
"""

from __future__ import annotations

import asyncio
import email
import json
import os
import pty
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from email import policy
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner, Result

from digest import daily
from digest.cli import cli
from digest.dispatch import BATCH
from digest.settings import load_settings
from digest.tokens import TokenSigner

ROOT = Path(__file__).resolve().parent.parent
RUN_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "run"
DAY1, DAY2 = "2026-03-11", "2026-03-12"
SECRET = "a-test-secret-of-more-than-sixteen-characters"
#: The example readers with an email channel, and their addresses.
EMAIL_READERS = {"ada": "ada@example.org", "grace": "grace@example.org", "sam": "sam@example.org"}
FEED_AUDIENCES = {"ada", "lin", "team-efficiency"}
WIKI_AUDIENCES = {"grace", "efficiency"}
TEAMS = {"efficiency"}


@pytest.fixture(autouse=True)
def _no_digest_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own DIGEST_* variables must not leak into these runs."""
    for name in list(os.environ):
        if name.startswith("DIGEST_"):
            monkeypatch.delenv(name)


# -- a site: inputs, config, outputs and the ledger --------------------------------------------


def toml_text(config: dict[str, dict[str, Any]]) -> str:
    """A config file from {section: {key: value}} (strings, numbers, booleans, lists)."""
    lines = []
    for section, table in config.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
        lines.append("")
    return "\n".join(lines)


def base_config() -> dict[str, dict[str, Any]]:
    return {
        "store": {"db": "state/digest.db", "model": "state/digest.model"},
        "readers": {"profiles": "profiles"},
        "sources": {
            "paths": ["inputs/dumps", "inputs/feeds", "inputs/items"],
            "feedback": ["inputs/feedback.csv"],
        },
        "model": {"epochs": 3, "update_epochs": 1, "embeddings": "off"},
        "output": {"dir": "out"},
        "email": {
            "sender": "digest <digest@example.org>",
            "list_id": "digest.example.org",
            "unsubscribe_mailbox": "unsubscribe@example.org",
        },
        "links": {"base_url": "https://digest.example.org", "secret_file": "state/link-secret"},
    }


@dataclass
class Site:
    """One deployment in a temporary folder."""

    root: Path
    config: dict[str, dict[str, Any]] = field(default_factory=base_config)

    @property
    def config_path(self) -> Path:
        return self.root / "digest.toml"

    @property
    def db(self) -> Path:
        return self.root / "state" / "digest.db"

    @property
    def model(self) -> Path:
        return self.root / "state" / "digest.model"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def wiki(self) -> Path:
        return self.out / "wiki"

    def write_config(self) -> None:
        self.config_path.write_text(toml_text(self.config), encoding="utf-8")

    def set(self, section: str, **values: Any) -> None:
        self.config.setdefault(section, {}).update(values)
        self.write_config()

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """`digest --config digest.toml run ARGS` in this process."""
        return self.cli("run", *args, env=env)

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(
            cli, ["--config", str(self.config_path), *args], env=env, catch_exceptions=False
        )

    def add_reader(self, handle: str, **profile: Any) -> None:
        text = toml_text({"x": profile}).removeprefix("[x]\n")
        (self.root / "profiles" / f"{handle}.toml").write_text(text, encoding="utf-8")

    # -- the ledger, read straight from the SQLite file --

    def query(self, sql: str, *params: Any) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def deliveries(self) -> dict[tuple[str, str, str], tuple[str, int]]:
        """(audience, day, channel) -> (status, attempts)."""
        rows = self.query(
            "SELECT g.audience, g.digest_date, d.channel, d.status, d.attempts "
            "FROM deliveries d JOIN digests g ON g.id = d.digest_id"
        )
        return {(a, day, c): (s, n) for a, day, c, s, n in rows}

    def sends(self, channel: str | None = None, day: str | None = None) -> dict[str, set[str]]:
        """Audience -> item ids in the send ledger (optionally one channel or day)."""
        out: dict[str, set[str]] = {}
        for reader, item, ch, when in self.query(
            "SELECT reader, item_id, channel, digest_date FROM sends"
        ):
            if (channel is None or ch == channel) and (day is None or when == day):
                out.setdefault(reader, set()).add(item)
        return out

    def planned(self, day: str) -> dict[str, list[str]]:
        """Audience -> the item ids of its stored plan for `day`, in rank order."""
        out: dict[str, list[str]] = {}
        for audience, item in self.query(
            "SELECT g.audience, i.item_id FROM digests g JOIN digest_items i "
            "ON i.digest_id = g.id WHERE g.digest_date = ? ORDER BY g.audience, i.position",
            day,
        ):
            out.setdefault(audience, []).append(item)
        return out

    def table_rows(self, *tables: str) -> dict[str, list[tuple]]:
        return {t: sorted(self.query(f"SELECT * FROM {t}")) for t in tables}

    def item_ids_by_title(self) -> dict[str, str]:
        return {title: ident for ident, title in self.query("SELECT id, title FROM items")}

    # -- what readers got --

    def emails(self, day: str = DAY1) -> dict[str, Path]:
        folder = self.out / "outbox" / day
        return {p.stem: p for p in sorted(folder.glob("*.eml"))} if folder.is_dir() else {}

    def feeds(self) -> dict[str, Path]:
        """Feed files by reader handle, and `team-<name>` for a team's (in feeds/teams/)."""
        folder = self.out / "feeds"
        if not folder.is_dir():
            return {}
        readers = {p.stem: p for p in sorted(folder.glob("*.atom"))}
        teams = {f"team-{p.stem}": p for p in sorted(folder.glob("teams/*.atom"))}
        return {**readers, **teams}

    def wiki_posts(self) -> list[Path]:
        return sorted(p for p in self.wiki.rglob("*.md") if ".git" not in p.parts)

    def outputs(self) -> dict[str, bytes]:
        """Every file written under out/ (the wiki's .git excluded), by relative path."""
        return {
            str(p.relative_to(self.out)): p.read_bytes()
            for p in sorted(self.out.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(self.out).parts
        }

    def commits(self) -> list[str]:
        log = git(self.wiki, "log", "--format=%s", check=False)
        return log.splitlines()


def make_site(root: Path, *, wiki_repository: bool = True) -> Site:
    """The bundled examples as a deployment under `root`."""
    inputs = root / "inputs"
    inputs.mkdir(parents=True)
    for name in ("dumps", "feeds", "items"):
        shutil.copytree(ROOT / "examples" / name, inputs / name)
    shutil.copy(ROOT / "examples" / "feedback.csv", inputs / "feedback.csv")
    shutil.copytree(ROOT / "profiles", root / "profiles")
    (root / "state").mkdir()
    (root / "state" / "link-secret").write_text(SECRET + "\n", encoding="utf-8")
    site = Site(root)
    site.write_config()
    if wiki_repository:
        site.wiki.mkdir(parents=True)
        git(site.wiki, "init", "-q")
    return site


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path / "site")


def git(folder: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True)
    if check:
        assert done.returncode == 0, done.stderr
    return done.stdout


def digest_process(
    *args: str, cwd: Path, env: dict[str, str] | None = None, **options: Any
) -> subprocess.Popen:
    """`python -m digest.cli ARGS` as a real process, importing this worktree's code."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    environment.update(PYTHONPATH=str(ROOT), **(env or {}))
    streams = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    return subprocess.Popen(
        [sys.executable, "-m", "digest.cli", *args],
        cwd=cwd,
        env=environment,
        text=True,
        **(streams | options),
    )


def digest_command(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple:
    """Run `digest ARGS` to the end: (exit status, stdout, stderr)."""
    process = digest_process(*args, cwd=cwd, env=env)
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


# -- reading outputs back ----------------------------------------------------------------------

_SERVICE_TOKEN = re.compile(r"/([cfu])/([A-Za-z0-9_\-.]+)(?:/(more|less))?")
_FEED_ENTRY = re.compile(r"<id>tag:[^,<]+,(\d{4}-\d\d-\d\d):([^/<]+)/([^<]+)</id>")
_WIKI_HEADING = re.compile(r"^## \d+\. (.+)$", re.MULTILINE)


def parse_message(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def message_items(raw: bytes, reader: str) -> list[str]:
    """Item ids of a digest email, in order, from its signed "more like this" links."""
    text = parse_message(raw).get_body(("plain",)).get_content()
    signer = TokenSigner(SECRET)
    items = []
    for _path, token, choice in _SERVICE_TOKEN.findall(text):
        link = signer.verify(token)
        assert link.reader == reader
        if choice == "more":
            items.append(link.item_id)
    return items


def feed_items(path: Path) -> dict[str, list[str]]:
    """Day -> item ids of an Atom feed's entries."""
    out: dict[str, list[str]] = {}
    for day, _audience, item in _FEED_ENTRY.findall(path.read_text(encoding="utf-8")):
        out.setdefault(day, []).append(unquote(item))
    return out


def wiki_items(path: Path, by_title: dict[str, str]) -> list[str]:
    """Item ids of a wiki post, from its numbered headings (markdown unescaped)."""
    ids = []
    for heading in _WIKI_HEADING.findall(path.read_text(encoding="utf-8")):
        linked = re.fullmatch(r"\[(.*)\]\(.*\)", heading)
        title = re.sub(r"\\(.)", r"\1", linked.group(1) if linked else heading)
        ids.append(by_title[title])
    return ids


# == 1. the same day twice sends nothing twice =================================================


def test_make_run_twice_on_the_same_day_sends_nothing_twice(tmp_path: Path) -> None:
    """The bundled example exactly as `make run` runs it, twice, as real processes.

    The second run finds every digest planned and every delivery recorded: it writes no
    file (every output is byte-identical), sends nothing, commits nothing to the wiki,
    adds no ledger row and does not touch the model.
    """
    for name in ("examples", "profiles"):
        shutil.copytree(ROOT / name, tmp_path / name)
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "link-secret").write_text(SECRET, encoding="utf-8")
    (tmp_path / "out" / "wiki").mkdir(parents=True)
    git(tmp_path / "out" / "wiki", "init", "-q")
    # The example config says embeddings "auto"; the environment beats the file.
    command = ("--config", "examples/digest.toml", "run", "--date", DAY1)
    env = {"DIGEST_EMBEDDINGS": "off"}
    site = Site(tmp_path)
    site_db = tmp_path / "build" / "example.db"
    site_model = tmp_path / "build" / "example.model"

    status, first, _ = digest_command(*command, cwd=tmp_path, env=env)
    assert status == 0, first
    assert "delivered: 3 email, 3 feed, 2 wiki; 0 already delivered earlier" in first
    outputs = site.outputs()
    emails = {Path(p).stem for p in outputs if p.startswith(f"outbox/{DAY1}/")}
    feeds = {p.removeprefix("feeds/").removesuffix(".atom") for p in outputs if p.endswith(".atom")}
    posts = [p for p in outputs if p.startswith("wiki/") and p.endswith(".md")]
    assert emails == set(EMAIL_READERS)
    assert {f.replace("teams/", "team-") for f in feeds} == FEED_AUDIENCES
    assert len(posts) == len(WIKI_AUDIENCES)
    entries = sum(
        len(items) for f in feeds for items in feed_items(site.out / "feeds" / f"{f}.atom").values()
    )
    ledger = _ledger(site_db)
    assert entries > 0 and len(ledger["sends"]) > 0 and len(ledger["deliveries"]) == 8
    commits = git(tmp_path / "out" / "wiki", "log", "--format=%H").split()
    model = site_model.read_bytes()

    status, second, _ = digest_command(*command, cwd=tmp_path, env=env)
    assert status == 0, second
    assert "delivered: nothing new; 8 already delivered earlier" in second
    assert "model: not needed" in second
    assert site.outputs() == outputs
    assert _ledger(site_db) == ledger
    assert git(tmp_path / "out" / "wiki", "log", "--format=%H").split() == commits
    assert len(commits) == 1
    assert site_model.read_bytes() == model

    # The wiki folder cloned afresh: its posts are gone but recorded as delivered. A re-run
    # sends nothing again, and has no post to commit: no error.
    shutil.rmtree(tmp_path / "out" / "wiki")
    (tmp_path / "out" / "wiki").mkdir()
    git(tmp_path / "out" / "wiki", "init", "-q")
    status, third, err = digest_command(*command, cwd=tmp_path, env=env)
    assert status == 0, third + err
    assert "delivered: nothing new; 8 already delivered earlier" in third
    assert "error" not in third + err and "wiki commit" not in third


def _ledger(db: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {
            t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall())
            for t in ("sends", "deliveries", "digests", "digest_items")
        }
    finally:
        conn.close()


# == 2. no item offered twice on later days, on any channel ===================================


def received_items(site: Site, day: str) -> dict[str, dict[str, set[str]]]:
    """Audience -> channel -> item ids it got for `day`, read from the outputs alone."""
    got: dict[str, dict[str, set[str]]] = {}
    for reader, path in site.emails(day).items():
        got.setdefault(reader, {})["email"] = set(message_items(path.read_bytes(), reader))
    for stem, path in site.feeds().items():
        audience = f"team:{stem.removeprefix('team-')}" if stem.startswith("team-") else stem
        got.setdefault(audience, {})["feed"] = set(feed_items(path).get(day, []))
    by_title = site.item_ids_by_title()
    for path in site.wiki_posts():
        if path.name.startswith(day):
            name = path.stem.removeprefix(f"{day}-")
            audience = f"team:{name}" if name in TEAMS else name
            got.setdefault(audience, {})["wiki"] = set(wiki_items(path, by_title))
    return got


def test_no_item_is_offered_again_on_a_later_day_on_any_channel(site: Site) -> None:
    """Day 2's dump repeats papers of day 1, and candidates span two days (window_days = 2),
    so day 1's items are candidates again on day 2: only the ledger keeps them out.

    Checked twice over: from what readers got (emails, feeds, wiki posts) and from the
    ledger (day 2's stored plans against every send of day 1).
    """
    site.set("digest", window_days=2)
    first = site.run("--date", DAY1)
    assert first.exit_code == 0, first.output
    day1 = received_items(site, DAY1)
    assert set(day1) == set(EMAIL_READERS) | {"lin", "team:efficiency"}
    before = {row[0] for row in site.query("SELECT id FROM items")}

    shutil.copy(RUN_FIXTURES / "2026-03-12.txt", site.root / "inputs" / "dumps")
    second = site.run("--date", DAY2)
    assert second.exit_code == 0, second.output
    # The repeated papers were recognised: only the five new ones are new items.
    new = {row[0] for row in site.query("SELECT id FROM items")} - before
    assert len(new) == 5

    day2 = received_items(site, DAY2)
    sent_day1 = site.sends(day=DAY1)
    candidates = {
        r[0] for r in site.query("SELECT id FROM items WHERE first_seen IN (?, ?)", DAY1, DAY2)
    }
    for audience, channels in day2.items():
        had = set().union(*day1[audience].values())
        offered = set().union(*channels.values())
        assert offered, f"{audience} got nothing on day 2: the test would prove nothing"
        assert not offered & had, f"{audience} got again on day 2: {offered & had}"
        # The exclusion mattered: what they had on day 1 was a candidate again on day 2.
        assert had & candidates
        # The outputs agree with the ledger, channel by channel.
        for channel, items in channels.items():
            assert site.sends(channel, DAY2).get(audience, set()) == items, (audience, channel)
    for audience, picks in site.planned(DAY2).items():
        assert not set(picks) & sent_day1.get(audience, set()), audience
    # Day 2's feed still carries day 1's entries, under day 1.
    assert set(feed_items(site.feeds()["ada"])) == {DAY1, DAY2}


# == 3. kill -9 halfway through delivery; the re-run delivers the rest exactly once ===========

TOPICS = (
    "mixture of experts", "quantization", "kv cache", "retrieval-augmented generation",
    "calibration", "robot manipulation", "diffusion policy", "protein structure",
    "self-supervised learning", "world models", "speculative decoding", "benchmark",
)  # fmt: skip


def crowd_site(root: Path, readers: int) -> Site:
    """The example inputs with `readers` generated readers, each on all three channels."""
    site = make_site(root)
    shutil.rmtree(site.root / "profiles")
    (site.root / "profiles").mkdir()
    for n in range(readers):
        site.add_reader(
            f"r{n:03d}",
            name=f"Reader {n}",
            email=f"r{n:03d}@example.org",
            interests=[TOPICS[n % len(TOPICS)], TOPICS[(n * 5 + 1) % len(TOPICS)]],
            digest_size=3,
            channels=["email", "feed", "wiki"],
        )
    return site


def kill_during_delivery(site: Site, expected: int) -> int:
    """Start `digest run`, SIGKILL it once some but not all emails are written.

    Returns how many .eml files the killed run left, or -1 when the kill missed
    delivery (the run finished first, or had not started delivering).
    """
    outbox = site.out / "outbox" / DAY1
    process = digest_process(
        "--config", str(site.config_path), "run", "--date", DAY1, cwd=site.root
    )
    try:
        deadline = time.monotonic() + 90
        while process.poll() is None and time.monotonic() < deadline:
            written = len(list(outbox.glob("*.eml"))) if outbox.is_dir() else 0
            if expected // 10 <= written < expected * 9 // 10:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    if process.returncode != -signal.SIGKILL:
        return -1
    left = len(list(outbox.glob("*.eml")))
    return left if 0 < left < expected else -1


def test_a_run_killed_during_delivery_is_finished_exactly_once_by_the_next(
    tmp_path: Path,
) -> None:
    """kill -9 in the middle of delivering 200 readers (email, feed and wiki each), then run
    again: every reader ends with one email, one feed and one wiki post holding the picks
    the killed run planned, the ledger has exactly one delivery per reader and channel and
    agrees with the files, and the wiki gets one commit with every post.
    """
    readers = 200
    for attempt in range(4):
        site = crowd_site(tmp_path / f"attempt{attempt}", readers)
        left = kill_during_delivery(site, readers)
        if left > 0:
            break
    else:
        pytest.fail("four runs in a row were not killed during delivery")

    # The killed run left a partial state: every plan, some files, no commit. Deliveries
    # are recorded a batch at a time after the batch is synced, so the ledger may lag the
    # files by up to one batch (those are written again, under the same names).
    plans = site.planned(DAY1)
    assert len(plans) == readers
    delivered = site.deliveries()
    emailed = {a for (a, _, c), (s, _) in delivered.items() if c == "email" and s == "delivered"}
    assert 0 < left < readers
    assert len(emailed) <= left and left - len(emailed) <= BATCH
    assert site.commits() == []

    result = site.run("--date", DAY1)
    assert result.exit_code == 0, result.output
    assert f"planned: 0 new digest(s), {readers} already planned" in result.output
    assert site.planned(DAY1) == plans  # the re-run delivered what the killed run planned

    handles = {f"r{n:03d}" for n in range(readers)}
    emails = site.emails()
    assert set(emails) == handles
    assert set((site.out / "outbox").rglob("*.eml")) == set(emails.values())
    deliveries = site.deliveries()
    assert Counter(c for (_, _, c) in deliveries) == {"email": 200, "feed": 200, "wiki": 200}
    assert {s for s, _ in deliveries.values()} == {"delivered"}
    by_title = site.item_ids_by_title()
    posts = {p.stem.removeprefix(f"{DAY1}-"): p for p in site.wiki_posts()}
    assert set(posts) == handles
    email_sends, feed_sends = site.sends("email"), site.sends("feed")
    wiki_sends = site.sends("wiki")
    for handle in handles:
        picks = plans[handle]
        assert message_items(emails[handle].read_bytes(), handle) == picks
        assert feed_items(site.feeds()[handle]) == {DAY1: picks}
        assert wiki_items(posts[handle], by_title) == picks
        assert email_sends[handle] == feed_sends[handle] == wiki_sends[handle] == set(picks)
    # One commit holds every post, written by either run; nothing is left uncommitted.
    assert len(site.commits()) == 1
    assert len(git(site.wiki, "ls-files").split()) == readers
    assert git(site.wiki, "status", "--porcelain") == ""


# == 4. SMTP: a real server on loopback ========================================================


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps what it accepts and misbehaves on request."""

    received: list[Received] = field(default_factory=list)
    #: Replies to give instead of accepting, per command, used up in order.
    fail_next: dict[str, list[str]] = field(default_factory=dict)
    #: Recipients refused for good (550).
    refused: set[str] = field(default_factory=set)
    tries: Counter = field(default_factory=Counter)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: Keep back the reply to this message (1-based), after keeping the message,
    #: until `release` is set: the client waits, not knowing its message arrived.
    stall_at: int = 0
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def _failure(self, command: str) -> str | None:
        self.tries[command] += 1
        replies = self.fail_next.get(command)
        return replies.pop(0) if replies else None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if reply := self._failure("RCPT"):
            return reply
        if address in self.refused:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        if reply := self._failure("DATA"):
            return reply
        got = Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        self.received.append(got)
        if len(self.received) == self.stall_at:
            self.stalled.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        return f"250 2.0.0 OK queued as Q{len(self.received)}"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login, auth_data.password))
        ok = (auth_data.login, auth_data.password) == (b"digest", b"s3cret")
        return AuthResult(success=ok, handled=False)

    def by_recipient(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = {}
        for message in self.received:
            for address in message.rcpt_tos:
                out.setdefault(address, []).append(message)
        return out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    """An SMTP server on 127.0.0.1 that offers AUTH without TLS (loopback only)."""
    handler = Mailbox()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, authenticator=handler.authenticate,
        auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    yield handler, port
    handler.release.set()
    controller.stop()


def use_smtp(site: Site, port: int, **smtp: Any) -> None:
    site.set("email", transport="smtp")
    site.set("smtp", host="127.0.0.1", port=port, security="none", timeout=5, **smtp)


SMTP_LOGIN = {"DIGEST_SMTP_USER": "digest", "DIGEST_SMTP_PASSWORD": "s3cret"}


def header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def test_smtp_sends_each_email_reader_one_message_with_its_headers(
    site: Site, mailbox: tuple[Mailbox, int]
) -> None:
    server, port = mailbox
    use_smtp(site, port)
    result = site.run("--date", DAY1, env=SMTP_LOGIN)
    assert result.exit_code == 0, result.output
    assert "emails: smtp 127.0.0.1:" in result.output

    # The credentials from the environment reached the server, once (one connection).
    assert server.logins == [(b"digest", b"s3cret")]
    got = server.by_recipient()
    assert set(got) == set(EMAIL_READERS.values())
    plans, sends = site.planned(DAY1), site.sends("email")
    for reader, address in EMAIL_READERS.items():
        [message] = got[address]
        assert message.mail_from == "digest@example.org"
        parsed = parse_message(message.content)
        assert parsed["To"].addresses[0].addr_spec == address
        assert parsed["Message-ID"] == f"<digest.{DAY1}.{reader}@digest.example.org>"
        assert parsed["List-Id"] == "<digest.example.org>"
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # List-Unsubscribe is one unfolded line: the signed URL, then the mailto.
        [unsubscribe] = [
            h for h in header_lines(message.content) if h.startswith(b"List-Unsubscribe:")
        ]
        assert re.fullmatch(
            rb"List-Unsubscribe: <https://digest\.example\.org/u/[\w.\-]+>, "
            rb"<mailto:unsubscribe@example\.org\?subject=unsubscribe%20" + reader.encode() + b">",
            unsubscribe,
        )
        items = message_items(message.content, reader)
        assert items == plans[reader] and set(items) == sends[reader]
    assert {k: v for k, v in site.deliveries().items() if k[2] == "email"} == {
        (reader, DAY1, "email"): ("delivered", 1) for reader in EMAIL_READERS
    }
    assert not (site.out / "outbox").exists()


def test_smtp_temporary_failure_is_retried_within_the_run(
    site: Site, mailbox: tuple[Mailbox, int]
) -> None:
    server, port = mailbox
    use_smtp(site, port)
    server.fail_next["RCPT"] = ["451 4.7.1 greylisted, try again later"]  # ada is first
    result = site.run("--date", DAY1)
    assert result.exit_code == 0, result.output
    assert {a: len(m) for a, m in server.by_recipient().items()} == dict.fromkeys(
        EMAIL_READERS.values(), 1
    )
    assert server.tries["RCPT"] == 4
    assert site.deliveries()[("ada", DAY1, "email")] == ("delivered", 2)
    assert site.deliveries()[("grace", DAY1, "email")] == ("delivered", 1)


def test_smtp_permanent_failure_fails_that_reader_only_and_is_retried_next_run(
    site: Site, mailbox: tuple[Mailbox, int]
) -> None:
    """A 550 for grace: the others get theirs, grace's delivery is recorded as failed, the
    run exits 1 naming grace and the server's reply, and nothing of grace's is in the
    ledger (so her items stay offerable).

    Decision: a failed delivery, permanent or not, is tried again by every later run of
    that day, to the address the profile holds *then*: a demanding user fixes the address
    and runs again, and only grace's message goes out. An unfixed address just fails
    again, reported the same way (a permanent failure is not a reason to stop trying).
    """
    server, port = mailbox
    use_smtp(site, port)
    server.refused.add("grace@example.org")
    first = site.run("--date", DAY1)
    assert first.exit_code == 1
    assert (
        "error: grace: email failed: 550 5.1.1 <grace@example.org>: mailbox unavailable"
        in first.stderr
    )
    assert "failed: 1: grace (email) (see the error lines above)" in first.stdout
    assert set(server.by_recipient()) == {"ada@example.org", "sam@example.org"}
    assert site.deliveries()[("grace", DAY1, "email")] == ("failed", 1)
    assert "grace" not in site.sends("email")
    # Grace's other channel went out regardless.
    assert site.deliveries()[("grace", DAY1, "wiki")] == ("delivered", 1)

    again = site.run("--date", DAY1)
    assert again.exit_code == 1
    assert "grace: email failed: 550" in again.stderr
    assert len(server.received) == 2  # nobody else was sent anything again
    assert site.deliveries()[("grace", DAY1, "email")] == ("failed", 2)

    site.add_reader(
        "grace", name="Grace Sample", email="grace@new.example.org",
        interests=["retrieval-augmented generation", "calibration", "question answering"],
        digest_size=5, channels=["email", "wiki"], teams=["efficiency"],
    )  # fmt: skip
    fixed = site.run("--date", DAY1)
    assert fixed.exit_code == 0, fixed.output
    assert "delivered: 1 email; 7 already delivered earlier" in fixed.stdout
    assert [m.rcpt_tos for m in server.received[2:]] == [["grace@new.example.org"]]
    assert message_items(server.received[2].content, "grace") == site.planned(DAY1)["grace"]
    assert site.deliveries()[("grace", DAY1, "email")] == ("delivered", 3)
    assert site.query(
        "SELECT target FROM deliveries d JOIN digests g ON g.id = d.digest_id "
        "WHERE g.audience = 'grace' AND d.channel = 'email'"
    ) == [("grace@new.example.org",)]


def test_unreachable_mail_server_fails_the_email_but_feeds_and_wiki_go_out(
    site: Site, mailbox: tuple[Mailbox, int]
) -> None:
    """A server that cannot be reached fails every email the same way: the run says so
    once, stops trying email, still delivers the other channels, and exits 1. The next
    run, with the server back, sends the emails and nothing else.
    """
    server, port = mailbox
    use_smtp(site, free_port(), attempts=1)  # nothing listens on that port
    down = site.run("--date", DAY1)
    assert down.exit_code == 1
    errors = [line for line in down.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ada: email failed: smtp: cannot reach 127.0.0.1:" in errors[0]
    assert "not attempted: 2 email" in down.stdout
    delivered = {k for k, (s, _) in site.deliveries().items() if s == "delivered"}
    assert {c for (_, _, c) in delivered} == {"feed", "wiki"} and len(delivered) == 5
    assert not site.sends("email")

    use_smtp(site, port)
    back = site.run("--date", DAY1)
    assert back.exit_code == 0, back.output
    assert "delivered: 3 email; 5 already delivered earlier" in back.stdout
    assert sorted(server.by_recipient()) == sorted(EMAIL_READERS.values())


def test_a_refused_login_is_one_error_and_the_next_run_sends_everything(
    site: Site, mailbox: tuple[Mailbox, int]
) -> None:
    server, port = mailbox
    use_smtp(site, port)
    refused = site.run("--date", DAY1, env={**SMTP_LOGIN, "DIGEST_SMTP_PASSWORD": "wrong"})
    assert refused.exit_code == 1
    [error] = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert "ada: email failed: smtp: 127.0.0.1:" in error
    assert "refused the login of 'digest'" in error and "wrong" not in error
    # One session tried (smtplib tries each mechanism offered, PLAIN and LOGIN), not one
    # per reader: three readers would make six.
    assert server.logins == [(b"digest", b"wrong")] * 2
    assert server.received == []

    ok = site.run("--date", DAY1, env=SMTP_LOGIN)
    assert ok.exit_code == 0, ok.output
    assert "delivered: 3 email; 5 already delivered earlier" in ok.stdout
    assert len(server.received) == 3


def test_a_kill_while_the_server_holds_a_message_resends_that_message_only(
    site: Site, mailbox: tuple[Mailbox, int]
) -> None:
    """The one window no local step can close: the server has a message but the process
    dies before it hears "250". The ledger says "sending", so the next run sends that one
    message again, with the same Message-ID (mail clients show one copy); nobody else gets
    a second one. Meanwhile, a second run refuses to start: it would send the same mail.
    """
    server, port = mailbox
    use_smtp(site, port)
    server.stall_at = 2  # ada, then grace: grace's message is kept without a reply
    process = digest_process(
        "--config", str(site.config_path), "run", "--date", DAY1, cwd=site.root
    )
    try:
        assert server.stalled.wait(60), process.communicate()
        assert site.deliveries()[("ada", DAY1, "email")][0] == "delivered"
        assert site.deliveries()[("grace", DAY1, "email")][0] == "sending"
        rival = site.run("--date", DAY1)
        assert rival.exit_code == 1
        assert "another 'digest run' is running" in rival.stderr
        assert len(server.received) == 2
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.communicate()
        server.release.set()

    result = site.run("--date", DAY1)
    assert result.exit_code == 0, result.output
    got = server.by_recipient()
    assert {a: len(m) for a, m in got.items()} == {
        "ada@example.org": 1, "grace@example.org": 2, "sam@example.org": 1,
    }  # fmt: skip
    first, again = (parse_message(m.content) for m in got["grace@example.org"])
    assert first["Message-ID"] == again["Message-ID"]
    assert first.get_body(("plain",)).get_content() == again.get_body(("plain",)).get_content()
    assert {s for s, _ in site.deliveries().values()} == {"delivered"}


# == 5. an invalid email address ==============================================================


def test_a_reader_with_an_invalid_address_is_reported_and_the_others_get_theirs(
    site: Site,
) -> None:
    """Decision: a profile whose email is not an address is an invalid profile. The run
    warns naming the file and key, skips that reader on every channel (their mutes cannot
    be trusted either), delivers everyone else, names the reader in the summary and exits 1
    so that cron reports it. A reader on the email channel with no address at all gets
    their other channels and an error line; that is a failure (exit 1) too. An address
    no mail header can carry as it is ("dot..dot@...") fails the profile rule itself, so
    `profiles check` and the run agree.
    """
    site.add_reader(
        "bob", name="Bob", email="bob(at)example.org", interests=["quantization"],
        channels=["email", "feed"],
    )  # fmt: skip
    site.add_reader("cy", name="Cy", interests=["world models"], channels=["email", "feed"])
    # No RFC 5322 address: the profile rule refuses it, as the email header would.
    site.add_reader(
        "dot", name="Dot", email="dot..dot@example.org", interests=["calibration"],
        channels=["email", "feed"],
    )  # fmt: skip
    result = site.run("--date", DAY1)
    assert result.exit_code == 1
    bob = site.root / "profiles" / "bob.toml"
    assert f"warning: {bob}: key 'email': 'bob(at)example.org' is not an email address" in (
        result.stderr
    )
    assert f"skipped: bob (invalid profile {bob})" in result.stdout
    assert "error: cy: email skipped: no email address (the profile has channel 'email')" in (
        result.stderr
    )
    dot = site.root / "profiles" / "dot.toml"
    assert f"warning: {dot}: key 'email': 'dot..dot@example.org' is not an email address" in (
        result.stderr
    )
    assert "Traceback" not in result.output
    assert set(site.emails()) == set(EMAIL_READERS)
    assert "dot" not in site.feeds() and "dot" not in site.planned(DAY1)
    assert "bob" not in site.feeds() and "bob" not in site.planned(DAY1)
    assert site.deliveries()[("cy", DAY1, "feed")] == ("delivered", 1)
    assert ("cy", DAY1, "email") not in site.deliveries()


# == 6. --dry-run, --only and preview =========================================================


def state_of(site: Site) -> dict[str, Any]:
    """Everything a run could change: the ledger and items, the model, every output."""
    tables = ("items", "sends", "deliveries", "digests", "digest_items", "events", "readers")
    return {
        "rows": site.table_rows(*tables) if site.db.exists() else None,
        "model": site.model.read_bytes() if site.model.exists() else None,
        "outputs": site.outputs() if site.out.exists() else {},
        "commits": site.commits(),
    }


def test_dry_run_writes_and_records_nothing_but_says_what_would_go_out(site: Site) -> None:
    """A dry run ingests, trains and ranks on a scratch copy of the database in memory:
    its report is what a real run would do, and nothing on disk changes, not even on a
    first run (no database, no model, no output yet).
    """
    fresh = site.run("--date", DAY1, "--dry-run")
    assert fresh.exit_code == 0, fresh.output
    assert "dry run: nothing written" in fresh.stdout
    assert "ingest: 5 file(s), 14 new item(s)" in fresh.stdout
    assert "3 email (dry-run), 3 feed (dry-run), 2 wiki (dry-run)" in fresh.stdout
    assert "would send ada: email to ada@example.org" in fresh.stdout
    assert not site.db.exists() and not site.model.exists()
    assert site.outputs() == {} and site.commits() == []
    assert [p.name for p in (site.root / "state").iterdir()] == ["link-secret"]

    assert site.run("--date", DAY1).exit_code == 0
    shutil.copy(RUN_FIXTURES / "2026-03-12.txt", site.root / "inputs" / "dumps")
    before = state_of(site)
    dry = site.run("--date", DAY2, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "5 new item(s)" in dry.stdout  # day 2's dump, ingested into the copy only
    assert "3 email (dry-run)" in dry.stdout
    assert state_of(site) == before
    # ...and a real run then does what the dry run said.
    real = site.run("--date", DAY2)
    assert "delivered: 3 email, 3 feed, 2 wiki" in real.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"garbage" * 1000, "not a usable digest database"),
        (None, "an SQLite database digest did not create"),
    ],
    ids=["not-sqlite", "foreign-sqlite"],
)
def test_dry_run_on_a_file_that_is_no_digest_database_is_one_line_and_no_change(
    site: Site, content: bytes | None, message: str
) -> None:
    if content is None:
        conn = sqlite3.connect(site.db)
        conn.execute("CREATE TABLE theirs (x)")
        conn.commit()
        conn.close()
    else:
        site.db.write_bytes(content)
    before = site.db.read_bytes()
    for args in (("--dry-run",), ()):
        result = site.run("--date", DAY1, *args)
        assert result.exit_code == 1
        assert result.stderr.splitlines()[-1].startswith(f"error: {site.db}: {message}")
        assert site.db.read_bytes() == before


def test_only_delivers_to_that_reader(site: Site) -> None:
    only = site.run("--date", DAY1, "--only", "ada")
    assert only.exit_code == 0, only.output
    assert set(site.emails()) == {"ada"} and set(site.feeds()) == {"ada"}
    assert site.wiki_posts() == []
    assert set(site.planned(DAY1)) == {"ada"}
    assert set(site.deliveries()) == {("ada", DAY1, "email"), ("ada", DAY1, "feed")}
    ada = site.emails()["ada"].read_bytes()

    everyone = site.run("--date", DAY1)
    assert everyone.exit_code == 0, everyone.output
    assert "delivered: 2 email, 2 feed, 2 wiki; 2 already delivered earlier" in everyone.stdout
    assert site.emails()["ada"].read_bytes() == ada


def test_preview_writes_html_and_text_sends_and_records_nothing(site: Site) -> None:
    assert site.run("--date", DAY1, "--only", "ada").exit_code == 0
    before = state_of(site)

    shown = site.cli("preview", "--user", "ada", "--date", DAY1)
    assert shown.exit_code == 0, shown.output
    html, text = (Path(line) for line in shown.stdout.split())
    assert (html, text) == (
        site.out / "preview" / f"ada-{DAY1}.html", site.out / "preview" / f"ada-{DAY1}.txt"
    )  # fmt: skip
    assert html.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    titles = dict((v, k) for k, v in site.item_ids_by_title().items())
    plan = site.planned(DAY1)["ada"]
    assert titles[plan[0]] in text.read_text(encoding="utf-8")  # the planned picks

    # grace has no plan yet: her preview is ranked with the saved model, and not stored.
    other = site.cli("preview", "--user", "grace", "--date", DAY1)
    assert other.exit_code == 0, other.output
    after = state_of(site)
    for name in (f"preview/ada-{DAY1}.html", f"preview/ada-{DAY1}.txt"):
        after["outputs"].pop(name)
    for name in (f"preview/grace-{DAY1}.html", f"preview/grace-{DAY1}.txt"):
        after["outputs"].pop(name)
    assert after == before


# == 8. progress without a terminal ===========================================================


def test_progress_on_a_pipe_is_plain_lines_and_failures_one_line(
    site: Site, tmp_path: Path
) -> None:
    """cron gets plain "stage: done/total" lines on stderr, and an error is one line."""
    status, out, err = digest_command(
        "--config", str(site.config_path), "run", "--date", DAY1, cwd=site.root
    )
    assert status == 0, err
    lines = err.splitlines()
    assert lines and all(re.fullmatch(r"(ingest|model|rank|deliver): .+", line) for line in lines)
    files = len([p for p in (site.root / "inputs").rglob("*") if p.is_file()]) - 1  # feedback
    assert lines[0] == f"ingest: 0/{files}" and f"ingest: {files}/{files}" in lines
    assert lines.index("model: training: 0/1") < lines.index("model: training: 1/1")
    assert "deliver: 5/5" in lines
    assert "\x1b" not in err + out  # no terminal control sequences
    assert out.startswith(f"digest for {DAY1}\n")

    broken = make_site(tmp_path / "broken")
    use_smtp(broken, free_port(), attempts=1)
    status, out, err = digest_command(
        "--config", str(broken.config_path), "run", "--date", DAY1, cwd=broken.root
    )
    assert status == 1
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        next(line for line in err.splitlines() if "cannot reach" in line)
    ]


def test_progress_on_a_terminal_is_a_bar(site: Site) -> None:
    """Under a pseudo-terminal `digest run` draws a progress bar, not log lines."""
    main, child = pty.openpty()
    try:
        process = digest_process(
            "--config", str(site.config_path), "run", "--date", DAY1, cwd=site.root,
            env={"TERM": "xterm-256color", "COLUMNS": "100"}, stdout=child, stderr=child,
        )  # fmt: skip
    finally:
        os.close(child)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    assert process.wait(timeout=120) == 0, shown.decode(errors="replace")
    screen = shown.decode("utf-8", errors="replace")
    assert "\x1b[" in screen  # drawn with terminal control sequences
    assert "━" in screen  # the bar itself
    for stage in ("ingest", "model: training", "rank", "deliver"):
        assert stage in screen, stage
    assert not re.search(r"^(ingest|rank|deliver): \d+/\d+\r?$", screen, re.MULTILINE)
    assert f"digest for {DAY1}" in screen  # then the summary


def test_the_model_update_reports_embedding_and_training(site: Site) -> None:
    """Sentence vectors of new items are counted as they are stored, then training ends."""
    site.set("model", embeddings="on")
    calls: list[tuple[str, int, int]] = []
    report = daily.run(
        load_settings(str(site.config_path)), day=date.fromisoformat(DAY1),
        progress=lambda *call: calls.append(call),
    )  # fmt: skip
    assert report.ok, report.failures
    model = [c for c in calls if c[0].startswith("model")]
    assert model[0] == (daily.TRAINING, 0, 1) and model[-1] == (daily.TRAINING, 1, 1)
    embedding = [c for c in model if c[0] == daily.EMBEDDING]
    items = site.query("SELECT count(*) FROM items")[0][0]
    assert embedding[0] == (daily.EMBEDDING, 0, items)
    assert embedding[-1] == (daily.EMBEDDING, items, items)
    assert [done for _, done, _ in embedding] == sorted(done for _, done, _ in embedding)
    # Every stage is timed once: the model update is not also counted as ranking.
    assert set(report.seconds) == {"ingest", "model", "rank", "render", "deliver"}
    assert all(seconds >= 0 for seconds in report.seconds.values())


def test_preview_to_a_named_file(site: Site, tmp_path: Path) -> None:
    assert site.run("--date", DAY1, "--only", "sam").exit_code == 0
    target = tmp_path / "elsewhere" / "sam.txt"
    shown = site.cli("preview", "--user", "SAM", "--date", DAY1, "--out", str(target))
    assert shown.exit_code == 0, shown.output
    html, text = (Path(line) for line in shown.stdout.split())
    assert (html, text) == (target, tmp_path / "elsewhere" / "sam.txt.txt")
    assert "<html" in html.read_text(encoding="utf-8").lower()
    assert "<html" not in text.read_text(encoding="utf-8").lower()

    blocked = tmp_path / "file"
    blocked.write_text("", encoding="utf-8")
    refused = site.cli("preview", "--user", "sam", "--date", DAY1, "--out", f"{blocked}/x.html")
    assert refused.exit_code == 1
    assert refused.stderr.startswith(f"error: {blocked}/x.html: cannot write")


def test_a_base_url_without_a_link_secret_is_refused_before_anything_goes_out(
    site: Site,
) -> None:
    """Tracked links need the secret; without it, plain links would go out unannounced."""
    site.set("links", base_url="https://digest.example.org", secret_file="")
    refused = site.run("--date", DAY1)
    assert refused.exit_code == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: links.base_url is set but there is no link secret: "
        "set $DIGEST_SECRET or links.secret_file"
    ]
    assert "Traceback" not in refused.output
    assert not list(site.out.rglob("*.eml"))

    site.set("links", base_url="")
    assert site.run("--date", DAY1).exit_code == 0
    assert list(site.out.rglob("*.eml"))


def test_flags_override_the_config_for_one_run(site: Site, tmp_path: Path) -> None:
    """--templates, --out-dir and --base-url win over digest.toml, for this run only."""
    templates = tmp_path / "mine"
    templates.mkdir()
    bundled = (ROOT / "templates" / "email.txt.j2").read_text(encoding="utf-8")
    (templates / "email.txt.j2").write_text("HOUSE STYLE\n" + bundled, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    done = site.run("--date", DAY1, "--out-dir", str(elsewhere), "--templates", str(templates))
    assert done.exit_code == 0, done.output
    mails = list((elsewhere / "outbox").rglob("*.eml"))
    assert len(mails) == len(EMAIL_READERS)
    assert not list(site.out.rglob("*.eml"))
    assert all(b"HOUSE STYLE" in mail.read_bytes() for mail in mails)

    shown = site.cli(
        "preview", "--user", "sam", "--date", DAY1, "--templates", str(templates),
        "--out-dir", str(elsewhere), "--base-url", "https://links.example.net",
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    html, text = (Path(line) for line in shown.stdout.split())
    assert html.is_relative_to(elsewhere)
    assert text.read_text(encoding="utf-8").startswith("HOUSE STYLE\n")
    assert "https://links.example.net/c/" in html.read_text(encoding="utf-8")

    bad = site.run("--date", DAY2, "--embeddings", "sometimes")
    assert bad.exit_code == 1
    assert "model.embeddings" in bad.stderr and "Traceback" not in bad.output


def test_without_a_service_or_mailbox_the_way_out_is_a_mail_to_the_sender(site: Site) -> None:
    """Every email carries a visible unsubscribe link, whatever is configured."""
    site.set("links", base_url="", secret_file="")
    site.set("email", unsubscribe_mailbox="")
    assert site.run("--date", DAY1).exit_code == 0
    mails = site.emails()
    assert set(mails) == set(EMAIL_READERS)
    for reader, path in mails.items():
        message = parse_message(path.read_bytes())
        mailto = f"mailto:digest@example.org?subject=unsubscribe%20{reader}"
        assert message["List-Unsubscribe"] == f"<{mailto}>"
        assert "List-Unsubscribe-Post" not in message
        html = message.get_body(("html",)).get_content()
        assert f'href="{mailto}"' in html
        assert "Unsubscribe" in html or "unsubscribe" in html


def test_a_model_path_that_cannot_be_written_fails_before_anything_runs(site: Site) -> None:
    (site.root / "state" / "digest.model").mkdir(parents=True)  # a folder in the way
    refused = site.run("--date", DAY1)
    assert refused.exit_code == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "digest.model: cannot write" in errors[0]
    assert not site.db.exists(), "nothing ingested, nothing trained"
    assert not list(site.out.rglob("*.eml"))
