"""The `digest` command line: arguments in, one library call, text out.

Settings resolve as flag > `DIGEST_*` environment variable > `digest.toml` >
default (see `digest.settings`, the only reader of the environment). Library errors
(`DigestError`) become one line on stderr and exit status 1; a traceback shown to a
user is a bug.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import click

from digest import __version__, daily
from digest.errors import DigestError
from digest.feedback import add_feedback, import_feedback
from digest.ingest import FileOutcome, ingest
from digest.parsers import FORMATS
from digest.paths import atomic_write, check_output_dir, check_output_file
from digest.profiles import ProfileSet, load_profiles, teams_of, valid_handle
from digest.settings import Settings, example_config, load_settings
from digest.store import MAX_INTEGER, Store, remove_if_unused

#: `digest evaluate`'s protocols (`digest.evaluate.PROTOCOLS`, which loads the model's
#: libraries, describes them; a test keeps the two in step).
PROTOCOL_NAMES = ("item-cold-start", "new-readers", "reader-history")


class DigestGroup(click.Group):
    """Turns library errors into a clean one-line message and a non-zero exit.

    Its sub-groups (`feedback`, `profiles`, `readers`) are DigestGroups too, so an
    option given before the command it belongs to gets a hint naming that command.
    """

    group_class = type  # groups made with `@group.group()` are of this class

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            owners = _commands_with_option(self, exc.option_name, ctx.command_path)
            words = {f"{ctx.command_path} {a}" for a in args if a in self.commands}
            owners.sort(key=lambda owner: not any(owner.startswith(w) for w in words))
            if owners:
                exc.message = (
                    f"No such option: {exc.option_name} here. It is an option of "
                    f"{', '.join(repr(o) for o in owners[:3])}: give it after the command "
                    f"name ('{owners[0]} {exc.option_name} ...')."
                )
                exc.possibilities = []
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return self._invoke(ctx)
        except click.exceptions.Exit as exc:
            if exc.exit_code:
                _discard_new_databases(ctx)
            raise
        except BaseException:
            _discard_new_databases(ctx)
            raise

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DigestError as exc:
            click.echo(f"error: {_one_line(exc)}", err=True)
            ctx.exit(1)
        except sqlite3.OperationalError as exc:
            # Another process held the database longer than the busy timeout, or the
            # disk is full: say so in one line instead of a traceback.
            click.echo(f"error: database: {_one_line(exc)} (try again shortly)", err=True)
            ctx.exit(1)
        except OSError as exc:
            # A file the library failed to name in a DigestError (a full disk mid-write):
            # still one line naming the file, never a traceback.
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"error: {where}{exc.strerror or _one_line(exc)}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


def _discard_new_databases(ctx: click.Context) -> None:
    """A failed command leaves no new, empty database behind (a typo'd --db)."""
    for path in (ctx.find_root().obj or {}).pop("new_databases", []):
        remove_if_unused(path)


def _commands_with_option(group: click.Group, option: str, path: str) -> list[str]:
    """The commands under `group` (as `digest feedback add`) that take `option`."""
    found = []
    for name, command in group.commands.items():
        if any(option in p.opts for p in command.params if isinstance(p, click.Option)):
            found.append(f"{path} {name}")
        if isinstance(command, click.Group):
            found.extend(_commands_with_option(command, option, f"{path} {name}"))
    return found


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class DayType(click.ParamType):
    """A click parameter type for YYYY-MM-DD dates, from 1900 to 9998.

    Days are counted back (feed windows) and forward from a date; at year 1 or 9999
    that arithmetic overflows, and no paper is dated there.
    """

    name = "YYYY-MM-DD"
    first, last = date(1900, 1, 1), date(9998, 12, 31)

    def convert(self, value: Any, param: Any, ctx: Any) -> date:
        if isinstance(value, date):
            return value
        try:
            day = date.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD)", param, ctx)
        if not self.first <= day <= self.last:
            self.fail(f"{value} is not between {self.first} and {self.last}", param, ctx)
        return day


DAY = DayType()


def _common(command: Callable) -> Callable:
    """`--db` and `--config` on every command and group too, so `digest items --db x` and
    `digest feedback --db x add ...` work. The value given last on the line wins."""
    command = click.option(
        "--config", "config_here", metavar="FILE", help="Config file (default: ./digest.toml)."
    )(command)
    command = click.option(
        "--db", "db_here", metavar="PATH", help="SQLite database file (store.db)."
    )(command)

    @functools.wraps(command)
    def wrapper(*args: Any, db_here: str | None, config_here: str | None, **kwargs: Any):
        obj = click.get_current_context().find_root().obj
        obj["db"] = obj.get("db") if db_here is None else db_here
        obj["config"] = obj.get("config") if config_here is None else config_here
        return command(*args, **kwargs)

    return wrapper


def _profiles_option(command: Callable) -> Callable:
    """`--profiles` on a command, or on the `profiles` group for all its commands.

    The command receives `profiles_dir`: its own flag, else the group's, else None.
    """
    command = click.option(
        "--profiles", "profiles_dir", metavar="DIR",
        help="Folder of reader TOML files (readers.profiles, $DIGEST_PROFILES; default "
        "./profiles, which may be absent).",
    )(command)  # fmt: skip

    @functools.wraps(command)
    def wrapper(*args: Any, profiles_dir: str | None, **kwargs: Any):
        obj = click.get_current_context().find_root().obj
        if profiles_dir is not None:
            obj["profiles"] = profiles_dir
        return command(*args, profiles_dir=obj.get("profiles"), **kwargs)

    return wrapper


#: Flags of `run` and `preview` that override one setting each (flag > env > file).
_OUTPUT_FLAGS = (
    ("--templates", "output.templates", "DIR", "Templates overriding the bundled ones by name."),
    ("--out-dir", "output.dir", "DIR", "Root of everything written (output.dir)."),
    ("--base-url", "links.base_url", "URL", "Public URL of `digest serve` for tracked links."),
    ("--embeddings", "model.embeddings", "auto|on|off", "Sentence embeddings for the model."),
)


def _output_options(command: Callable) -> Callable:
    """The setting-override flags of the daily commands, passed on as `overrides`."""
    for flag, _key, metavar, text in reversed(_OUTPUT_FLAGS):
        dest = flag.lstrip("-").replace("-", "_")
        command = click.option(flag, dest, metavar=metavar, help=text)(command)

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any):
        overrides = {}
        for flag, key, _metavar, _text in _OUTPUT_FLAGS:
            overrides[key] = kwargs.pop(flag.lstrip("-").replace("-", "_"))
        return command(*args, overrides=overrides, **kwargs)

    return wrapper


@click.group(cls=DigestGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="digest")
@click.option("--db", metavar="PATH", help="SQLite database file (store.db, $DIGEST_DB).")
@click.option(
    "--config", metavar="FILE", help="Config file (default: ./digest.toml, $DIGEST_CONFIG)."
)
@click.pass_context
def cli(ctx: click.Context, db: str | None, config: str | None) -> None:
    """Personal, ranked research-paper digests from daily dumps and feeds."""
    ctx.obj = {"db": db, "config": config}


def settings_for(ctx: click.Context, **flags: Any) -> Settings:
    """Every setting for this command: its flags over the environment over the file."""
    root = ctx.find_root().obj or {}
    given = {"store.db": root.get("db"), **flags}
    return load_settings(root.get("config"), flags=given)


def open_store(ctx: click.Context, settings: Settings, *, create: bool = False) -> Store:
    """Open the database; only `ingest` creates one (elsewhere a typo'd --db is an error).

    A database this command creates is removed again if the command fails while it
    still holds no data (see `DigestGroup.invoke`).
    """
    store = Store.open(settings.store.db, create=create)
    if store.created:
        ctx.find_root().obj.setdefault("new_databases", []).append(store.path)
    ctx.call_on_close(store.close)
    return store


def _profiles(settings: Settings, *, warn: bool = True) -> ProfileSet:
    """The profiles: a folder named by flag, env or file must exist; the default may not.

    Invalid files are skipped; with `warn`, each is named on stderr.
    """
    explicit = "readers.profiles" in settings.explicit
    found = load_profiles(settings.readers.profiles if explicit else None)
    for warning in found.warnings() if warn else ():
        click.echo(f"warning: {warning}", err=True)
    return found


# -- ingest and inspect -------------------------------------------------------------------


@cli.command("ingest")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
    help="Force the input format instead of detecting it.",
)  # fmt: skip
@click.option("--date", "day", type=DAY, help="Day of a feed; year of a yearless dump date.")
@click.option("--source", help="Name the source instead of deriving it from the input.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary and errors.")
@_common
@click.pass_context
def ingest_cmd(
    ctx: click.Context, paths: tuple[str, ...], fmt: str, day: date | None,
    source: str | None, quiet: bool,
) -> None:  # fmt: skip
    """Read digest dumps, RSS/Atom/JSON feeds and JSON items into the database.

    PATHS are files, directories (every file inside, dumps in date order),
    http(s) feed URLs or - (standard input). Items already seen on an earlier
    day or from another source are linked to the first sighting and do not
    count as new.
    """
    store = open_store(ctx, settings_for(ctx), create=True)

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
@click.option("--limit", type=click.IntRange(1, MAX_INTEGER), help="At most this many items.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@_common
@click.pass_context
def items_cmd(
    ctx: click.Context, new_on: date | None, search: str | None, limit: int | None,
    as_json: bool,
) -> None:  # fmt: skip
    """List stored items (one per distinct paper)."""
    store = open_store(ctx, settings_for(ctx))
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
@_common
@click.pass_context
def stats_cmd(ctx: click.Context, as_json: bool) -> None:
    """Counts of items, sightings, readers and new items per day."""
    stats = open_store(ctx, settings_for(ctx)).stats()
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    for key in ("items", "records", "sources", "readers", "events", "sends"):
        click.echo(f"{key:>8}: {stats[key]}")
    click.echo("new per day:")
    for day, count in stats["new_per_day"].items():
        click.echo(f"  {day}  {count}")


# -- profiles -----------------------------------------------------------------------------


@cli.group("profiles")
@_profiles_option
@_common
def profiles_group(profiles_dir: str | None) -> None:
    """List, show and validate reader and team profiles."""


@profiles_group.command("list")
@_profiles_option
@_common
@click.pass_context
def profiles_list(ctx: click.Context, profiles_dir: str | None) -> None:
    """One line per reader: handle, name, interests, channels."""
    found = _profiles(settings_for(ctx, **{"readers.profiles": profiles_dir}))
    for p in found.readers.values():
        click.echo(
            f"{p.handle:<16} {p.name:<24} {', '.join(p.interests)}  [{', '.join(p.channels)}]"
        )
    for t in found.teams.values():
        click.echo(f"team {t.name}: {', '.join(t.members)}")


@profiles_group.command("show")
@click.argument("handle")
@_profiles_option
@_common
@click.pass_context
def profiles_show(ctx: click.Context, handle: str, profiles_dir: str | None) -> None:
    """Every field of one reader's profile, as JSON, and whether they are subscribed."""
    settings = settings_for(ctx, **{"readers.profiles": profiles_dir})
    found = _profiles(settings, warn=False)
    profile = found.profile(handle)
    data = dataclasses.asdict(profile)
    data["teams"] = list(teams_of(found, profile.handle))
    data["subscribed"] = _subscribed(settings, profile.handle)
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _subscribed(settings: Settings, handle: str) -> bool:
    """False only when the database exists and says the reader unsubscribed."""
    if not Path(settings.store.db).exists():
        return True
    with Store.open(settings.store.db, create=False) as store:
        return handle not in store.unsubscribed()


@profiles_group.command("check")
@_profiles_option
@_common
@click.pass_context
def profiles_check(ctx: click.Context, profiles_dir: str | None) -> None:
    """Validate every profile; print one line per problem (file and key)."""
    found = _profiles(settings_for(ctx, **{"readers.profiles": profiles_dir}), warn=False)
    for problem in found.problems:
        click.echo(f"error: {problem}", err=True)
    if found.problems:
        ctx.exit(1)
    click.echo(f"{len(found.readers)} reader(s), {len(found.teams)} team(s): all valid")


# -- feedback -----------------------------------------------------------------------------


@cli.group("feedback")
@_common
def feedback_group() -> None:
    """Record what readers clicked, liked, disliked, tagged and were sent."""


@feedback_group.command("import")
@click.argument("file")
@_common
@click.pass_context
def feedback_import(ctx: click.Context, file: str) -> None:
    """Import CSV or JSONL rows of user,item,event[,time][,tag].

    ITEM may be an item id, URL, arXiv id or exact title. Bad rows (an unknown item
    or event, an invalid user handle or time) are reported with their line number;
    good rows still import. Importing the same file again adds nothing.
    """
    report = import_feedback(open_store(ctx, settings_for(ctx)), file)
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
@click.argument("event")
@click.option("--tag", default="", help="The tag, for a 'tag' event.")
@click.option("--time", "stamp", default="", help="ISO 8601 time (default: now).")
@_common
@click.pass_context
def feedback_add(
    ctx: click.Context, user: str, item: str, event: str, tag: str, stamp: str
) -> None:
    """Record one event: USER did EVENT on ITEM (id, URL, arXiv id or title).

    EVENT is click, like, dislike, tag or sent. The same checks as for an imported row
    apply; without --time, an event USER already has on ITEM is not recorded again.
    """
    done = add_feedback(open_store(ctx, settings_for(ctx)), user, item, event, time=stamp, tag=tag)
    state = "recorded" if done.added else "already recorded"
    click.echo(f"{state}: {done.user} {done.event} {done.item_id}")


# -- model and ranking ----------------------------------------------------------------------

MODEL_OPTION = click.option(
    "--model", "model_path", metavar="PATH",
    help="Model file (store.model, $DIGEST_MODEL; default ./digest.model).",
)  # fmt: skip


@cli.command("train")
@MODEL_OPTION
@_profiles_option
@click.option("--update", is_flag=True, help="Incremental update of the saved model.")
@click.option("--epochs", type=click.IntRange(1, 500), help="LightFM epochs (model.epochs).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), help="Random state (model.seed).")
@click.option(
    "--embeddings", type=click.Choice(["auto", "on", "off"]),
    help="Use sentence embeddings (model.embeddings; 'on' needs the 'embed' extra).",
)  # fmt: skip
@click.option(
    "--tune/--no-tune", default=True, show_default=True,
    help="Learn the blend weights from the newest items' clicks (a full train only).",
)  # fmt: skip
@click.option(
    "--force", is_flag=True,
    help="Retrain even if the saved model was trained on exactly this data and these settings.",
)  # fmt: skip
@_common
@click.pass_context
def train_cmd(
    ctx: click.Context, model_path: str | None, profiles_dir: str | None, update: bool,
    epochs: int | None, seed: int | None, embeddings: str | None, tune: bool, force: bool,
) -> None:  # fmt: skip
    """Fit the recommender on all items, readers and feedback, and save it.

    With --update, the saved model takes a few more epochs on new items and events
    (the daily path); without it, the model is trained from scratch and, when the
    team has enough clicks on its newest items, the blend weights are learned from
    them (`digest model show` lists them). Same seed, same data: same model (unless
    the weight search is stopped by its time budget, which train reports), so a
    saved model trained on exactly this data and these settings is kept as it is
    (--force retrains).
    """
    settings = settings_for(
        ctx, **{"store.model": model_path, "readers.profiles": profiles_dir,
                "model.epochs": epochs, "model.seed": seed, "model.embeddings": embeddings},
    )  # fmt: skip
    path = settings.store.model
    check_output_file(path)  # before training, not after it
    from digest.training import sync_readers, train  # loads the model's libraries
    from digest.tuning import describe as describe_tuning

    store = open_store(ctx, settings)
    profiles = _profiles(settings)
    sync_readers(store, profiles)
    model = train(
        store, profiles, path, update=update, epochs=settings.model.epochs,
        random_state=settings.model.seed, embeddings=settings.model.embeddings,
        embed_recipe=settings.model.embed_text, update_epochs=settings.model.update_epochs,
        tune=tune, force=force,
    )  # fmt: skip
    if model.kept:
        click.echo(
            f"{path} is up to date: trained on exactly these {len(model.item_ids)} items, "
            "this feedback, these profiles and settings (--force retrains)"
        )
        return
    click.echo(
        f"trained on {len(model.item_ids)} items, {len(model.reader_ids)} readers "
        f"(embeddings {'on' if model.use_embed else 'off'}) -> {path}"
    )
    if not update:
        click.echo(describe_tuning(model.tuning))


@cli.group("model")
@_common
def model_group() -> None:
    """Inspect the trained model."""


@model_group.command("show")
@MODEL_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@_common
@click.pass_context
def model_show_cmd(ctx: click.Context, model_path: str | None, as_json: bool) -> None:
    """The model's size, blend weights, neighbour settings and validation score."""
    settings = settings_for(ctx, **{"store.model": model_path})
    from digest.model import Recommender  # loads the model's libraries
    from digest.tuning import describe as describe_tuning

    info = Recommender.load(settings.store.model).summary()
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    embedding = info["embeddings"] or "off"
    click.echo(f"model: {settings.store.model}")
    click.echo(f"{info['items']} items, {info['readers']} readers, embeddings {embedding}")
    click.echo(describe_tuning(info["tuning"]))
    click.echo(
        f"neighbours: {info['neighbours_k']} per item, co-click expansion "
        f"{info['expansion']:g}; ridge {info['ridge']:g} (LightFM space), "
        f"{info['ridge_embed']:g} (embeddings)"
    )
    click.echo(f"{'scorer':<20} {'weight':>7} {'default':>8}")
    for name, weight in info["weights"].items():
        default = info["default_weights"].get(name, 0.0)
        click.echo(f"{name:<20} {weight:>7.3g} {default:>8.3g}")


@cli.command("rank")
@click.option("--user", "user", help="Rank for this reader.")
@click.option("--all", "all_readers", is_flag=True, help="Rank for every reader.")
@click.option("--date", "day", type=DAY, help="Candidates first seen on this day.")
@click.option("--new-on", type=DAY, help="Same as --date.")
@click.option("--candidates", type=click.Path(dir_okay=False), help="File of item ids.")
@click.option("--top", type=click.IntRange(1, 500), help="Items per reader (default: profile).")
@click.option("--min-score", type=float, help="Drop items scoring below this.")
@click.option("--diversity", type=click.FloatRange(0, 1), help="0 = by score; higher = varied.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text",
    help="Output format.",
)  # fmt: skip
@MODEL_OPTION
@_profiles_option
@_common
@click.pass_context
def rank_cmd(
    ctx: click.Context, user: str | None, all_readers: bool, day: date | None,
    new_on: date | None, candidates: str | None, top: int | None, min_score: float | None,
    diversity: float | None, fmt: str, model_path: str | None, profiles_dir: str | None,
) -> None:  # fmt: skip
    """Rank a day's new items for one reader (--user) or every reader (--all).

    Items a reader was already sent (any day, any channel) or acted on are never
    offered, nor items matching a muted topic. Each pick says why it was chosen.
    Nothing is recorded but the sentence vectors of items not embedded before (each item
    is embedded once, ever): `digest run` is what delivers.
    """
    if bool(user) == all_readers:
        raise click.UsageError("give exactly one of --user or --all")
    settings = settings_for(
        ctx, **{"store.model": model_path, "readers.profiles": profiles_dir,
                "digest.diversity": diversity, "digest.min_score": min_score},
    )  # fmt: skip
    store = open_store(ctx, settings)
    profiles = _profiles(settings)
    from digest.model import Recommender  # loads the model's libraries

    model = Recommender.load(settings.store.model)
    when = new_on or day or daily.latest_day(store)
    items = (
        daily.candidates_from_file(store, candidates)
        if candidates
        else daily.candidates(store, when, settings.digest.window_days)
    )
    readers = daily.rank_audience(store, profiles, user)
    digests = daily.rank_readers(
        store, model, profiles, readers, items, when, top=top,
        diversity=settings.digest.diversity, min_score=_min_score(settings),
    )  # fmt: skip
    for digest in digests:
        if fmt == "jsonl":
            click.echo(json.dumps(digest.to_json(), ensure_ascii=False))
            continue
        click.echo(f"{digest.audience}: {len(digest.picks)} item(s)")
        for pick in digest.picks:
            click.echo(f"  {pick.rank:>2}. [{pick.score:+.2f}] {pick.item.title}")
            click.echo(f"      {pick.item.id} - {pick.why.text()}")


def _min_score(settings: Settings) -> float | None:
    value = settings.digest.min_score
    return None if value == float("-inf") else value


# -- the daily run ----------------------------------------------------------------------------


@cli.command("run")
@click.option("--date", "day", type=DAY, help="Digest day (default: the latest with new items).")
@click.option("--dry-run", is_flag=True, help="Rank and render, but write and send nothing.")
@click.option("--only", "only", metavar="USER", help="Deliver to this reader only.")
@_output_options
@_common
@click.pass_context
def run_cmd(
    ctx: click.Context,
    day: date | None,
    dry_run: bool,
    only: str | None,
    overrides: dict[str, Any],
) -> None:
    """The daily job: ingest, update the model, rank, render and deliver.

    Every reader gets their digest on each of their channels (email, feed, wiki),
    and every team a wiki post and a feed. Running a day twice sends nothing twice;
    a run killed halfway delivers the rest on the next run. Exit status 1 when any
    delivery failed (the others still went out).
    """
    settings = settings_for(ctx, **overrides)
    with _progress() as progress:
        report = daily.run(settings, day=day, dry_run=dry_run, only=only, progress=progress)
    for line in report.warnings:
        click.echo(f"warning: {line}", err=True)
    shown = 50  # error lines before the rest are summed up
    for line in report.failures[:shown]:
        click.echo(f"error: {line}", err=True)
    if len(report.failures) > shown:
        click.echo(f"error: ... and {len(report.failures) - shown} more failure(s)", err=True)
    click.echo(report.summary())
    if not report.ok:
        ctx.exit(1)


@cli.command("preview")
@click.option("--user", "user", required=True, help="The reader whose email to preview.")
@click.option("--date", "day", type=DAY, help="Digest day (default: the latest with new items).")
@click.option("--out", "out", metavar="PATH", help="HTML file to write (text beside it).")
@_output_options
@_common
@click.pass_context
def preview_cmd(
    ctx: click.Context, user: str, day: date | None, out: str | None, overrides: dict[str, Any]
) -> None:
    """Write one reader's email (HTML and text) to files and print the paths; send nothing."""
    if out is not None:
        check_output_file(out)
    paths = daily.preview(settings_for(ctx, **overrides), user, day=day, out=out)
    for path in paths:
        click.echo(str(path))


@cli.command("init")
@click.argument("path", default="digest.toml")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init_cmd(path: str, force: bool) -> None:
    """Write a commented example config (every key at its default) to PATH."""
    target = check_output_file(path)
    if target.exists() and not force:
        raise DigestError(f"{path} already exists (use --force to overwrite)")
    atomic_write(path, example_config())
    click.echo(f"wrote {path}")


class _progress:
    """A progress bar on a terminal; plain log lines otherwise (cron, pipes)."""

    def __enter__(self) -> Callable[[str, int, int], None]:
        self.bar = None
        self.tasks: dict[str, Any] = {}
        self.logged: dict[str, float] = {}
        if sys.stderr.isatty():
            from rich.progress import Progress

            self.bar = Progress(transient=True)
            self.bar.start()
        return self.update

    def update(self, stage: str, done: int, total: int) -> None:
        if self.bar is not None:
            if stage not in self.tasks:
                self.tasks[stage] = self.bar.add_task(stage, total=total)
            self.bar.update(self.tasks[stage], completed=done, total=total)
            return
        now = time.monotonic()
        if done >= total or now - self.logged.get(stage, 0.0) >= 5.0:
            self.logged[stage] = now
            click.echo(f"{stage}: {done}/{total}", err=True)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


# -- the feedback service and readers' subscriptions -------------------------------------------


@cli.command("serve")
@click.option("--host", help="Address to listen on (serve.host; default 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (serve.port; default 8080).")
@_common
@click.pass_context
def serve_cmd(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the feedback service: tracked clicks, more/less like this, unsubscribe, feeds.

    Links in digests point here when links.base_url is set. Needs the link secret
    ($DIGEST_SECRET or links.secret_file) and an existing database.
    """
    from digest.serve import serve

    settings = settings_for(ctx, **{"serve.host": host, "serve.port": port})

    def ready(url: str) -> None:
        click.echo(f"digest serve on {url} (database {settings.store.db}); Ctrl-C stops", err=True)

    serve(settings, ready=ready)


@cli.group("readers")
@_common
def readers_group() -> None:
    """Subscribe, unsubscribe and rotate a reader's private feed token."""


@readers_group.command("unsubscribe")
@click.argument("handle")
@_common
@click.pass_context
def readers_unsubscribe(ctx: click.Context, handle: str) -> None:
    """Stop all deliveries to HANDLE from the next `digest run` on."""
    changed = _set_subscribed(ctx, handle, subscribed=False)
    click.echo(f"{handle}: {'unsubscribed' if changed else 'already unsubscribed'}")


@readers_group.command("subscribe")
@click.argument("handle")
@_common
@click.pass_context
def readers_subscribe(ctx: click.Context, handle: str) -> None:
    """Re-subscribe HANDLE (after an unsubscribe link or command)."""
    changed = _set_subscribed(ctx, handle, subscribed=True)
    click.echo(f"{handle}: {'subscribed again' if changed else 'already subscribed'}")


@readers_group.command("rotate-feed-token")
@click.argument("handle")
@_common
@click.pass_context
def readers_rotate(ctx: click.Context, handle: str) -> None:
    """Give HANDLE (or a team, as team:NAME) a new private feed URL; the old one stops
    working at once."""
    settings = settings_for(ctx)
    store = open_store(ctx, settings)
    if handle.startswith("team:"):
        handle = _known_team(_profiles(settings), handle.removeprefix("team:"))
        with store.transaction():
            token = store.rotate_team_feed_token(handle.removeprefix("team:"))
    else:
        handle = _known_reader(store, handle)
        with store.transaction():
            token = store.rotate_feed_token(handle)
    base = settings.links.base_url.rstrip("/") if settings.links.base_url else "<base_url>"
    click.echo(f"{handle}: new feed {base}/feeds/{token}.atom (and .rss)")


def _set_subscribed(ctx: click.Context, handle: str, *, subscribed: bool) -> bool:
    store = open_store(ctx, settings_for(ctx))
    handle = _known_reader(store, handle)
    with store.transaction():
        return store.set_subscribed(handle, subscribed)


def _known_team(profiles: ProfileSet, name: str) -> str:
    if name not in profiles.teams:
        raise DigestError(f"no team '{name}' in {profiles.folder}/teams")
    return f"team:{name}"


def _known_reader(store: Store, handle: str) -> str:
    key = valid_handle(handle)
    if key not in store.reader_handles():
        raise DigestError(f"no reader '{key}' in {store.path} (run 'digest run' or 'train' first)")
    return key


# -- evaluation ---------------------------------------------------------------------------


@cli.command("evaluate")
@click.option("--citeulike", type=click.Path(file_okay=False), help="citeulike-a folder.")
@click.option("--items", "items_path", type=click.Path(dir_okay=False), help="Items JSONL.")
@click.option("--interactions", type=click.Path(dir_okay=False), help="Interactions CSV.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option(
    "--protocol", "protocols", multiple=True, type=click.Choice(PROTOCOL_NAMES),
    help="Protocols to run (default: all three).",
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
    Reader history: readers with 50+ clicks cut to 0 (profile interests only), 1, 3
    or 10 clicks. Baselines (random, text-predicted popularity, TF-IDF centroid,
    per-reader SVM, LightFM alone) run on the same split; digest is reported with
    fixed weights and with weights learned inside the split's training data.
    """
    if write_path is not None:
        check_output_file(write_path)  # before the evaluation, which takes minutes
    from digest.evaluate import evaluate, read_citeulike, read_dataset, render_markdown

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
        data, seed_list, protocols=protocols or PROTOCOL_NAMES,
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
    check_output_dir(out)
    from digest.evaluate import read_citeulike, write_dataset

    items_path, pairs_path = write_dataset(read_citeulike(folder), out)
    click.echo(f"wrote {items_path} and {pairs_path}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="digest")


if __name__ == "__main__":
    sys.exit(main())
