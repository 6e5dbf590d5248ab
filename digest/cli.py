"""The `digest` command line: thin commands over the library.

Each command parses its options, calls one library function and prints the result.
Library errors (`DigestError`) become one line on stderr and exit status 1.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Any

import click

from digest import __version__
from digest.errors import DigestError
from digest.ingest import FileOutcome, ingest
from digest.parsers import FORMATS
from digest.store import DEFAULT_DB, ENV_DB, Store


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


def parse_day(value: str | None, what: str = "--date") -> date | None:
    """YYYY-MM-DD, or a usage error naming the option."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=what) from None


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


def open_store(ctx: click.Context) -> Store:
    """Open the database named by --db / $DIGEST_DB, closed when the command ends."""
    store = Store.open(ctx.obj["db"])
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

    PATHS are files, directories (every file inside, dumps in date order) or
    http(s) feed URLs. Items already seen on an earlier day or from another
    source are linked to the first sighting and do not count as new.
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
    store = open_store(ctx)
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
    stats = open_store(ctx).stats()
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    for key in ("items", "records", "sources", "readers", "events", "sends"):
        click.echo(f"{key:>8}: {stats[key]}")
    click.echo("new per day:")
    for day, count in stats["new_per_day"].items():
        click.echo(f"  {day}  {count}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="digest")


if __name__ == "__main__":
    sys.exit(main())
