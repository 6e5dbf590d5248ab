"""Settings: flag > `DIGEST_*` environment > config file > default, and every bad value a
clean one-line error naming the file (or variable) and the key.

Most tests call `load_settings` with an explicit environment mapping; the command-line
tests go through click's runner against real files.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.errors import ConfigError
from digest.settings import Settings, example_config, keys, load_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_digest_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DIGEST_"):
            monkeypatch.delenv(name)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


FILE = """
[store]
db = "from-file.db"
[smtp]
port = 2525
host = "mail.file.example"
[email]
transport = "smtp"
[model]
embeddings = "on"
epochs = 7
"""


# -- precedence ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "flag", "env_name", "env_value", "file_value", "default"),
    [
        ("store.db", "flag.db", "DIGEST_DB", "env.db", "from-file.db", "digest.db"),
        ("smtp.port", 26, "DIGEST_SMTP_PORT", "2626", 2525, 587),
        (
            "smtp.host",
            "mail.flag",
            "DIGEST_SMTP_HOST",
            "mail.env",
            "mail.file.example",
            "localhost",
        ),
        ("email.transport", "outbox", "DIGEST_EMAIL_TRANSPORT", "outbox", "smtp", "outbox"),
        ("model.embeddings", "auto", "DIGEST_EMBEDDINGS", "off", "on", "auto"),
    ],
)
def test_flag_beats_environment_beats_file_beats_default(
    tmp_path: Path, key: str, flag, env_name: str, env_value: str, file_value, default
) -> None:
    config = write(tmp_path / "conf" / "digest.toml", FILE)
    section, _, name = key.partition(".")

    def value(settings: Settings):
        found = getattr(getattr(settings, section), name)
        # Paths in the file are relative to its folder: compare file names only.
        return Path(found).name if key == "store.db" else found

    env = {env_name: env_value}
    assert value(load_settings(str(config), flags={key: flag}, env=env)) == flag
    expected_env = int(env_value) if isinstance(default, int) else env_value
    assert value(load_settings(str(config), env=env)) == expected_env
    assert value(load_settings(str(config), env={})) == file_value
    empty = write(tmp_path / "empty.toml", "")
    assert value(load_settings(str(empty), env={})) == default
    # A flag given as None (not on the command line) does not count.
    assert value(load_settings(str(config), flags={key: None}, env={})) == file_value


def test_explicit_keys_are_those_set_by_flag_environment_or_file(tmp_path: Path) -> None:
    config = write(tmp_path / "digest.toml", "[feeds]\ndays = 3\n")
    settings = load_settings(
        str(config), flags={"store.model": "m"}, env={"DIGEST_OUT": "elsewhere"}
    )
    assert settings.explicit == {"feeds.days", "store.model", "output.dir"}
    assert settings.config == str(config)


def test_the_command_line_follows_the_same_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`digest ingest` creates the database the winning setting names."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "conf" / "digest.toml", '[store]\ndb = "file.db"\n')
    dump = ROOT / "examples" / "dumps" / "2026-03-11.txt"
    runner = CliRunner()
    base = ["--config", "conf/digest.toml"]

    def ingest(*args: str, env: dict[str, str] | None = None) -> None:
        result = runner.invoke(cli, [*args, "ingest", "-q", str(dump)], env=env)
        assert result.exit_code == 0, result.output

    ingest(*base, "--db", "flag.db", env={"DIGEST_DB": "env.db"})
    assert (tmp_path / "flag.db").exists()
    ingest(*base, env={"DIGEST_DB": "env.db"})
    assert (tmp_path / "env.db").exists()
    ingest(*base)
    assert (tmp_path / "conf" / "file.db").exists()  # relative to the config file
    ingest()
    assert (tmp_path / "digest.db").exists()
    ingest(env={"DIGEST_CONFIG": "conf/digest.toml"})
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["digest.db", "env.db", "flag.db"]


# -- paths -----------------------------------------------------------------------------------


def test_paths_in_a_file_are_relative_to_the_file(tmp_path: Path) -> None:
    config = write(
        tmp_path / "deploy" / "conf" / "digest.toml",
        """
[store]
db = "../state/digest.db"
[readers]
profiles = "people"
[sources]
paths = ["dumps", "/srv/abs/feeds", "https://export.arxiv.org/rss/cs.LG"]
[output]
dir = "out"
templates = ""
""",
    )
    settings = load_settings(str(config), env={"DIGEST_MODEL": "here.model"})
    conf = tmp_path / "deploy" / "conf"
    assert settings.store.db == str(tmp_path / "deploy" / "state" / "digest.db")
    assert settings.readers.profiles == str(conf / "people")
    assert settings.sources.paths == (
        str(conf / "dumps"), "/srv/abs/feeds", "https://export.arxiv.org/rss/cs.LG",
    )  # fmt: skip
    assert settings.outbox() == conf / "out" / "outbox"
    assert settings.templates() is None  # empty stays empty, not the config's folder
    # The environment (like a flag) is relative to the working directory, as typed.
    assert settings.store.model == "here.model"


# -- bad files and values --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[smtp]\nprot = 25\n", "unknown key 'smtp.prot' (did you mean 'smtp.port'?)"),
        ('[emial]\nsender = "x"\n', "unknown table [emial] (did you mean [email]?)"),
        ("[emial]\n", "unknown table [emial] (did you mean [email]?)"),
        (
            'transport = "smtp"\n',
            "unknown key 'transport' (did you mean 'email.transport', under [email]?)",
        ),
    ],
)
def test_an_unknown_key_names_the_file_and_key_with_a_suggestion(
    tmp_path: Path, text: str, message: str
) -> None:
    config = write(tmp_path / "digest.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(str(config), env={})
    assert str(caught.value) == f"{config}: {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[smtp]\nport = "25"\n', "key 'smtp.port' must be an integer, not '25'"),
        ("[smtp]\nport = 2.5\n", "key 'smtp.port' must be an integer, not 2.5"),
        ("[smtp]\nport = true\n", "key 'smtp.port' must be an integer, not True"),
        ("[smtp]\nport = 99999\n", "key 'smtp.port' must be between 1 and 65535, not 99999"),
        ('[wiki]\ncommit = "no"\n', "key 'wiki.commit' must be true or false, not 'no'"),
        ('[digest]\ndiversity = "0.5"\n', "key 'digest.diversity' must be a number, not '0.5'"),
        ("[digest]\ndiversity = nan\n", "key 'digest.diversity' must be a number, not nan"),
        ("[digest]\ndiversity = 2.0\n", "key 'digest.diversity' must be between 0 and 1, not 2.0"),
        ("[feeds]\ndays = 0\n", "key 'feeds.days' must be between 1 and 366, not 0"),
        ("[email]\nmax_bytes = -1\n", "key 'email.max_bytes' must be at least 1, not -1"),
        (
            '[sources]\npaths = "dumps"\n',
            "key 'sources.paths' must be a list of strings, not 'dumps'",
        ),
        ("[sources]\npaths = [1]\n", "key 'sources.paths' must be a list of strings, not [1]"),
        ("[store]\ndb = 3\n", "key 'store.db' must be a string, not 3"),
        (
            '[email]\ntransport = "pigeon"\n',
            "key 'email.transport' must be one of outbox, smtp, not 'pigeon'",
        ),
        (
            '[email]\nsender = "a\\nBcc: x@evil.example"\n',
            "key 'email.sender' must not contain control characters, not 'a\\nBcc: x@evil.example'",
        ),
        ("[smtp]\nport = 25\n[smtp]\nhost = 'x'\n", "invalid TOML: Cannot declare"),
        ("smtp = 3\n", "'smtp' must be a table ([smtp])"),
        ("[[smtp]]\nport = 25\n", "'smtp' must be a table ([smtp])"),
        ("[smtp]\nport = " + "9" * 5000 + "\n", "invalid TOML: Exceeds the limit"),
    ],
)
def test_a_wrong_value_names_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path / "digest.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(str(config), env={})
    assert str(caught.value).startswith(f"{config}: {message}")
    assert "\n" not in " ".join(str(caught.value).split())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DIGEST_SMTP_PORT": "abc"}, "$DIGEST_SMTP_PORT must be an integer, not 'abc'"),
        ({"DIGEST_SMTP_PORT": "0"}, "$DIGEST_SMTP_PORT must be between 1 and 65535, not 0"),
        ({"DIGEST_EMBEDDINGS": "maybe"}, "$DIGEST_EMBEDDINGS must be one of auto, on, off"),
    ],
)
def test_a_wrong_environment_value_names_the_variable(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(str(write(tmp_path / "digest.toml", "")), env=env)


def test_environment_text_is_converted(tmp_path: Path) -> None:
    settings = load_settings(
        str(write(tmp_path / "digest.toml", "")),
        env={"DIGEST_SMTP_PORT": " 2525 ", "DIGEST_EMBEDDINGS": "off", "DIGEST_DB": "  "},
    )
    assert settings.smtp.port == 2525 and settings.model.embeddings == "off"
    assert settings.store.db == "digest.db"  # blank is not set


def test_a_missing_config_file_named_anywhere_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: config file does not exist")):
        load_settings(env={"DIGEST_CONFIG": str(missing)})
    with pytest.raises(ConfigError, match="config file does not exist"):
        load_settings(str(missing), env={})
    with pytest.raises(ConfigError, match="config file is not a file"):
        load_settings(str(tmp_path), env={})


def test_digest_config_names_the_file_to_read(tmp_path: Path) -> None:
    config = write(tmp_path / "elsewhere.toml", "[feeds]\ndays = 5\n")
    assert load_settings(env={"DIGEST_CONFIG": str(config)}).feeds.days == 5


def test_a_missing_config_variable_is_a_one_line_cli_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run"], env={"DIGEST_CONFIG": str(tmp_path / "gone.toml")})
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'gone.toml'}: config file does not exist\n"


@pytest.mark.parametrize(
    "text",
    [
        "[sources]\npaths = " + "[" * 100_000 + "]" * 100_000 + "\n",
        "[sources]\npaths = " + "{a = " * 20_000 + "1" + "}" * 20_000 + "\n",
        "[sources]\n" + "a" * 10 + " = [" * 3000 + "\n",
    ],
    ids=["arrays", "inline-tables", "unterminated"],
)
def test_deeply_nested_garbage_is_a_clean_error(tmp_path: Path, text: str) -> None:
    config = write(tmp_path / "digest.toml", text)
    with pytest.raises(ConfigError, match=re.escape(f"{config}: invalid TOML")):
        load_settings(str(config), env={})
    result = CliRunner().invoke(cli, ["--config", str(config), "run"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {config}: invalid TOML")
    assert len(result.stderr.splitlines()) == 1


# -- digest init -----------------------------------------------------------------------------


def test_init_writes_a_config_that_loads_back_to_the_defaults(tmp_path: Path) -> None:
    target = tmp_path / "digest.toml"
    result = CliRunner().invoke(cli, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {target}\n"
    text = target.read_text(encoding="utf-8")
    assert text == example_config()
    defaults = Settings()
    assert dataclasses.replace(load_settings(str(target), env={}), config=None) == defaults

    # Every key is in the file, commented out; uncommented, each still means its default.
    names = [k.name.partition(".")[2] for k in keys()]
    uncommented = re.sub(rf"^# ({'|'.join(names)}) = ", r"\1 = ", text, flags=re.MULTILINE)
    assert uncommented.count("\n# ") < text.count("\n# ")
    write(target, uncommented)
    loaded = load_settings(str(target), env={})
    assert loaded.explicit == {k.name for k in keys()}
    for key in keys():
        section, _, name = key.name.partition(".")
        value = getattr(getattr(loaded, section), name)
        if key.path and key.default:  # relative to the file now
            assert value == str(tmp_path / key.default), key.name
        else:
            assert value == key.default, key.name


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = write(tmp_path / "digest.toml", "# mine\n")
    runner = CliRunner()
    refused = runner.invoke(cli, ["init", str(target)])
    assert refused.exit_code == 1
    assert refused.stderr == f"error: {target} already exists (use --force to overwrite)\n"
    assert target.read_text(encoding="utf-8") == "# mine\n"
    forced = runner.invoke(cli, ["init", str(target), "--force"])
    assert forced.exit_code == 0, forced.output
    assert target.read_text(encoding="utf-8") == example_config()


# -- documentation ---------------------------------------------------------------------------


def test_every_setting_is_documented_in_the_readme() -> None:
    """The README's settings table names every key (and its variable, if it has one)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [k.name for k in keys() if f"`{k.name}`" not in readme]
    missing += [f"${k.env}" for k in keys() if k.env and not re.search(rf"`\$?{k.env}`", readme)]
    assert not missing, f"README.md does not document: {', '.join(missing)}"


def test_the_embedding_text_setting_offers_exactly_the_recipes_embed_knows() -> None:
    # settings.py stays free of numpy (the CLI starts without it), so it names the recipes
    # itself; this keeps the two lists in step.
    from dataclasses import fields

    from digest import embed
    from digest.settings import ModelSettings

    (embed_text,) = [f for f in fields(ModelSettings) if f.name == "embed_text"]
    assert embed_text.metadata["choices"] == tuple(embed.RECIPES)
    assert embed_text.default == embed.DEFAULT_RECIPE
