"""The daily job, and the pieces `digest rank`, `digest run` and `digest preview` share.

`run` is the whole day: ingest what the config names -> update the model -> plan
(rank every audience and store its picks) -> render -> deliver on each channel,
recording every delivery with its sends in one transaction. Plans and deliveries
are keyed by (audience, day) and (digest, channel), so running a day twice sends
nothing twice, and a run killed halfway finishes the rest on the next run.

One run at a time per database: a second `digest run` started while one is going
refuses to start (a lock file beside the database), since both would deliver the
same digests. A dry run takes no lock and writes nothing: it works on a copy of the
database in memory, so its report (ingest included) is what a real run would do.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import sqlite_utils

from digest.dispatch import Dispatcher, Outcome, utc_now
from digest.errors import DigestError, ForeignDatabase, StorageError
from digest.feedback import import_feedback
from digest.ingest import ingest
from digest.parsers import read_text
from digest.paths import check_output_file
from digest.profiles import ProfileSet, load_profiles, teams_of
from digest.records import ReaderDigest, Recipient, StoredItem
from digest.render.email import render_email
from digest.settings import Settings
from digest.store import Store

# The model and ranking (numpy, scipy, scikit-learn, LightFM) load on first use, so
# commands that need no model start in a fraction of a second.
if TYPE_CHECKING:
    import numpy as np

    from digest.model import Recommender
    from digest.rank import Ranking

#: progress(stage, done, total): the CLI draws a bar on a terminal, log lines otherwise.
Progress = Callable[[str, int, int], None]


def _quiet(stage: str, done: int, total: int) -> None:
    """The default progress callback: says nothing."""


# -- candidates ----------------------------------------------------------------------------


def latest_day(store: Store, today: date | None = None) -> date:
    """The most recent day with new items, not after today (the default digest day)."""
    today = today or date.today()
    days = [d for d in store.stats()["new_per_day"] if d <= today.isoformat()]
    if not days:
        raise DigestError("no items: run 'digest ingest' first (or give --date)")
    return date.fromisoformat(max(days))


def candidates(store: Store, day: date, window_days: int = 1) -> list[StoredItem]:
    """Items first seen in the `window_days` days up to and including `day`."""
    return [
        item
        for offset in range(max(1, window_days) - 1, -1, -1)
        for item in store.stored_items(new_on=(day - timedelta(days=offset)).isoformat())
    ]


def candidates_from_file(store: Store, path: str) -> list[StoredItem]:
    """Items named in a file of ids (one per line, '#' comments), all of them known."""
    text = read_text(path)
    wanted = []
    for line in text.splitlines():
        ident = line.strip()
        if ident and not ident.startswith("#") and ident not in wanted:
            wanted.append(ident)
    if not wanted:
        raise DigestError(f"{path}: no item ids (one per line; '#' starts a comment)")
    found = {item.id: item for item in store.stored_items(ids=wanted)}
    unknown = [i for i in wanted if i not in found]
    if unknown:
        line = next(n for n, t in enumerate(text.splitlines(), 1) if t.strip() == unknown[0])
        raise DigestError(f"{path}:{line}: unknown item id {unknown[0]!r}")
    return [found[i] for i in wanted]


# -- readers, teams and recipients -----------------------------------------------------------


def recipients(store: Store, profiles: ProfileSet, *, only: str | None = None) -> list[Recipient]:
    """Who gets a digest: every reader with a profile (not unsubscribed), then every team.

    Readers known only from feedback teach the model but are sent nothing: they
    never asked. `only` keeps one reader (and no team).
    """
    gone = store.unsubscribed()
    out = []
    for handle in profiles.audience(only=only) if only else sorted(profiles.readers):
        profile = profiles.readers.get(handle)
        if profile is None:
            raise DigestError(f"'{handle}' has no profile: nothing to deliver")
        if handle in gone:
            continue
        out.append(
            Recipient(handle, profile.name or handle, profile.email, profile.channels,
                      teams_of(profiles, handle))
        )  # fmt: skip
    if only:
        return out
    for team in profiles.teams.values():
        members = tuple(m for m in team.members if m in profiles.readers)
        if members:
            out.append(
                Recipient(f"team:{team.name}", team.title or team.name, None, ("wiki", "feed"),
                          (), members)
            )  # fmt: skip
    return out


def rank_audience(store: Store, profiles: ProfileSet, only: str | None = None) -> list[str]:
    """Who `digest rank` ranks for: every reader (profiles and feedback), or `only`.

    Asking for a reader with neither a profile nor any feedback is an error: a
    digest of popular items would say nothing about them.
    """
    if only is None:
        return profiles.audience(store.reader_handles())
    readers = profiles.audience(only=only)
    handle = readers[0]
    if handle not in profiles.readers and handle not in store.reader_handles():
        raise DigestError(
            f"no reader '{handle}': no profile in {profiles.folder} and no feedback recorded"
        )
    return readers


# -- ranking ---------------------------------------------------------------------------------


def rank_readers(
    store: Store,
    model: Recommender,
    profiles: ProfileSet,
    readers: Sequence[str],
    items: Sequence[StoredItem],
    day: date,
    *,
    top: int | None = None,
    diversity: float = 0.3,
    min_score: float | None = None,
) -> list[ReaderDigest]:
    """Rank `items` for `readers`, never offering what the ledger says they had."""
    from digest.rank import Ranking

    ranking = Ranking(
        model, items, profiles=profiles, exclude=store.seen_by_all(), day=day,
        diversity=diversity, min_score=min_score, vectors=candidate_vectors(store, model, items),
    )  # fmt: skip
    return list(ranking.readers(readers, top))


def candidate_vectors(
    store: Store, model: Recommender, items: Sequence[StoredItem]
) -> dict[str, np.ndarray] | None:
    """The candidates' stored embeddings (encoding and storing any not yet made)."""
    from digest.features import doc_of
    from digest.training import item_vectors

    if not model.use_embed:
        return None
    return item_vectors(store, [doc_of(i) for i in items], recipe=model.embed_recipe)


def plan(
    store: Store,
    model: Recommender | Callable[[], Recommender],
    profiles: ProfileSet,
    audience: Sequence[Recipient],
    items: Sequence[StoredItem],
    day: date,
    *,
    diversity: float,
    min_score: float | None,
    progress: Progress = _quiet,
    save: bool = True,
) -> dict[str, ReaderDigest]:
    """Every audience's digest for `day`: stored plans as they are, new ones ranked.

    A stored plan is never re-ranked, so every channel and every re-run delivers the
    same picks. `model` may be a callable, so a day fully planned needs no model at
    all. With `save=False` (a dry run) new plans are returned but not stored.
    """
    key = day.isoformat()
    stored = store.planned(key)
    wanted = [r.audience for r in audience]
    done = store.digests(stored[a] for a in wanted if a in stored)
    out = {d.audience: d for d in done.values()}
    todo = [r for r in audience if r.audience not in out]
    if todo:
        # No candidates today: every digest is empty, and no model needs updating.
        fitted = model() if callable(model) and items else model
        from digest.rank import Ranking

        vectors = candidate_vectors(store, fitted, items) if items else None
        ranking = Ranking(
            fitted, items, profiles=profiles, exclude=store.seen_by_all(), day=day,
            diversity=diversity, min_score=min_score, vectors=vectors,
        )  # fmt: skip
        fresh = _rank_all(ranking, profiles, todo, progress)
        if save:
            for block in _blocks(fresh, 500):
                with store.transaction():
                    for digest in block:
                        store.save_plan(digest.audience, key, digest.picks)
        out.update((d.audience, d) for d in fresh)
    return {a: out[a] for a in wanted}


def _rank_all(
    ranking: Ranking, profiles: ProfileSet, todo: Sequence[Recipient], progress: Progress
) -> list[ReaderDigest]:
    readers = [r.audience for r in todo if not r.is_team]
    out: list[ReaderDigest] = []
    for digest in ranking.readers(readers):
        out.append(digest)
        if len(out) % 200 == 0 or len(out) == len(readers):
            progress("rank", len(out), len(todo))
    for recipient in (r for r in todo if r.is_team):
        out.append(ranking.team(profiles.teams[recipient.handle]))
        progress("rank", len(out), len(todo))
    return out


def _blocks(values: list, size: int) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# -- the model ---------------------------------------------------------------------------------


def update_model(
    store: Store, profiles: ProfileSet, settings: Settings, day: date, *, save: bool = True,
    progress: Progress = _quiet,
) -> Recommender:  # fmt: skip
    """The daily model: an incremental update of the saved model, or a first full train.

    Sends from `day` on are not yet negatives (see `training.train`). Progress: the
    "model: training" step's start and end, and "model: embedding new items": for
    a first train as each batch of vectors is stored, for an update (which encodes
    beside LightFM's epochs) at the start and once the vectors are stored.
    """
    from digest.training import train

    progress(TRAINING, 0, 1)

    path = settings.store.model
    params = {
        "epochs": settings.model.epochs,
        "random_state": settings.model.seed,
        "embeddings": settings.model.embeddings,
        "embed_recipe": settings.model.embed_text,
    }
    target = path if save else None
    model = train(
        store, profiles, target, update=Path(path).exists(), before=day.isoformat(),
        update_epochs=settings.model.update_epochs, source=path,
        embed_progress=lambda done, total: progress(EMBEDDING, done, total), **params,
    )  # fmt: skip
    progress(TRAINING, 1, 1)
    return model


#: Progress stages of the model update.
TRAINING, EMBEDDING = "model: training", "model: embedding new items"


@dataclass
class Workspace:
    """What every daily command opens: settings, the store and the profiles."""

    settings: Settings
    store: Store
    profiles: ProfileSet
    warnings: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.store.close()


def open_workspace(settings: Settings, *, create: bool = True, scratch: bool = False) -> Workspace:
    """Open the database and read the profiles named by `settings`.

    With `scratch`, the store is a copy of the database in memory (empty when there
    is no database yet): whatever is done to it leaves the file untouched.
    """
    explicit = "readers.profiles" in settings.explicit
    profiles = load_profiles(settings.readers.profiles if explicit else None)
    opened = scratch_copy(settings.store.db) if scratch else None
    store = opened or Store.open(settings.store.db, create=create)
    return Workspace(settings, store, profiles, list(profiles.warnings()))


def scratch_copy(path: str) -> Store:
    """The database at `path` copied into memory (a new, empty one if there is none)."""
    if not Path(path).is_file():
        return Store.open(":memory:")
    # An empty in-memory database takes the source's page size in a backup.
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        source = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            source.backup(conn)
        finally:
            source.close()
        db = sqlite_utils.Database(conn)
        if db.table_names() and "_migrations" not in db.table_names():
            raise ForeignDatabase(f"{path}: an SQLite database digest did not create")
        store = Store(db, ":memory:")
        store.migrate()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StorageError(f"{path}: not a usable digest database ({exc})") from None
    except BaseException:
        conn.close()
        raise
    return store


@contextlib.contextmanager
def run_lock(db: str) -> Iterator[None]:
    """Hold `<db>.lock` for the run: a second run on the same database refuses to start.

    The lock is an advisory `flock`, released by the system however the process ends
    (kill -9 included), so a stale lock file never blocks the next run. Where `fcntl`
    does not exist (Windows), runs are not locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        fcntl = None
    if fcntl is None or db == ":memory:":
        yield
        return
    path = Path(f"{db}.lock")
    try:
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
    except OSError as exc:
        raise StorageError(f"{path}: cannot open the run lock ({exc.strerror or exc})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            raise DigestError(
                f"another 'digest run' is running on {db} (pid {pid}); "
                "let it finish (a killed run holds no lock)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield


# -- the daily run ---------------------------------------------------------------------------


@dataclass
class RunReport:
    """What `digest run` did, for its summary line and exit status."""

    day: date | None = None
    dry_run: bool = False
    ingested: str = ""
    model: str = "not needed (every digest already planned)"
    planned: int = 0
    reused: int = 0
    delivered: dict[str, int] = field(default_factory=dict)
    already: int = 0
    failures: list[str] = field(default_factory=list)
    #: "grace (email)" for every delivery that failed or was skipped, for the summary.
    undelivered: list[str] = field(default_factory=list)
    #: Per channel, deliveries not tried because the channel failed earlier in the run.
    not_attempted: dict[str, int] = field(default_factory=dict)
    #: Readers and teams left out because their profile file is invalid.
    skipped: list[str] = field(default_factory=list)
    #: Audiences whose digest had no picks today: nothing is sent to them.
    empty: list[str] = field(default_factory=list)
    #: In a dry run, one line per delivery that would be made.
    would: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    #: Wall seconds per stage, none counted twice: ingest, model, rank, render (waiting
    #: for rendered digests) and deliver (writing, sending and recording them).
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """False when anything asked for was not delivered (exit status 1)."""
        return not (self.failures or self.not_attempted or self.skipped)

    def count(self, outcome: Outcome) -> None:
        """Fold one delivery outcome into the report."""
        if outcome.channel == "commit":
            if outcome.status == "delivered":
                self.outputs["wiki commit"] = outcome.detail
            else:
                self.failures.append(f"wiki commit failed: {outcome.detail}")
        elif outcome.status in ("delivered", "dry-run"):
            key = f"{outcome.channel} ({outcome.status})" if self.dry_run else outcome.channel
            self.delivered[key] = self.delivered.get(key, 0) + 1
            if outcome.status == "dry-run":
                self.would.append(f"{outcome.audience}: {outcome.channel} {outcome.detail}")
        elif outcome.status == "not attempted":
            self.not_attempted[outcome.channel] = self.not_attempted.get(outcome.channel, 0) + 1
        elif outcome.status == "empty":
            self.empty.append(outcome.audience)
        else:
            self.failures.append(
                f"{outcome.audience}: {outcome.channel} {outcome.status}: {outcome.detail}"
            )
            self.undelivered.append(f"{outcome.audience} ({outcome.channel})")

    def summary(self) -> str:
        """A few lines: the day, what was planned, what went out, and where."""
        done = ", ".join(f"{n} {c}" for c, n in sorted(self.delivered.items())) or "nothing new"
        lines = [
            f"digest for {self.day}{' (dry run: nothing written)' if self.dry_run else ''}",
        ]
        if self.ingested:
            lines.append(f"  ingest: {self.ingested}")
        lines += [
            f"  model: {self.model}",
            f"  planned: {self.planned} new digest(s), {self.reused} already planned",
            f"  delivered: {done}; {self.already} already delivered earlier",
        ]
        if self.failures:
            names = ", ".join(self.undelivered[:10])
            more = f" and {len(self.undelivered) - 10} more" if len(self.undelivered) > 10 else ""
            who = f": {names}{more}" if names else ""
            lines.append(f"  failed: {len(self.failures)}{who} (see the error lines above)")
        if self.not_attempted:
            counts = ", ".join(f"{n} {c}" for c, n in sorted(self.not_attempted.items()))
            lines.append(f"  not attempted: {counts} (the channel failed earlier in this run)")
        if self.skipped:
            lines.append(f"  skipped: {', '.join(self.skipped)}")
        if self.empty:
            names = ", ".join(self.empty[:10]) + (" ..." if len(self.empty) > 10 else "")
            lines.append(f"  nothing new for {len(self.empty)}: {names} (nothing sent)")
        lines += [f"  {name}: {where}" for name, where in self.outputs.items()]
        lines += [f"  would send {line}" for line in self.would]
        return "\n".join(lines)


def run(
    settings: Settings,
    *,
    day: date | None = None,
    dry_run: bool = False,
    only: str | None = None,
    progress: Progress = _quiet,
    now: datetime | None = None,
) -> RunReport:
    """The whole daily job for one day; see the module docstring for its guarantees."""
    report = RunReport(dry_run=dry_run)
    if not dry_run:
        check_output_file(settings.store.model)  # before ingest and a long train, not after
    workspace = open_workspace(settings, scratch=dry_run)
    try:
        report.warnings += workspace.warnings
        with contextlib.nullcontext() if dry_run else run_lock(settings.store.db):
            _run(workspace, report, day, only, progress, now or utc_now())
    finally:
        workspace.close()
    return report


def _warm_up_encoder(settings: Settings) -> threading.Thread | None:
    """Load the sentence encoder beside the store reads, if the run may encode.

    The day's new items are encoded during the model update; loading the encoder
    (about 7 s on two cores) then no longer holds it up. Started after ingest, whose
    worker processes are forked: a fork while this thread holds an import lock could
    leave a worker waiting on it forever.
    """
    from digest import embed
    from digest.training import uses_embeddings

    return embed.warm_up() if uses_embeddings(settings.model.embeddings) else None


def _run(
    ws: Workspace, report: RunReport, day: date | None, only: str | None,
    progress: Progress, now: datetime,
) -> None:  # fmt: skip
    with _timed(report, "ingest"):
        _ingest_sources(ws, report, day, progress)
    warming = _warm_up_encoder(ws.settings)
    try:
        _plan_and_deliver(ws, report, day, only, progress, now)
    finally:
        if warming is not None:
            warming.join()


def _plan_and_deliver(
    ws: Workspace, report: RunReport, day: date | None, only: str | None,
    progress: Progress, now: datetime,
) -> None:  # fmt: skip
    from digest.training import sync_readers

    settings, store = ws.settings, ws.store
    report.day = day = day or latest_day(store, now.date())
    with _timed(report, "rank"):
        sync_readers(store, ws.profiles)  # a dry run's store is a scratch copy
        audience = recipients(store, ws.profiles, only=only)
    if only is None:
        report.skipped += [
            f"{handle} (invalid profile {path})"
            for handle, path in sorted(ws.profiles.skipped_readers.items())
        ] + [
            f"team {name} (invalid team file {path})"
            for name, path in sorted(ws.profiles.skipped_teams.items())
        ]
    with _timed(report, "rank"):
        items = candidates(store, day, settings.digest.window_days)

    def model() -> Recommender:
        existed = Path(settings.store.model).exists()
        with _timed(report, "model"):
            fitted = update_model(
                store, ws.profiles, settings, day, save=not report.dry_run, progress=progress
            )
        report.model = "updated" if existed else "trained from scratch"
        return fitted

    before = set(store.planned(day.isoformat()))
    with _timed(report, "rank"):
        digests = plan(
            store, model, ws.profiles, audience, items, day,
            diversity=settings.digest.diversity, min_score=_min_score(settings),
            progress=progress, save=not report.dry_run,
        )  # fmt: skip
    report.reused = len(before & set(digests))
    report.planned = len(digests) - report.reused
    with _timed(report, "deliver"):
        _deliver(ws, report, digests, audience, day, progress, now)
    _outputs(settings, report)


def _ingest_sources(ws: Workspace, report: RunReport, day: date | None, progress: Progress) -> None:
    """Ingest the configured sources, then import the configured feedback files.

    With `--date`, feeds are taken as fetched on that day (and yearless dumps get
    its year), so a past day can be run as it would have run then.
    """
    sources = ws.settings.sources
    if not (sources.paths or sources.feedback):
        return
    if sources.paths:
        files = done = 0

        def started(total: int) -> None:
            nonlocal files
            files = total
            progress("ingest", 0, files)

        def file_done(_outcome: object) -> None:
            nonlocal done
            done += 1
            progress("ingest", min(done, files), files)

        summary = ingest(
            ws.store, list(sources.paths), given=day, progress=file_done, started=started
        )
        report.failures += [f"ingest: {f.error}" for f in summary.files if f.status == "error"]
        report.ingested = (
            f"{len(summary.files)} file(s), {summary.new} new item(s), "
            f"{summary.duplicates} already seen, {summary.failed} failed"
        )
    for path in sources.feedback:
        imported = import_feedback(ws.store, path)
        report.failures += [f"feedback: {path}:{n}: {why}" for n, why in imported.problems]
        report.ingested += f"{'; ' if report.ingested else ''}feedback {imported.imported} new"


def _deliver(
    ws: Workspace, report: RunReport, digests: dict[str, ReaderDigest],
    audience: Sequence[Recipient], day: date, progress: Progress, now: datetime,
) -> None:  # fmt: skip
    store = ws.store
    key = day.isoformat()
    ids = store.planned(key)
    status = store.deliveries(key)
    dispatcher = Dispatcher(store, ws.settings, day, now, dry_run=report.dry_run)
    work = []
    for recipient in audience:
        digest_id = ids.get(recipient.audience, -1)
        done = {c for (i, c), s in status.items() if i == digest_id and s == "delivered"}
        report.already += len(done & set(recipient.channels))
        work.append((digests[recipient.audience], recipient, digest_id, done))
    try:
        for outcome in dispatcher.deliver_all(work, lambda n, total: progress("deliver", n, total)):
            report.count(outcome)
    finally:
        for outcome in dispatcher.finish():
            report.count(outcome)
        report.seconds["render"] = report.seconds.get("render", 0.0) + dispatcher.render_seconds


def _outputs(settings: Settings, report: RunReport) -> None:
    if settings.email.transport == "outbox":
        report.outputs.setdefault("emails", str(settings.outbox()))
    else:
        report.outputs.setdefault("emails", f"smtp {settings.smtp.host}:{settings.smtp.port}")
    report.outputs.setdefault("feeds", str(settings.feeds_dir()))
    report.outputs.setdefault("wiki", str(settings.wiki_dir()))


class _timed:
    """Adds a stage's wall time to the report (the benchmark reads these).

    Stages do not overlap in the report: time a stage timed inside this one (the
    model update, run when ranking first needs the model) is not counted twice.
    """

    def __init__(self, report: RunReport, stage: str):
        self.report, self.stage = report, stage

    def __enter__(self) -> None:
        self.started = time.perf_counter()
        self.others = sum(self.report.seconds.values())

    def __exit__(self, *exc: object) -> None:
        nested = sum(self.report.seconds.values()) - self.others
        spent = time.perf_counter() - self.started - nested
        self.report.seconds[self.stage] = self.report.seconds.get(self.stage, 0.0) + spent


def _min_score(settings: Settings) -> float | None:
    value = settings.digest.min_score
    return None if value == float("-inf") else value


# -- preview -----------------------------------------------------------------------------------


def preview(
    settings: Settings, user: str, *, day: date | None = None, out: str | None = None
) -> list[Path]:
    """Write one reader's email as HTML and text files, sending and recording nothing.

    Uses the stored plan for the day when there is one (what was or will be sent),
    else ranks with the saved model, storing only new items' sentence vectors.
    """
    from digest.model import Recommender

    ws = open_workspace(settings, create=False)
    try:
        when = day or latest_day(ws.store)
        recipient = recipients(ws.store, ws.profiles, only=user)
        if not recipient:
            raise DigestError(f"'{user}' has unsubscribed: nothing to preview")
        digest = plan(
            ws.store, lambda: Recommender.load(settings.store.model), ws.profiles, recipient,
            candidates(ws.store, when, settings.digest.window_days), when,
            diversity=settings.digest.diversity, min_score=_min_score(settings), save=False,
        )[recipient[0].audience]  # fmt: skip
        dispatcher = Dispatcher(ws.store, settings, when, utc_now(), dry_run=True)
        rendered = render_email(digest, recipient[0], dispatcher.email_settings(), now=utc_now())
    finally:
        ws.close()
    name = f"{recipient[0].handle}-{when}.html"
    html = Path(out) if out else Path(settings.output.dir) / "preview" / name
    text = html.with_suffix(".txt")
    if text == html:  # --out preview.txt: the text must not overwrite the HTML
        text = html.with_name(f"{html.name}.txt")
    for path, body in ((html, rendered.html), (text, rendered.text)):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
        except OSError as exc:
            raise DigestError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return [html, text]
