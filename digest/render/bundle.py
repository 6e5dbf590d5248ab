"""Everything one audience gets on one day, rendered in one call: email, feeds, wiki post.

The daily run renders thousands of these, so this is the unit handed to worker
processes: a `RenderJob` (plain records, picklable) in, a `Rendered` (bytes) out.
Pure like the renderers it calls: no database, no network, no files.
"""

from __future__ import annotations

import gc
import mmap
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime
from functools import cached_property
from multiprocessing import get_context
from operator import attrgetter

from digest.children import die_with_parent, keep_heap
from digest.records import Explanation, Pick, ReaderDigest, Recipient, StoredItem
from digest.render.email import EmailSettings, render_email
from digest.render.feeds import KINDS, FeedSettings, render_feeds
from digest.render.links import Links
from digest.render.wiki import WikiPost, render_post
from digest.tokens import TokenSigner

#: Audiences below this are rendered in-process: starting workers costs about a second.
POOL_THRESHOLD = 200
#: Jobs per task sent to a worker, and tasks kept in flight (bounds memory).
_CHUNK = 16
_IN_FLIGHT = 8
#: Bytes of shared memory for each task in flight to write its outputs into (see
#: `_Ring`): sixteen readers' emails and feeds fit with room to spare; what does not
#: comes back through the pipe.
_RING_SLOT = 8 << 20


@dataclass(frozen=True)
class RenderContext:
    """What every job of a run shares (sent to each worker once)."""

    sender: str
    list_id: str
    now: datetime
    templates: str | None = None
    max_html_bytes: int = 100_000
    base_url: str | None = None
    secret: str | None = None
    unsubscribe_mailbox: str | None = None
    authority: str = "digest.localhost"
    feed_days: int = 14

    @cached_property
    def links(self) -> Links:
        signer = TokenSigner(self.secret) if self.secret and self.base_url else None
        return Links(self.base_url, signer, self.unsubscribe_mailbox)

    @cached_property
    def email(self) -> EmailSettings:
        return EmailSettings(
            sender=self.sender, list_id=self.list_id, links=self.links,
            templates=self.templates, max_html_bytes=self.max_html_bytes,
        )  # fmt: skip

    def feed_settings(self, recipient: Recipient, self_url: str) -> FeedSettings:
        who = "team " + recipient.handle if recipient.is_team else recipient.handle
        return FeedSettings(
            title=f"digest for {who}", self_url=self_url, authority=self.authority,
            links=self.links, site_url=self.base_url, days=self.feed_days,
        )  # fmt: skip


@dataclass(frozen=True)
class RenderJob:
    """One audience's digest and what to render of it."""

    digest: ReaderDigest
    recipient: Recipient
    channels: tuple[str, ...]
    #: The digests the feed holds (this day's included), any order.
    feed_window: tuple[ReaderDigest, ...] = ()
    #: kind -> the feed's own URL (its rel="self"); the email links the Atom one.
    feed_urls: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rendered:
    """A job's outputs; `email_error` says why there is no email when one was asked for."""

    audience: str
    email: bytes | None = None
    subject: str = ""
    shown: int = 0
    email_error: str | None = None
    feeds: dict[str, bytes] = field(default_factory=dict)
    post: WikiPost | None = None


def render_job(job: RenderJob, ctx: RenderContext) -> Rendered:
    """Render every channel the job asks for."""
    email = subject = error = None
    shown = 0
    if "email" in job.channels:
        try:
            rendered = render_email(
                job.digest, job.recipient, ctx.email, now=ctx.now,
                feed_url=job.feed_urls.get("atom"),
            )  # fmt: skip
            email, subject, shown = rendered.as_bytes(), rendered.subject, rendered.shown
        except ValueError as exc:
            # An address a mail header cannot carry: that reader's email only.
            error = str(exc)
    feeds = {}
    if "feed" in job.channels:
        settings = {k: ctx.feed_settings(job.recipient, job.feed_urls[k]) for k in KINDS}
        feeds = render_feeds(job.feed_window, settings)
    post = None
    if "wiki" in job.channels:
        post = render_post(job.digest, job.recipient, ctx.links, templates=ctx.templates)
    return Rendered(job.recipient.audience, email, subject or "", shown, error, feeds, post)


def render_all(jobs: Sequence[RenderJob], ctx: RenderContext) -> Iterator[Rendered]:
    """Render jobs in order: in worker processes for a big run, in this one for a small one.

    Workers are spawned, not forked (the parent may hold model threads and a
    database connection), and at most a few chunks are in flight, so memory stays
    flat however many readers there are. Every paper the jobs show goes to each
    worker once, when it starts (`Papers`); a chunk of jobs names its papers by number.
    """
    if len(jobs) < POOL_THRESHOLD:
        yield from (render_job(job, ctx) for job in jobs)
        return
    keep_heap()  # this process takes in every chunk the workers return: a few MB each
    papers = Papers(jobs)
    ring = _Ring.create(_IN_FLIGHT, _RING_SLOT)
    with (
        ring,
        ProcessPoolExecutor(
            max_workers=_workers(),
            mp_context=get_context("spawn"),
            initializer=_init,
            initargs=(ctx, os.getpid(), papers.items, ring.path, _RING_SLOT),
        ) as pool,
    ):
        pending: deque[Future[list[_Stowed]]] = deque()
        for n, chunk in enumerate(_chunks(jobs, _CHUNK)):
            # At most _IN_FLIGHT tasks are out, and each is taken whole before the next
            # goes: slot n % _IN_FLIGHT is free again by the time task n is sent.
            pending.append(pool.submit(_render_chunk, papers.numbered(chunk), n % _IN_FLIGHT))
            if len(pending) >= _IN_FLIGHT:
                yield from ring.take(pending.popleft().result())
        while pending:
            yield from ring.take(pending.popleft().result())


class Papers:
    """Every distinct paper of a run's jobs, numbered, and the jobs with numbers for papers.

    Ten thousand readers' digests hold a few thousand papers between them, each with
    an abstract. Sent with every chunk of jobs, the same papers were copied to the
    workers hundreds of times, and a worker spent more time reading its jobs than
    encoding its emails. Instead each worker gets the numbered papers once (`items`,
    its initializer's argument) and a chunk carries numbers (`numbered`); the worker
    puts its own copy of each paper back (`with_papers`), so its per-paper caches hit
    by identity.
    """

    def __init__(self, jobs: Iterable[RenderJob]) -> None:
        numbers: dict[StoredItem, int] = {}
        #: id() of every paper object in the jobs -> its number (papers that are equal
        #: but distinct objects, say one from today's ranking and one from the store,
        #: share a number).
        self._by_object: dict[int, int] = {}
        for job in jobs:
            for digest in (job.digest, *job.feed_window):
                for pick in digest.picks:
                    if id(pick.item) not in self._by_object:
                        number = numbers.setdefault(pick.item, len(numbers))
                        self._by_object[id(pick.item)] = number
        self.items: tuple[StoredItem, ...] = tuple(numbers)

    def numbered(self, jobs: list[RenderJob]) -> list[_Numbered]:
        """`jobs` as plain tuples naming papers by number (the jobs must be the ones counted).

        Plain tuples, not the records: a worker reads a tuple of numbers much faster than
        it rebuilds dataclass objects it would then rebuild again around its papers.
        """
        number, why = self._by_object, _WHY_VALUES

        def flat(d: ReaderDigest) -> _FlatDigest:
            picks = tuple(
                (number[id(p.item)], p.rank, p.score, why(p.why), p.members) for p in d.picks
            )
            return d.audience, d.day, picks

        return [
            (
                RenderJob(_NO_DIGEST, job.recipient, job.channels, (), job.feed_urls),
                flat(job.digest),
                tuple(None if d is job.digest else flat(d) for d in job.feed_window),
            )
            for job in jobs
        ]


#: A pick as `Papers.numbered` sends it: paper number, rank, score, the reason's fields
#: (a tuple pickles in a tenth of the time a dataclass takes), members.
_FlatDigest = tuple[str, date, tuple[tuple[int, int, float, tuple, tuple[str, ...]], ...]]
#: An Explanation's fields, in order, as a tuple (one C call).
_WHY_VALUES = attrgetter(*(f.name for f in fields(Explanation)))
#: A job without its digests, its digest, and its feed window (None: the digest itself).
_Numbered = tuple[RenderJob, _FlatDigest, tuple[_FlatDigest | None, ...]]
_NO_DIGEST = ReaderDigest("", date.min, ())


def with_papers(jobs: list[_Numbered], items: Sequence[StoredItem]) -> list[RenderJob]:
    """Jobs from `Papers.numbered`, each paper number replaced by that paper of `items`."""

    def digest(flat: _FlatDigest) -> ReaderDigest:
        audience, day, picks = flat
        return ReaderDigest(
            audience,
            day,
            tuple(Pick(items[n], rank, score, Explanation(*why), members)
                  for n, rank, score, why, members in picks),
        )  # fmt: skip

    out = []
    for job, own, window in jobs:
        mine = digest(own)
        feed = tuple(mine if d is None else digest(d) for d in window)
        out.append(RenderJob(mine, job.recipient, job.channels, feed, job.feed_urls))
    return out


class _Ring:
    """Shared memory the workers write their outputs' bytes into, one slot per task.

    A reader's outputs are some 200 KB of bytes. Pickled through the pool's pipe they
    were copied five times (pickled, written, read, buffered, unpickled), which cost
    this process most of its time and the workers some of theirs. Instead each task
    writes its outputs into its slot of a memory file and returns where they are
    (`_stow`); `take` copies them out once. An anonymous memory file (memfd) leaves
    nothing behind however the run ends; workers open it by this process's
    `/proc/<pid>/fd/<fd>`. Where either is missing, outputs go through the pipe.
    """

    def __init__(self, fd: int | None, view: mmap.mmap | None) -> None:
        self._fd, self._view = fd, view

    @classmethod
    def create(cls, slots: int, slot: int) -> _Ring:
        """A ring of `slots` slots of `slot` bytes, or one that stows nothing."""
        try:
            fd = os.memfd_create("digest-render", os.MFD_CLOEXEC)
        except (AttributeError, OSError):
            return cls(None, None)
        try:
            os.ftruncate(fd, slots * slot)
            if not os.path.exists(f"/proc/{os.getpid()}/fd/{fd}"):
                raise OSError("no /proc")
            return cls(fd, mmap.mmap(fd, slots * slot))
        except OSError:
            os.close(fd)
            return cls(None, None)

    @property
    def path(self) -> str | None:
        """Where a worker opens the memory file; None when outputs go through the pipe."""
        return None if self._fd is None else f"/proc/{os.getpid()}/fd/{self._fd}"

    def take(self, stowed: list[_Stowed]) -> list[Rendered]:
        """A task's outputs with their bytes copied out of its slot (which is free after)."""
        out = []
        for rendered, spans in stowed:
            if spans:
                assert self._view is not None
                view = self._view
                blobs = {key: view[start:end] for key, (start, end) in spans.items()}
                email = blobs.pop("", rendered.email)
                rendered = replace(rendered, email=email, feeds={**rendered.feeds, **blobs})
            out.append(rendered)
        return out

    def __enter__(self) -> _Ring:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._view is not None:
            self._view.close()
        if self._fd is not None:
            os.close(self._fd)


#: A job's outputs as a task returns them, and where in its slot the bytes of its
#: email (key "") and of each feed (key: its kind) are, as (start, end).
_Stowed = tuple[Rendered, dict[str, tuple[int, int]]]

_WORKER: dict[str, RenderContext] = {}
#: This worker's copy of every paper of the run, by number (see `Papers`).
_PAPERS: tuple[StoredItem, ...] = ()
#: This worker's view of the run's `_Ring`, and its slot size (None: no ring).
_RING: tuple[mmap.mmap, int] | None = None


def _init(
    ctx: RenderContext,
    parent: int,
    papers: tuple[StoredItem, ...] = (),
    ring: str | None = None,
    slot: int = 0,
) -> None:
    global _PAPERS, _RING
    _WORKER["ctx"] = ctx
    _PAPERS = papers
    _RING = _open_ring(ring, slot)
    _quiet_collector()
    keep_heap()
    # `parent` comes from the parent itself: if it died before this worker got here,
    # os.getppid() would already name init, and the watch below would wait forever.
    die_with_parent(parent)


def _quiet_collector() -> None:
    """Keep the cycle collector off the worker's long-lived objects and out of its loop.

    Rendering makes and drops many small objects and hardly any cycles; with the default
    thresholds the collector ran every 700 allocations and walked the templates, the
    papers and their growing caches again and again. Frozen, those are never scanned;
    the higher threshold makes collections of what rendering leaves rare.
    """
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)


def _open_ring(path: str | None, slot: int) -> tuple[mmap.mmap, int] | None:
    """The run's `_Ring` as this worker sees it; None (the pipe) if it cannot be opened."""
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        return mmap.mmap(fd, os.fstat(fd).st_size), slot
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def _render_chunk(jobs: list[_Numbered], slot: int | None = None) -> list[_Stowed]:
    """Render a chunk of jobs made by `Papers.numbered`, its bytes stowed in `slot`."""
    ctx = _WORKER["ctx"]
    rendered = [render_job(job, ctx) for job in with_papers(jobs, _PAPERS)]
    if _RING is None or slot is None:
        return [(r, {}) for r in rendered]
    return _stow(rendered, *_RING, slot)


def _stow(rendered: list[Rendered], view: mmap.mmap, size: int, slot: int) -> list[_Stowed]:
    """Write each output's bytes into the slot while they fit; the rest stay in place."""
    start, end = slot * size, (slot + 1) * size
    out = []
    for r in rendered:
        spans: dict[str, tuple[int, int]] = {}
        for key, blob in (("", r.email), *r.feeds.items()):
            if blob is not None and start + len(blob) <= end:
                view[start : start + len(blob)] = blob
                spans[key] = (start, start + len(blob))
                start += len(blob)
        if spans:
            email = None if "" in spans else r.email
            feeds = {kind: blob for kind, blob in r.feeds.items() if kind not in spans}
            r = replace(r, email=email, feeds=feeds)
        out.append((r, spans))
    return out


def _chunks(jobs: Sequence[RenderJob], size: int) -> Iterable[list[RenderJob]]:
    for start in range(0, len(jobs), size):
        yield list(jobs[start : start + size])


def _workers() -> int:
    """One worker per core (the parent mostly waits on writes meanwhile)."""
    return max(1, min(4, os.cpu_count() or 1))
