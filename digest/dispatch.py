"""One planned digest to each of its channels: render, deliver, record.

Each (digest, channel) delivery is recorded with its sends in one transaction, after
the output is safely written (outbox file, feed files, wiki post) or accepted by
the mail server. A re-run skips what is recorded and redoes the rest; outputs
have deterministic names, so redoing a write replaces, never duplicates.

SMTP is the one channel with a window no local step can close: a message the
server accepted just before the process died is recorded as "sending", and the
next run sends it again with the same Message-ID (mail clients show one copy).

A `DeliveryError` means a channel cannot go on in this run (a folder that cannot be
written, a mail server that cannot be reached or refuses the login): that recipient's
delivery is recorded as failed, the channel is not attempted again for the others,
and every other channel still goes out. Failed and unattempted deliveries are tried
again by the next run of the day.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path

from digest.deliver.files import write_atomically
from digest.deliver.mail import Outbox, SmtpTransport, Transport
from digest.deliver.wiki import commit_message, commit_posts, write_posts
from digest.errors import ConfigError, DeliveryError
from digest.profiles import valid_email
from digest.records import ReaderDigest, Recipient
from digest.render.bundle import RenderContext, Rendered, RenderJob, render_all
from digest.render.email import EmailSettings
from digest.render.feeds import KINDS, feed_file, feed_tag
from digest.render.links import Links
from digest.render.wiki import WikiPost, post_path
from digest.settings import ENV_SECRET, Settings
from digest.store import Store
from digest.tokens import TokenSigner

CHANNELS = ("email", "feed", "wiki")
#: Audiences written between two `flush`es (one sync and one transaction each).
BATCH = 256


@dataclass(frozen=True)
class Outcome:
    """What happened to one (audience, channel) in this run."""

    audience: str
    channel: str
    status: str  # delivered | failed | skipped | not attempted | dry-run
    detail: str = ""


@dataclass
class Dispatcher:
    """Delivers a day's digests; one per run (it holds the SMTP connection)."""

    store: Store
    settings: Settings
    day: date
    now: datetime
    dry_run: bool = False
    links: Links = field(init=False)
    posts: list[WikiPost] = field(default_factory=list)
    _transport: Transport | None = None
    #: Channels that failed for good in this run, and why.
    _down: dict[str, str] = field(default_factory=dict)
    #: Every feed file and wiki post of the run, and whose it is.
    _owners: dict[str, str] = field(default_factory=dict)
    #: Deliveries written but not yet recorded (see `flush`).
    _pending: list[dict] = field(default_factory=list)
    #: Feed folders made already: ten thousand feeds share a few folders.
    _folders: set[Path] = field(default_factory=set)
    #: Seconds spent waiting for rendered digests (the rest of a run's delivery time
    #: is writing, sending and recording).
    render_seconds: float = 0.0

    def __post_init__(self) -> None:
        secret = self.settings.secret()
        base = self.settings.links.base_url or None
        if base and not secret:
            # Without a secret every link would silently fall back to the plain item
            # URL: no clicks come back and no one-click unsubscribe works.
            raise ConfigError(
                "links.base_url is set but there is no link secret: "
                f"set ${ENV_SECRET} or links.secret_file"
            )
        self.links = Links(
            base_url=base,
            signer=TokenSigner(secret) if secret and base else None,
            unsubscribe_mailbox=self._unsubscribe_mailbox(),
        )

    def _unsubscribe_mailbox(self) -> str | None:
        """Where mailto: unsubscribe requests go: the configured mailbox, else the sender.

        Every email must carry a visible way out; a reply to the sender reaches
        whoever runs digest when no service or mailbox is configured.
        """
        configured = self.settings.email.unsubscribe_mailbox
        if configured:
            return configured
        _name, address = parseaddr(self.settings.email.sender)
        return address if "@" in address else None

    # -- the run's entry point -----------------------------------------------------------

    def deliver_all(
        self, work: Sequence[Work], progress: Callable[[int, int], None] | None = None
    ) -> Iterator[Outcome]:
        """Deliver every (digest, recipient, digest id, channels already done), in order.

        Rendering (the CPU-heavy part) runs in worker processes for a big run; writing,
        sending and recording stay here, one audience at a time, in the same order, so
        the ledger grows exactly as the outputs do.
        """
        jobs: list[RenderJob] = []
        for digest, recipient, _digest_id, done in work:
            channels, outcomes = self._channels(digest, recipient, done)
            yield from outcomes
            jobs.append(RenderJob(digest, recipient, channels))
        jobs = self._with_feeds(jobs)
        ids = {w[1].audience: w[2] for w in work}
        rendered_all = self._rendered(jobs)
        for n, (job, rendered) in enumerate(zip(jobs, rendered_all, strict=True), 1):
            yield from self._apply(job, rendered, ids[job.recipient.audience])
            if n % BATCH == 0:
                self.flush()
            if progress:
                progress(n, len(jobs))
        self.flush()

    def _rendered(self, jobs: list[RenderJob]) -> Iterator[Rendered]:
        """Every job's outputs in order, timing the wait for each (`render_seconds`)."""
        results = render_all(jobs, self.context())
        while True:
            started = time.perf_counter()
            try:
                rendered = next(results)
            except StopIteration:
                return
            finally:
                self.render_seconds += time.perf_counter() - started
            yield rendered

    def flush(self) -> None:
        """Make the batch's files durable, then record the batch's deliveries at once.

        One `sync` and one transaction per batch instead of an fsync per file and a
        transaction per delivery: a crash before this point leaves files the ledger
        does not know, and the next run writes them again under the same names.
        """
        if not self._pending:
            return
        os.sync()
        self.store.record_deliveries(self._pending)
        self._pending = []

    def _record(self, digest_id: int, channel: str, target: str, sends: list) -> None:
        self._pending.append(
            {"digest_id": digest_id, "channel": channel, "status": "delivered",
             "target": target, "sends": sends}
        )  # fmt: skip

    def _channels(
        self, digest: ReaderDigest, recipient: Recipient, done: set[str]
    ) -> tuple[tuple[str, ...], list[Outcome]]:
        """The channels to render for one audience, and the outcomes known already.

        A feed file or wiki post another audience of this run already owns fails
        instead of overwriting it; readers come before teams, so the reader keeps it.
        """
        todo, out = [], []
        if not digest.picks:
            # Nothing new for this audience today: no empty email, feed or post.
            return (), [Outcome(recipient.audience, "-", "empty", "no picks")]
        for channel in CHANNELS:
            if channel not in recipient.channels:
                continue
            clash = self._claim(channel, recipient, digest)
            if channel in done:
                if channel == "wiki":
                    self.posts.append(WikiPost(post_path(digest.day, digest.name), "",
                                               recipient.audience, digest.day))  # fmt: skip
                continue
            if clash:
                out.append(Outcome(recipient.audience, channel, "failed", clash))
            elif channel == "email" and (why := _unaddressable(recipient)):
                out.append(Outcome(recipient.audience, "email", "skipped", why))
            else:
                todo.append(channel)
        return tuple(todo), out

    def _with_feeds(self, jobs: list[RenderJob]) -> list[RenderJob]:
        """Fill in each job's feed window and feed URLs, with a few queries for all of them."""
        feeders = [j.recipient.audience for j in jobs if "feed" in j.channels]
        since = (self.day - timedelta(days=self.settings.feeds.days - 1)).isoformat()
        # Later days too: re-running an earlier day must not take newer entries out.
        windows = self.store.digests_of(feeders, since, "9999-12-31", besides=self.day.isoformat())
        tokens = self._feed_tokens([j.recipient for j in jobs])
        out = []
        for job in jobs:
            wants_url = "feed" in job.channels or "email" in job.channels
            urls = {k: self._feed_url(job.recipient, k, tokens) for k in KINDS} if wants_url else {}
            if "email" in job.channels and "feed" not in job.recipient.channels:
                urls = {}  # the email names no feed the reader does not get
            window = ()
            if "feed" in job.channels:
                window = (job.digest, *windows.get(job.recipient.audience, []))
            out.append(replace(job, feed_window=window, feed_urls=urls))
        return out

    def _feed_tokens(self, recipients: Sequence[Recipient]) -> dict[str, str]:
        """Audience -> private feed token, for every reader and team with a feed."""
        if not self.links.base_url or self.dry_run:
            return {}
        fed = [r for r in recipients if "feed" in r.channels]
        tokens = self.store.feed_tokens([r.handle for r in fed if not r.is_team])
        teams = self.store.team_feed_tokens([r.handle for r in fed if r.is_team])
        tokens.update((f"team:{name}", token) for name, token in teams.items())
        return tokens

    def _apply(self, job: RenderJob, rendered: Rendered, digest_id: int) -> Iterator[Outcome]:
        for channel in job.channels:
            yield self._channel(channel, job, rendered, digest_id)

    def context(self) -> RenderContext:
        """What every render of this run shares."""
        email = self.settings.email
        secret = self.settings.secret() if self.links.signer else None
        return RenderContext(
            sender=email.sender, list_id=email.list_id, now=self.now,
            templates=self.settings.templates(), max_html_bytes=email.max_bytes,
            base_url=self.links.base_url, secret=secret,
            unsubscribe_mailbox=self.links.unsubscribe_mailbox,
            authority=_authority(email.list_id), feed_days=self.settings.feeds.days,
        )  # fmt: skip

    def _claim(self, channel: str, recipient: Recipient, digest: ReaderDigest) -> str | None:
        """Take the run's output names of `channel` for `recipient`; why not, if taken."""
        if channel == "feed":
            names = [f"feeds/{feed_file(recipient.audience, kind)}" for kind in KINDS]
        elif channel == "wiki":
            names = [f"wiki/{post_path(digest.day, digest.name)}"]
        else:
            return None  # one outbox name per reader handle; teams get no email
        for name in names:
            owner = self._owners.setdefault(name, recipient.audience)
            if owner != recipient.audience:
                return f"{name} is {owner}'s already: rename the reader or the team"
        return None

    def _channel(self, channel: str, job: RenderJob, rendered: Rendered, digest_id: int) -> Outcome:
        audience = job.recipient.audience
        if channel in self._down:
            return Outcome(audience, channel, "not attempted", self._down[channel])
        try:
            return getattr(self, f"_{channel}")(job, rendered, digest_id)
        except DeliveryError as exc:
            reason = " ".join(str(exc).split())
            self._down[channel] = reason
            if not self.dry_run:
                # Replaces a "sending" row: that message was not accepted.
                self.store.record_delivery(digest_id, channel, "failed", detail=reason)
            return Outcome(audience, channel, "failed", reason)

    def finish(self) -> list[Outcome]:
        """Close the mail connection and commit the day's wiki posts (one commit).

        A failed commit is an outcome, not an exception: the posts are written and
        recorded, and the next run of the day commits them.
        """
        self.flush()
        if self._transport is not None:
            self._transport.close()
        if self.dry_run or not self.posts or not self.settings.wiki.commit:
            return []
        root = self.settings.wiki_dir().resolve()
        # A post delivered on an earlier run whose file is gone (the wiki folder was
        # cloned afresh, say) has nothing left to commit.
        posts = [post for post in self.posts if (root / post.path).is_file()]
        if not posts:
            return []
        paths = [root / post.path for post in posts]
        # Posts of recent days whose commit failed then (a lock, a hook) go in this one.
        since = (self.day - timedelta(days=self.settings.feeds.days)).isoformat()
        paths += [
            Path(target).resolve()
            for target in self.store.delivery_targets("wiki", since)
            if Path(target).resolve().is_file() and Path(target).resolve() not in paths
        ]
        try:
            sha = commit_posts(root, paths, commit_message(posts))
        except DeliveryError as exc:
            return [Outcome("wiki", "commit", "failed", " ".join(str(exc).split()))]
        return [Outcome("wiki", "commit", "delivered", sha)] if sha else []

    # -- email ---------------------------------------------------------------------------

    def _email(self, job: RenderJob, rendered: Rendered, digest_id: int) -> Outcome:
        recipient = job.recipient
        address = recipient.email or ""
        if rendered.email is None:
            return Outcome(recipient.audience, "email", "skipped", rendered.email_error or "")
        if self.dry_run:
            return Outcome(
                recipient.audience, "email", "dry-run", f"to {address}: {rendered.subject}"
            )
        transport = self._mail()
        if isinstance(transport, SmtpTransport):
            # Recorded before sending: if we die after the server accepts, the next run
            # knows this message's fate is unknown and sends it again (same Message-ID).
            self.store.record_delivery(digest_id, "email", "sending", target=address, attempts=0)
        result = transport.send(
            self._outbox_name(recipient), self._sender_address(), address, rendered.email
        )
        shown = job.digest.picks[: rendered.shown]
        status = "delivered" if result.delivered else "failed"
        sends = self._sends(recipient, shown, "email")
        if isinstance(transport, Outbox):
            self._record(digest_id, "email", address, sends)
        else:
            self.store.record_delivery(
                digest_id, "email", status, target=address, detail=result.detail,
                attempts=result.attempts, sends=sends,
            )  # fmt: skip
        return Outcome(recipient.audience, "email", status, result.detail)

    def email_settings(self) -> EmailSettings:
        email = self.settings.email
        return EmailSettings(
            sender=email.sender, list_id=email.list_id, links=self.links,
            templates=self.settings.templates(), max_html_bytes=email.max_bytes,
        )  # fmt: skip

    def _mail(self) -> Transport:
        if self._transport is None:
            self._transport = self._open_transport()
        return self._transport

    def _open_transport(self) -> Transport:
        if self.settings.email.transport == "outbox":
            outbox = self.settings.outbox()
            _make_folder(outbox)
            return Outbox(outbox, sync=False)  # synced a batch at a time by `flush`
        smtp = self.settings.smtp
        return SmtpTransport(
            smtp.host, smtp.port, security=smtp.security, user=self.settings.smtp_user,
            password=self.settings.smtp_password, timeout=smtp.timeout, attempts=smtp.attempts,
        )  # fmt: skip

    def _outbox_name(self, recipient: Recipient) -> str:
        return f"{self.day.isoformat()}/{recipient.handle}.eml"

    def _sender_address(self) -> str:
        from email.utils import parseaddr

        return parseaddr(self.settings.email.sender)[1] or self.settings.email.sender

    # -- feeds ---------------------------------------------------------------------------

    def _feed(self, job: RenderJob, rendered: Rendered, digest_id: int) -> Outcome:
        recipient = job.recipient
        folder = self.settings.feeds_dir()
        written = []
        for kind, body in rendered.feeds.items():
            path = folder / feed_file(recipient.audience, kind)
            if not self.dry_run:
                if path.parent not in self._folders:  # once per folder, not per file
                    _make_folder(path.parent)
                    self._folders.add(path.parent)
                _atomic_write(path, body)
            written.append(str(path))
        if self.dry_run:
            return Outcome(recipient.audience, "feed", "dry-run", ", ".join(written))
        self._record(
            digest_id, "feed", written[0], self._sends(recipient, job.digest.picks, "feed")
        )
        return Outcome(recipient.audience, "feed", "delivered", ", ".join(written))

    def _feed_url(self, recipient: Recipient, kind: str, tokens: dict[str, str]) -> str:
        """The feed's public URL on the service (by its private token), else a tag: URI.

        Without a base URL there is no public address: the feed is named by a stable
        tag URI, never by the path it is written to on this machine.
        """
        url = self.links.feed(tokens.get(recipient.audience), kind)
        return url or feed_tag(_authority(self.settings.email.list_id), recipient.audience, kind)

    # -- wiki ----------------------------------------------------------------------------

    def _wiki(self, job: RenderJob, rendered: Rendered, digest_id: int) -> Outcome:
        post = rendered.post
        assert post is not None  # rendered because the job asked for it
        root = self.settings.wiki_dir()
        if self.dry_run:
            return Outcome(job.recipient.audience, "wiki", "dry-run", str(root / post.path))
        _make_folder(root)
        write_posts(root, [post], sync=False)
        self.posts.append(post)
        sends = self._sends(job.recipient, job.digest.picks, "wiki")
        self._record(digest_id, "wiki", str(root / post.path), sends)
        return Outcome(job.recipient.audience, "wiki", "delivered", str(root / post.path))

    # -- the ledger ----------------------------------------------------------------------

    def _sends(
        self, recipient: Recipient, picks: Sequence, channel: str
    ) -> list[tuple[str, str, str, str]]:
        day = self.day.isoformat()
        return [(recipient.audience, p.item.id, channel, day) for p in picks]


#: (digest, recipient, digest id, channels already delivered): one audience's work.
Work = tuple[ReaderDigest, Recipient, int, set[str]]


def _unaddressable(recipient: Recipient) -> str | None:
    """Why a reader on the email channel cannot be emailed, if they cannot."""
    if not recipient.email:
        return "no email address (the profile has channel 'email')"
    if not valid_email(recipient.email):
        return f"{recipient.email!r} is not an address"
    return None


def _authority(list_id: str) -> str:
    """A domain for tag: ids, from the List-Id setting (`digest.localhost` by default)."""
    return list_id.strip().strip("<>").lower() or "digest.localhost"


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DeliveryError(f"{folder}: cannot create folder ({exc.strerror or exc})") from None


def _atomic_write(path: Path, body: bytes) -> None:
    """Replace a feed file at once; the batch is synced before it is recorded (`flush`)."""
    try:
        write_atomically(path, body, sync=False)
    except OSError as exc:
        raise DeliveryError(f"{path}: cannot write ({exc.strerror or exc})") from None


def utc_now() -> datetime:
    """The run's timestamp (the email Date header)."""
    return datetime.now(UTC).replace(microsecond=0)
