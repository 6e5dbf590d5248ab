"""Every CLI command through click's runner against a real database file."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, ROOT, SEEDS

from digest.cli import DayType, cli
from digest.store import Store


def _run(runner: CliRunner, db: Path, *args: str):
    return runner.invoke(cli, ["--db", str(db), *args], catch_exceptions=False)


def test_ingest_prints_new_per_dump_and_summary(runner: CliRunner, db_path: Path) -> None:
    result = _run(runner, db_path, "ingest", str(SEEDS))
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert "85 new" in lines[0] and "63 new" in lines[4]
    assert lines[-1] == "5 file(s), 0 failed: 426 entries, 383 new, 43 already seen"


def test_db_from_environment(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "env.db"
    result = runner.invoke(
        cli, ["ingest", str(FIXTURES / "dumps" / "crlf.txt")], env={"DIGEST_DB": str(db)}
    )
    assert result.exit_code == 0, result.output
    assert db.exists()


def test_items_new_on_search_and_json(runner: CliRunner, db_path: Path) -> None:
    _run(runner, db_path, "ingest", str(SEEDS))
    day = _run(runner, db_path, "items", "--new-on", "2026-03-13")
    assert len(day.output.strip().splitlines()) == 61
    found = _run(runner, db_path, "items", "--search", "mixture of experts", "--json")
    rows = [json.loads(line) for line in found.output.splitlines()]
    assert rows and all({"id", "title", "url", "first_seen"} <= row.keys() for row in rows)
    assert any("Mixture" in row["title"] or "MoE" in row["title"] for row in rows)


def test_stats(runner: CliRunner, db_path: Path) -> None:
    _run(runner, db_path, "ingest", str(SEEDS))
    data = json.loads(_run(runner, db_path, "stats", "--json").output)
    assert data["items"] == 383
    assert data["new_per_day"] == {
        "2026-03-11": 173, "2026-03-12": 86, "2026-03-13": 61, "2026-07-31": 63,
    }  # fmt: skip


@pytest.mark.parametrize(
    "name", ["empty.txt", "binary.png", "unknown.txt", "badline.jsonl", "latin.txt"]
)
def test_bad_input_is_one_line_and_nonzero(runner: CliRunner, db_path: Path, name: str) -> None:
    good = FIXTURES / "dumps" / "crlf.txt"
    result = runner.invoke(
        cli, ["--db", str(db_path), "ingest", str(FIXTURES / "bad" / name), str(good)]
    )
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and name in errors[0]
    assert "Traceback" not in result.output
    assert "1 failed" in result.stdout and "2 new" in result.stdout  # the good file still ingests


def test_unreadable_path_and_bad_date(runner: CliRunner, db_path: Path) -> None:
    result = runner.invoke(cli, ["--db", str(db_path), "ingest", "/no/such/file.txt"])
    assert result.exit_code == 1 and "no such file" in result.stderr
    result = runner.invoke(cli, ["--db", str(db_path), "items", "--new-on", "March"])
    assert result.exit_code == 2 and "is not a date" in result.output


def test_unusable_database_is_a_clean_error(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "x.db"
    bad.write_bytes(b"garbage" * 500)
    result = runner.invoke(cli, ["--db", str(bad), "stats"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.output
    result = runner.invoke(cli, ["--db", str(tmp_path / "no" / "dir.db"), "stats"])
    assert result.exit_code == 1 and "directory does not exist" in result.stderr


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, command in group.commands.items():
        out.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            out.extend(_commands(command, f"{prefix}{name} "))
    return out


@pytest.mark.parametrize("name,command", _commands(cli), ids=lambda v: str(v))
def test_every_command_has_help_and_is_documented(name: str, command: click.Command) -> None:
    assert command.help and len(command.help) > 20
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"digest {name}" in readme


@pytest.mark.parametrize("name,command", _commands(cli), ids=lambda v: str(v))
def test_every_option_has_help_text(name: str, command: click.Command) -> None:
    """`--help` explains every option of every command, not just the command."""
    bare = [
        p.opts[0]
        for p in command.params
        if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()
    ]
    assert not bare, f"digest {name}: options without help: {bare}"


#: Arguments that let each command get as far as checking its options.
_REQUIRED = {
    "ingest": ["x.txt"], "preview": ["--user", "ada"], "feedback import": ["f.csv"],
    "feedback add": ["ada", "x", "click"], "profiles show": ["ada"], "dataset": ["d", "--out", "o"],
    "readers unsubscribe": ["ada"], "readers subscribe": ["ada"],
    "readers rotate-feed-token": ["ada"], "rank": ["--all"],
}  # fmt: skip


def _options(kind: type) -> list[tuple[str, str]]:
    return [
        (name, param.opts[0])
        for name, command in _commands(cli)
        for param in command.params
        if isinstance(param, click.Option) and isinstance(param.type, kind)
    ]


@pytest.mark.parametrize("name,option", _options(click.types.IntParamType))
def test_every_integer_option_is_bounded_on_both_sides(name: str, option: str) -> None:
    """A number typed by a user never reaches SQLite or C code unbounded."""
    command = dict(_commands(cli))[name]
    param = next(p for p in command.params if p.opts[0] == option)
    assert isinstance(param.type, click.IntRange), f"digest {name} {option} has no range"
    assert param.type.min is not None and param.type.max is not None


@pytest.mark.parametrize("value", [str(2**63), str(10**30), str(-(2**63) - 1), "1e3", "0x10"])
@pytest.mark.parametrize("name,option", _options(click.types.IntParamType))
def test_a_huge_integer_option_is_a_usage_error(
    runner: CliRunner, tmp_path: Path, name: str, option: str, value: str
) -> None:
    args = [*name.split(), *_REQUIRED.get(name, []), option, value]
    result = runner.invoke(cli, ["--db", str(tmp_path / "d.db"), *args])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.stderr, result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "d.db").exists()


@pytest.mark.parametrize("value", ["0001-01-01", "1899-12-31", "9999-12-31"])
@pytest.mark.parametrize("name,option", _options(DayType))
def test_a_date_at_the_end_of_the_calendar_is_a_usage_error(
    runner: CliRunner, tmp_path: Path, name: str, option: str, value: str
) -> None:
    """Day arithmetic (feed windows, a day's neighbours) overflows at year 1 and 9999."""
    args = [*name.split(), *_REQUIRED.get(name, []), option, value]
    result = runner.invoke(cli, ["--db", str(tmp_path / "d.db"), *args])
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.stderr


def test_the_largest_limit_lists_everything(runner: CliRunner, db_path: Path) -> None:
    _run(runner, db_path, "ingest", str(FIXTURES / "dumps" / "crlf.txt"))
    listed = _run(runner, db_path, "items", "--limit", str(2**63 - 1))
    assert listed.exit_code == 0 and len(listed.stdout.splitlines()) == 2
    with Store.open(db_path) as store:
        assert len(store.items(limit=10**30)) == 2  # the library clamps as well


def test_an_option_after_the_command_is_accepted(runner: CliRunner, tmp_path: Path) -> None:
    """`digest items --db x` works like `digest --db x items` (and a typo'd path is an error)."""
    db = tmp_path / "d.db"
    assert runner.invoke(cli, ["ingest", str(FIXTURES / "dumps" / "crlf.txt"), "--db", str(db)])
    listed = runner.invoke(cli, ["items", "--db", str(db)])
    assert listed.exit_code == 0 and len(listed.stdout.splitlines()) == 2
    typo = runner.invoke(cli, ["items", "--db", str(tmp_path / "typo.db")])
    assert typo.exit_code == 1 and "no database" in typo.stderr
    assert not (tmp_path / "typo.db").exists()


def _groups() -> list[tuple[str, click.Group]]:
    return [("", cli), *((n, c) for n, c in _commands(cli) if isinstance(c, click.Group))]


@pytest.mark.parametrize("name,group", _groups()[1:], ids=lambda v: str(v))
def test_every_group_takes_db_and_config(name: str, group: click.Group) -> None:
    flags = {opt for p in group.params for opt in p.opts}
    assert {"--db", "--config"} <= flags, f"digest {name}"


def test_options_on_a_group_reach_its_commands(runner: CliRunner, tmp_path: Path) -> None:
    """`digest feedback --db x add ...` works like `digest feedback add --db x ...`."""
    db = str(tmp_path / "d.db")
    assert _run(runner, Path(db), "ingest", str(FIXTURES / "dumps" / "crlf.txt")).exit_code == 0
    item = json.loads(_run(runner, Path(db), "items", "--json").stdout.splitlines()[0])["id"]
    config = tmp_path / "digest.toml"
    config.write_text(f'[store]\ndb = "{db}"\n')
    csv_file = tmp_path / "fb.csv"
    csv_file.write_text(f"user,item,event\ngrace,{item},like\n")
    steps = [
        (["feedback", "--db", db, "add", "ada", item, "click"], "recorded: ada click"),
        (["feedback", "--config", str(config), "import", str(csv_file)], "1 imported"),
        (["readers", "--db", db, "unsubscribe", "ada"], "ada: unsubscribed"),
        (["readers", "--config", str(config), "subscribe", "ada"], "ada: subscribed again"),
        (["readers", "--db", db, "rotate-feed-token", "ada"], "ada: new feed"),
        (["profiles", "--profiles", str(ROOT / "profiles"), "list"], "Ada Example"),
        (["profiles", "--profiles", str(ROOT / "profiles"), "check"], "4 reader(s)"),
        (["profiles", "--profiles", str(ROOT / "profiles"), "--db", db, "show", "ada"], "Ada"),
        # the value given last on the line wins
        (["feedback", "--db", "typo.db", "add", "--db", db, "lin", item, "like"], "recorded"),
    ]
    for args, expected in steps:
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0 and expected in result.stdout, (args, result.output)
    with Store.open(db) as store:
        assert {(e[0], e[2]) for e in store.events()} == {
            ("ada", "click"),
            ("grace", "like"),
            ("lin", "like"),
        }
    empty = tmp_path / "empty"
    empty.mkdir()
    listed = runner.invoke(cli, ["profiles", "--profiles", str(empty), "list"])
    assert listed.exit_code == 0 and listed.stdout == ""  # the group's folder, not ./profiles


def _misplaced() -> list[tuple[list[str], str, str]]:
    """(words before the option, option, command it belongs to) for every command option
    that its group does not take."""
    out = []
    for path, group in _groups():
        taken = {opt for p in group.params for opt in p.opts}
        for name, command in group.commands.items():
            for param in command.params:
                option = param.opts[0]
                if isinstance(param, click.Option) and option not in taken | {"--help"}:
                    out.append((path.split(), option, f"digest {path} {name}".replace("  ", " ")))
    return out


@pytest.mark.parametrize("words,option,owner", _misplaced(), ids=lambda v: str(v))
def test_an_option_before_its_command_gets_a_hint(
    runner: CliRunner, words: list[str], option: str, owner: str
) -> None:
    subcommand = owner.split()[-1]
    result = runner.invoke(cli, [*words, option, "x", subcommand], prog_name="digest")
    assert result.exit_code == 2
    assert f"It is an option of '{owner}'" in result.stderr, result.stderr
    assert f"give it after the command name ('{owner} {option} ...')" in result.stderr


def test_rank_for_an_unknown_reader_is_an_error(runner: CliRunner, tmp_path: Path) -> None:
    """No profile and no feedback: an error that says so, not a digest of popular items.
    A reader known from feedback alone is ranked."""
    env = {"DIGEST_DB": str(tmp_path / "d.db"), "DIGEST_MODEL": str(tmp_path / "m.model"),
           "DIGEST_PROFILES": str(ROOT / "profiles")}  # fmt: skip
    dumps = str(ROOT / "examples" / "dumps")
    assert runner.invoke(cli, ["ingest", dumps], env=env).exit_code == 0
    trained = runner.invoke(cli, ["train", "--embeddings", "off", "--epochs", "2"], env=env)
    assert trained.exit_code == 0, trained.output
    ghost = runner.invoke(cli, ["rank", "--user", "ghost"], env=env)
    assert ghost.exit_code == 1
    assert ghost.stderr.startswith("error: no reader 'ghost': no profile in ")
    assert "no feedback recorded" in ghost.stderr and not ghost.stdout
    item = runner.invoke(cli, ["items", "--json", "--limit", "1"], env=env).stdout
    added = runner.invoke(cli, ["feedback", "add", "zoe", json.loads(item)["id"], "click"], env=env)
    assert added.exit_code == 0, added.output
    zoe = runner.invoke(cli, ["rank", "--user", "zoe", "--date", "2026-03-11"], env=env)
    assert zoe.exit_code == 0, zoe.output
    assert zoe.stdout.startswith("zoe: ")
