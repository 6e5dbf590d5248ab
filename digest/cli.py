"""The `digest` command line: thin commands over the library.

Each command parses its options, calls one library function and prints the result.
Library errors (`DigestError`) become one line on stderr and exit status 1.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import click

from digest import __version__
from digest.errors import ConfigError, DigestError
from digest.evaluate import evaluate, read_citeulike, read_dataset, render_markdown, write_dataset
from digest.feedback import EVENTS, import_feedback, now_stamp, record_event, resolve_item
from digest.ingest import FileOutcome, ingest
from digest.model import Recommender
from digest.parsers import FORMATS
from digest.profiles import load_profiles, teams_of
from digest.rank import rank
from digest.store import DEFAULT_DB, ENV_DB, Store
from digest.training import DEFAULT_MODEL, ENV_MODEL, item_docs, train


class DigestGroup(click.Group):
    """Turns library errors into a clean one-line message and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DigestError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


class DayType(click.ParamType):
    """A click parameter type for YYYY-MM-DD dates."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: Any, ctx: Any) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD)", param, ctx)


DAY = DayType()


@click.group(cls=DigestGroup)
@click.version_option(__version__, prog_name="digest")
@click.option(
    "--db",
    envvar=ENV_DB,
    default=DEFAULT_DB,
    show_default=True,
    help=f"SQLite database file (or ${ENV_DB}).",
)
@click.pass_context
def cli(ctx: click.Context, db: str) -> None:
    """Personal, ranked research-paper digests from daily dumps and feeds."""
    ctx.obj = {"db": db}


def open_store(ctx: click.Context, *, create: bool = True) -> Store:
    """Open the database named by --db / $DIGEST_DB, closed when the command ends.

    Commands that only read pass `create=False`: a missing database is an error.
    """
    store = Store.open(ctx.obj["db"], create=create)
    ctx.call_on_close(store.close)
    return store


@cli.command("ingest")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
    help="Force the input format instead of detecting it.",
)  # fmt: skip
@click.option("--date", "day", type=DAY, help="Day of a feed; year of a yearless dump date.")
@click.option("--source", help="Name the source instead of deriving it from the input.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary and errors.")
@click.pass_context
def ingest_cmd(
    ctx: click.Context, paths: tuple[str, ...], fmt: str, day: date | None,
    source: str | None, quiet: bool,
) -> None:  # fmt: skip
    """Read digest dumps, RSS/Atom feeds and JSON items into the database.

    PATHS are files, directories (every file inside, dumps in date order),
    http(s) feed URLs or - (standard input). Items already seen on an earlier
    day or from another source are linked to the first sighting and do not
    count as new.
    """
    store = open_store(ctx)

    def report(outcome: FileOutcome) -> None:
        if outcome.status == "error":
            click.echo(f"error: {outcome.error}", err=True)
        elif not quiet:
            click.echo(_outcome_line(outcome))
            for warning in outcome.warnings:
                click.echo(f"warning: {outcome.path}: {warning}", err=True)

    summary = ingest(store, list(paths), fmt=fmt, given=day, source=source, progress=report)
    click.echo(
        f"{len(summary.files)} file(s), {summary.failed} failed: {summary.entries} entries, "
        f"{summary.new} new, {summary.duplicates} already seen"
    )
    if summary.failed:
        ctx.exit(1)


def _outcome_line(outcome: FileOutcome) -> str:
    if outcome.status == "unchanged":
        return f"{outcome.path}: already ingested, nothing changed"
    return (
        f"{outcome.path}: {outcome.format} {outcome.day}: {outcome.entries} entries, "
        f"{outcome.new} new, {outcome.duplicates} already seen"
    )


@cli.command("items")
@click.option("--new-on", type=DAY, help="Only items first seen on this day.")
@click.option("--search", help="Full-text search in titles and abstracts.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many items.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def items_cmd(
    ctx: click.Context, new_on: date | None, search: str | None, limit: int | None,
    as_json: bool,
) -> None:  # fmt: skip
    """List stored items (one per distinct paper)."""
    store = open_store(ctx, create=False)
    rows = store.items(new_on=new_on.isoformat() if new_on else None, search=search, limit=limit)
    for row in rows:
        if as_json:
            click.echo(json.dumps(_public_item(row), ensure_ascii=False))
        else:
            click.echo(f"{row['id']}  {row['first_seen']}  {row['title']}")


def _public_item(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id", "title", "abstract", "url", "authors", "tags", "first_seen", "published",
        "arxiv_id", "doi", "code_url", "project_urls",
    )  # fmt: skip
    return {k: row.get(k) for k in keys}


@cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@click.pass_context
def stats_cmd(ctx: click.Context, as_json: bool) -> None:
    """Counts of items, sightings, readers and new items per day."""
    stats = open_store(ctx, create=False).stats()
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    for key in ("items", "records", "sources", "readers", "events", "sends"):
        click.echo(f"{key:>8}: {stats[key]}")
    click.echo("new per day:")
    for day, count in stats["new_per_day"].items():
        click.echo(f"  {day}  {count}")


# -- profiles -----------------------------------------------------------------------------

PROFILES_OPTION = click.option(
    "--profiles", "profiles_dir", envvar="DIGEST_PROFILES", default="profiles",
    show_default=True, help="Folder of reader TOML files (or $DIGEST_PROFILES).",
)  # fmt: skip


@cli.group("profiles")
def profiles_group() -> None:
    """List, show and validate reader and team profiles."""


@profiles_group.command("list")
@PROFILES_OPTION
def profiles_list(profiles_dir: str) -> None:
    """One line per reader: handle, name, interests, channels."""
    found = load_profiles(profiles_dir)
    found.require_valid()
    for p in found.readers.values():
        click.echo(
            f"{p.handle:<16} {p.name:<24} {', '.join(p.interests)}  [{', '.join(p.channels)}]"
        )
    for t in found.teams.values():
        click.echo(f"team {t.name}: {', '.join(t.members)}")


@profiles_group.command("show")
@click.argument("handle")
@PROFILES_OPTION
def profiles_show(handle: str, profiles_dir: str) -> None:
    """Every field of one reader's profile, as JSON."""
    found = load_profiles(profiles_dir)
    found.require_valid()
    profile = found.readers.get(handle.lower())
    if profile is None:
        raise ConfigError(f"no profile '{handle}' in {profiles_dir}")
    data = dataclasses.asdict(profile)
    data["teams"] = list(teams_of(found, profile.handle))
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@profiles_group.command("check")
@PROFILES_OPTION
@click.pass_context
def profiles_check(ctx: click.Context, profiles_dir: str) -> None:
    """Validate every profile; print one line per problem (file and key)."""
    found = load_profiles(profiles_dir)
    for problem in found.problems:
        click.echo(f"error: {problem}", err=True)
    if found.problems:
        ctx.exit(1)
    click.echo(f"{len(found.readers)} reader(s), {len(found.teams)} team(s): all valid")


# -- feedback -----------------------------------------------------------------------------


@cli.group("feedback")
def feedback_group() -> None:
    """Record what readers clicked, liked, disliked, tagged and were sent."""


@feedback_group.command("import")
@click.argument("file")
@click.pass_context
def feedback_import(ctx: click.Context, file: str) -> None:
    """Import CSV or JSONL rows of user,item,event[,time][,tag].

    ITEM may be an item id, URL, arXiv id or exact title. Rows naming an unknown
    item or event are reported with their line number; good rows still import.
    """
    report = import_feedback(open_store(ctx), file)
    for line, problem in report.problems:
        click.echo(f"error: {file}:{line}: {problem}", err=True)
    click.echo(
        f"{report.imported} imported, {report.already_known} already known, "
        f"{report.rejected} rejected"
    )
    if report.rejected:
        ctx.exit(1)


@feedback_group.command("add")
@click.argument("user")
@click.argument("item")
@click.argument("event", type=click.Choice(EVENTS))
@click.option("--tag", default="", help="The tag, for a 'tag' event.")
@click.option("--time", "stamp", help="ISO 8601 time (default: now).")
@click.pass_context
def feedback_add(
    ctx: click.Context, user: str, item: str, event: str, tag: str, stamp: str | None
) -> None:
    """Record one event: USER did EVENT on ITEM (id, URL, arXiv id or title)."""
    store = open_store(ctx)
    item_id = resolve_item(store, item)
    if item_id is None:
        raise DigestError(f"unknown item {item!r}")
    if event == "tag" and not tag:
        raise DigestError("a 'tag' event needs --tag")
    with store.transaction():
        added = record_event(store, user.lower(), item_id, event, stamp or now_stamp(), tag)
    click.echo(f"{'recorded' if added else 'already recorded'}: {user} {event} {item_id}")


# -- model and ranking ----------------------------------------------------------------------

MODEL_OPTION = click.option(
    "--model", "model_path", envvar=ENV_MODEL, default=DEFAULT_MODEL, show_default=True,
    help="Model file (or $DIGEST_MODEL).",
)  # fmt: skip


@cli.command("train")
@MODEL_OPTION
@PROFILES_OPTION
@click.option("--update", is_flag=True, help="Incremental update of the saved model.")
@click.option("--epochs", type=click.IntRange(1, 500), default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Random state.")
@click.option(
    "--embeddings", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
    help="Use sentence embeddings (needs the 'embed' extra).",
)  # fmt: skip
@click.pass_context
def train_cmd(
    ctx: click.Context, model_path: str, profiles_dir: str, update: bool, epochs: int,
    seed: int, embeddings: str,
) -> None:  # fmt: skip
    """Fit the recommender on all items, readers and feedback, and save it.

    With --update, the saved model takes a few more epochs on new items and events
    (the daily path); without it, the model is trained from scratch. Same seed, same
    data: same model.
    """
    store = open_store(ctx)
    profiles = load_profiles(profiles_dir)
    profiles.require_valid()
    model = train(
        store, profiles, model_path, update=update, epochs=epochs, random_state=seed,
        embeddings=embeddings,
    )  # fmt: skip
    click.echo(
        f"trained on {len(model.item_ids)} items, {len(model.reader_ids)} readers "
        f"(embeddings {'on' if model.use_embed else 'off'}) -> {model_path}"
    )


@cli.command("rank")
@click.option("--user", "user", help="Rank for this reader.")
@click.option("--all", "all_readers", is_flag=True, help="Rank for every reader.")
@click.option("--date", "day", type=DAY, help="Candidates first seen on this day (--user).")
@click.option("--new-on", type=DAY, help="Candidates first seen on this day (--all).")
@click.option("--candidates", type=click.Path(dir_okay=False), help="File of item ids.")
@click.option("--top", type=click.IntRange(1, 500), help="Items per reader (default: profile).")
@click.option("--min-score", type=float, help="Drop items scoring below this.")
@click.option("--diversity", type=click.FloatRange(0, 1), default=0.3, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text")
@MODEL_OPTION
@PROFILES_OPTION
@click.pass_context
def rank_cmd(
    ctx: click.Context, user: str | None, all_readers: bool, day: date | None,
    new_on: date | None, candidates: str | None, top: int | None, min_score: float | None,
    diversity: float, fmt: str, model_path: str, profiles_dir: str,
) -> None:  # fmt: skip
    """Rank the day's new items for one reader (--user) or every reader (--all).

    Items a reader was already sent (any day, any channel) or acted on are never
    offered, nor items matching a muted topic. Each pick says why it was chosen.
    """
    if bool(user) == all_readers:
        raise click.UsageError("give exactly one of --user or --all")
    store = open_store(ctx)
    profiles = load_profiles(profiles_dir)
    profiles.require_valid()
    model = Recommender.load(model_path)
    ids = _candidate_ids(store, candidates, new_on or day)
    docs = item_docs(store.items(ids=ids))
    readers = (
        [user.lower()] if user else sorted(set(store.reader_handles()) | set(profiles.readers))
    )
    digests = rank(
        model, readers, docs, profiles=profiles, exclude=store.seen_by_all(), top=top,
        diversity=diversity, min_score=min_score,
    )  # fmt: skip
    for digest in digests:
        if fmt == "jsonl":
            click.echo(json.dumps(digest.to_json(), ensure_ascii=False))
            continue
        click.echo(f"{digest.user}: {len(digest.items)} item(s)")
        for n, pick in enumerate(digest.items, 1):
            click.echo(f"  {n:>2}. [{pick.score:+.2f}] {pick.title}")
            click.echo(f"      {pick.id} - {pick.why}")


def _candidate_ids(store: Store, candidates: str | None, day: date | None) -> list[str]:
    if candidates:
        wanted = _read_ids(candidates)
        known = set(store.item_ids())
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise DigestError(f"{candidates}: unknown item id {unknown[0]!r}")
        return wanted
    if day is None:
        latest = max(store.stats()["new_per_day"], default=None)
        if latest is None:
            raise DigestError("no items: run 'digest ingest' first")
        return store.item_ids(new_on=latest)
    return store.item_ids(new_on=day.isoformat())


def _read_ids(path: str) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DigestError(f"{path}: cannot read ({exc.strerror})") from None
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


# -- evaluation ---------------------------------------------------------------------------


@cli.command("evaluate")
@click.option("--citeulike", type=click.Path(file_okay=False), help="citeulike-a folder.")
@click.option("--items", "items_path", type=click.Path(dir_okay=False), help="Items JSONL.")
@click.option("--interactions", type=click.Path(dir_okay=False), help="Interactions CSV.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option(
    "--protocol", "protocols", multiple=True, type=click.Choice(["item-cold-start", "new-readers"]),
    help="Protocols to run (default: both).",
)  # fmt: skip
@click.option(
    "--train-tags",
    is_flag=True,
    help="Keep the dataset's reader-written tags on training items (held-out items never).",
)
@click.option("--write", "write_path", help="Write the markdown report here.")
def evaluate_cmd(
    citeulike: str | None, items_path: str | None, interactions: str | None, seeds: str,
    protocols: tuple[str, ...], train_tags: bool, write_path: str | None,
) -> None:  # fmt: skip
    """Measure ranking quality against baselines on held-out data.

    Item cold-start: 20% of items held out (seeded), ranked for every reader with a
    held-out item. New readers: a fifth of those readers keep at most 3 clicks.
    Baselines (random, text-predicted popularity, TF-IDF centroid, per-reader SVM,
    LightFM alone) run on the same split.
    """
    if citeulike:
        data = read_citeulike(citeulike)
    elif items_path and interactions:
        data = read_dataset(items_path, interactions)
    else:
        raise click.UsageError("give --citeulike DIR, or --items and --interactions")
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(
            f"{seeds!r} is not a list of integers", param_hint="--seeds"
        ) from None
    started = time.perf_counter()
    reports = evaluate(
        data, seed_list, protocols=protocols or ("item-cold-start", "new-readers"),
        progress=lambda line: click.echo(line, err=True), train_tags=train_tags,
    )  # fmt: skip
    command = (
        "digest evaluate " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "digest evaluate"
    )
    text = render_markdown(reports, command, time.perf_counter() - started)
    click.echo(text)
    if write_path:
        atomic_write(write_path, text)


@cli.command("dataset")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--out", required=True, help="Folder for items.jsonl and interactions.csv.")
def dataset_cmd(folder: str, out: str) -> None:
    """Convert citeulike-a into the generic import formats (items JSONL, interactions CSV)."""
    items_path, pairs_path = write_dataset(read_citeulike(folder), out)
    click.echo(f"wrote {items_path} and {pairs_path}")


def atomic_write(path: str, text: str) -> None:
    """Write a generated file all at once: readers never see half of it."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="digest")


if __name__ == "__main__":
    sys.exit(main())
