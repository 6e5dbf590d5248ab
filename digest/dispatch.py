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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from digest.deliver.mail import Outbox, SmtpTransport, Transport
from digest.deliver.wiki import commit_message, commit_posts, write_posts
from digest.errors import DeliveryError
from digest.profiles import valid_email
from digest.records import ReaderDigest, Recipient
from digest.render.email import EmailSettings, render_email
from digest.render.feeds import FeedSettings, render_feed
from digest.render.links import Links
from digest.render.wiki import WikiPost, post_path, render_post
from digest.settings import Settings
from digest.store import Store
from digest.tokens import TokenSigner

CHANNELS = ("email", "feed", "wiki")


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

    def __post_init__(self) -> None:
        secret = self.settings.secret()
        base = self.settings.links.base_url or None
        self.links = Links(
            base_url=base,
            signer=TokenSigner(secret) if secret and base else None,
            unsubscribe_mailbox=self.settings.email.unsubscribe_mailbox or None,
        )

    # -- the per-audience entry point ---------------------------------------------------

    def deliver(
        self, digest: ReaderDigest, recipient: Recipient, digest_id: int, done: set[str]
    ) -> list[Outcome]:
        """Every channel of `recipient` not yet in `done`, in a fixed order.

        A feed file or wiki post another audience of this run already owns (reader
        `efficiency` and team `efficiency` share a post name) fails instead of
        overwriting it; readers come before teams, so the reader keeps it.
        """
        out = []
        for channel in CHANNELS:
            if channel not in recipient.channels:
                continue
            clash = self._claim(channel, recipient, digest)
            if channel in done:
                continue
            if clash:
                out.append(Outcome(recipient.audience, channel, "failed", clash))
            else:
                out.append(self._channel(channel, digest, recipient, digest_id))
        return out

    def _claim(self, channel: str, recipient: Recipient, digest: ReaderDigest) -> str | None:
        """Take the run's output names of `channel` for `recipient`; why not, if taken."""
        if channel == "feed":
            names = [f"feeds/{_file_stem(recipient)}.{kind}" for kind in ("atom", "rss")]
        elif channel == "wiki":
            names = [f"wiki/{post_path(digest.day, digest.name)}"]
        else:
            return None  # one outbox name per reader handle; teams get no email
        for name in names:
            owner = self._owners.setdefault(name, recipient.audience)
            if owner != recipient.audience:
                return f"{name} is {owner}'s already: rename the reader or the team"
        return None

    def _channel(
        self, channel: str, digest: ReaderDigest, recipient: Recipient, digest_id: int
    ) -> Outcome:
        if channel in self._down:
            return Outcome(recipient.audience, channel, "not attempted", self._down[channel])
        try:
            return getattr(self, f"_{channel}")(digest, recipient, digest_id)
        except DeliveryError as exc:
            reason = " ".join(str(exc).split())
            self._down[channel] = reason
            if not self.dry_run:
                # Replaces a "sending" row: that message was not accepted.
                self.store.record_delivery(digest_id, channel, "failed", detail=reason)
            return Outcome(recipient.audience, channel, "failed", reason)

    def finish(self) -> list[Outcome]:
        """Close the mail connection and commit the day's wiki posts (one commit).

        A failed commit is an outcome, not an exception: the posts are written and
        recorded, and the next run of the day commits them.
        """
        if self._transport is not None:
            self._transport.close()
        if self.dry_run or not self.posts or not self.settings.wiki.commit:
            return []
        root = self.settings.wiki_dir().resolve()
        paths = [root / post.path for post in self.posts]
        # Posts of recent days whose commit failed then (a lock, a hook) go in this one.
        since = (self.day - timedelta(days=self.settings.feeds.days)).isoformat()
        paths += [
            Path(target).resolve()
            for target in self.store.delivery_targets("wiki", since)
            if Path(target).resolve().is_file() and Path(target).resolve() not in paths
        ]
        try:
            sha = commit_posts(root, paths, commit_message(self.posts))
        except DeliveryError as exc:
            return [Outcome("wiki", "commit", "failed", " ".join(str(exc).split()))]
        return [Outcome("wiki", "commit", "delivered", sha)] if sha else []

    # -- email ---------------------------------------------------------------------------

    def _email(self, digest: ReaderDigest, recipient: Recipient, digest_id: int) -> Outcome:
        address = recipient.email
        if not address:
            why = "no email address (the profile has channel 'email')"
            return Outcome(recipient.audience, "email", "skipped", why)
        if not valid_email(address):
            return Outcome(recipient.audience, "email", "skipped", f"{address!r} is not an address")
        feed_url = self._feed_url(recipient, "atom") if "feed" in recipient.channels else None
        try:
            rendered = render_email(
                digest, recipient, self.email_settings(), now=self.now, feed_url=feed_url
            )
            message = rendered.as_bytes()
        except ValueError as exc:
            # An address the profile rule lets through but RFC 5322 does not ("a..b@x.org",
            # a non-ASCII local part): that reader's email only, not the whole run.
            return Outcome(recipient.audience, "email", "skipped", str(exc))
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
            self._outbox_name(recipient), self._sender_address(), address, message
        )
        shown = digest.picks[: rendered.shown]
        status = "delivered" if result.delivered else "failed"
        self.store.record_delivery(
            digest_id, "email", status, target=address, detail=result.detail,
            attempts=result.attempts, sends=self._sends(recipient, shown, "email"),
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
            return Outbox(outbox)
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

    def _feed(self, digest: ReaderDigest, recipient: Recipient, digest_id: int) -> Outcome:
        days = self.settings.feeds.days
        since = (self.day - timedelta(days=days - 1)).isoformat()
        # Later days too: re-running an earlier day must not take newer entries out
        # (render_feed keeps the newest `days` days of what it is given).
        ids = self.store.recent_digests(recipient.audience, since, "9999-12-31")
        history = [d for d in self.store.digests(ids).values() if d.day != self.day]
        window = [digest, *history]
        folder = self.settings.feeds_dir()
        written = []
        for kind in ("atom", "rss"):
            body = render_feed(window, self._feed_settings(recipient, kind), kind=kind)
            path = folder / f"{_file_stem(recipient)}.{kind}"
            if not self.dry_run:
                _make_folder(path.parent)
                _atomic_write(path, body)
            written.append(str(path))
        if self.dry_run:
            return Outcome(recipient.audience, "feed", "dry-run", ", ".join(written))
        self.store.record_delivery(
            digest_id, "feed", "delivered", target=written[0],
            sends=self._sends(recipient, digest.picks, "feed"),
        )  # fmt: skip
        return Outcome(recipient.audience, "feed", "delivered", ", ".join(written))

    def _feed_settings(self, recipient: Recipient, kind: str) -> FeedSettings:
        who = "team " + recipient.handle if recipient.is_team else recipient.handle
        return FeedSettings(
            title=f"digest for {who}",
            self_url=self._feed_url(recipient, kind),
            authority=_authority(self.settings.email.list_id),
            links=self.links,
            site_url=self.settings.links.base_url or None,
            days=self.settings.feeds.days,
        )

    def _feed_url(self, recipient: Recipient, kind: str) -> str:
        """The feed's public URL on the service, or its file URL without one."""
        if self.links.base_url and not recipient.is_team and not self.dry_run:
            url = self.links.feed(self.store.feed_token(recipient.handle), kind)
            if url:
                return url
        path = self.settings.feeds_dir() / f"{_file_stem(recipient)}.{kind}"
        return path.resolve().as_uri()

    # -- wiki ----------------------------------------------------------------------------

    def _wiki(self, digest: ReaderDigest, recipient: Recipient, digest_id: int) -> Outcome:
        post = render_post(digest, recipient, self.links, templates=self.settings.templates())
        root = self.settings.wiki_dir()
        if self.dry_run:
            return Outcome(recipient.audience, "wiki", "dry-run", str(root / post.path))
        _make_folder(root)
        write_posts(root, [post])
        self.posts.append(post)
        self.store.record_delivery(
            digest_id, "wiki", "delivered", target=str(root / post.path),
            sends=self._sends(recipient, digest.picks, "wiki"),
        )  # fmt: skip
        return Outcome(recipient.audience, "wiki", "delivered", str(root / post.path))

    def remember_post(self, digest: ReaderDigest, recipient: Recipient) -> None:
        """Count an already-delivered post into this run's commit (a re-run after a crash)."""
        self.posts.append(
            render_post(digest, recipient, self.links, templates=self.settings.templates())
        )

    # -- the ledger ----------------------------------------------------------------------

    def _sends(
        self, recipient: Recipient, picks: Sequence, channel: str
    ) -> list[tuple[str, str, str, str]]:
        day = self.day.isoformat()
        return [(recipient.audience, p.item.id, channel, day) for p in picks]


def _file_stem(recipient: Recipient) -> str:
    """`<handle>` for a reader, `teams/<name>` for a team: a handle holds no `/`."""
    return f"teams/{recipient.handle}" if recipient.is_team else recipient.handle


def _authority(list_id: str) -> str:
    """A domain for tag: ids, from the List-Id setting (`digest.localhost` by default)."""
    return list_id.strip().strip("<>").lower() or "digest.localhost"


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DeliveryError(f"{folder}: cannot create folder ({exc.strerror or exc})") from None


def _atomic_write(path: Path, body: bytes) -> None:
    """Replace `path` with `body` at once: a reader of the feed never sees half a file.

    The data is on disk before the rename (and so before the delivery is recorded). A
    fixed temporary name means a write cut short is cleaned up by the next one.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DeliveryError(f"{path}: cannot write ({exc.strerror or exc})") from None


def utc_now() -> datetime:
    """The run's timestamp (the email Date header)."""
    return datetime.now(UTC).replace(microsecond=0)
