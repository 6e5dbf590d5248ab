"""One settings object: flags, then `DIGEST_*` environment variables, then `digest.toml`.

Every setting is declared once below, with its type, default, environment variable
and help text; the README's table and `digest init`'s commented example are made
from the same declarations (and a test keeps the README in step). This is the only
module that reads `DIGEST_*` variables.

Paths written in a config file are relative to that file's folder, so a config
works from any working directory; paths from flags and the environment are
relative to the working directory, as a shell user expects.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digest.errors import ConfigError

DEFAULT_CONFIG = "digest.toml"
ENV_CONFIG = "DIGEST_CONFIG"
#: Read from the environment only, never from a file that might be committed.
ENV_SMTP_USER = "DIGEST_SMTP_USER"
ENV_SMTP_PASSWORD = "DIGEST_SMTP_PASSWORD"
ENV_SECRET = "DIGEST_SECRET"


def _opt(
    default: Any,
    help: str,
    *,
    env: str | None = None,
    choices: tuple = (),
    path: bool = False,
    low: float | None = None,
    high: float | None = None,
) -> Any:
    meta = {"help": help, "env": env, "choices": choices, "path": path, "low": low, "high": high}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class StoreSettings:
    db: str = _opt("digest.db", "SQLite database file.", env="DIGEST_DB", path=True)
    model: str = _opt("digest.model", "Model file.", env="DIGEST_MODEL", path=True)


@dataclass(frozen=True)
class ReadersSettings:
    profiles: str = _opt(
        "profiles", "Folder of reader TOML files (teams in its teams/ folder).",
        env="DIGEST_PROFILES", path=True,
    )  # fmt: skip


@dataclass(frozen=True)
class SourcesSettings:
    paths: tuple = _opt(
        (), "What `digest run` ingests first: dump folders, feed files or URLs, JSON lists.",
        path=True,
    )  # fmt: skip
    feedback: tuple = _opt(
        (), "Feedback files (CSV or JSONL) `digest run` imports before training.", path=True
    )


@dataclass(frozen=True)
class DigestSettings:
    window_days: int = _opt(
        1, "Candidates are items first seen in the last N days up to the digest day.",
        low=1, high=366,
    )  # fmt: skip
    diversity: float = _opt(
        0.3, "0 ranks by score alone; higher spreads topics (MMR).", low=0, high=1
    )
    min_score: float = _opt(
        float("-inf"), "Leave out items scoring below this (a thin day sends fewer)."
    )


@dataclass(frozen=True)
class ModelSettings:
    embeddings: str = _opt(
        "auto", "Sentence embeddings: auto (when installed), on, off.",
        env="DIGEST_EMBEDDINGS", choices=("auto", "on", "off"),
    )  # fmt: skip
    embed_text: str = _opt(
        "title", "What sentence embeddings read: title, title+abstract:128 or :256 (tokens).",
        choices=("title", "title+abstract:128", "title+abstract:256"),
    )  # fmt: skip
    epochs: int = _opt(10, "LightFM epochs for a full train.", low=1, high=500)
    update_epochs: int = _opt(
        3, "LightFM epochs for the daily incremental update.", low=1, high=500
    )
    seed: int = _opt(0, "Random state: same seed, same data, same model.", low=0, high=2**32 - 1)


@dataclass(frozen=True)
class OutputSettings:
    dir: str = _opt("out", "Root of everything written.", env="DIGEST_OUT", path=True)
    outbox: str = _opt("", "Folder of .eml files (default: <dir>/outbox).", path=True)
    feeds: str = _opt("", "Folder of Atom/RSS feeds (default: <dir>/feeds).", path=True)
    wiki: str = _opt("", "Folder of wiki posts (default: <dir>/wiki).", path=True)
    templates: str = _opt(
        "", "Folder of templates overriding the bundled ones by name.",
        env="DIGEST_TEMPLATES", path=True,
    )  # fmt: skip


@dataclass(frozen=True)
class EmailSettings:
    transport: str = _opt(
        "outbox", "outbox (write .eml files) or smtp.", env="DIGEST_EMAIL_TRANSPORT",
        choices=("outbox", "smtp"),
    )  # fmt: skip
    sender: str = _opt("digest <digest@localhost>", "From address.", env="DIGEST_SENDER")
    list_id: str = _opt("digest.localhost", "List-Id and Message-ID domain (a domain you own).")
    unsubscribe_mailbox: str = _opt(
        "", "Address for mailto: unsubscribe requests (List-Unsubscribe)."
    )
    max_bytes: int = _opt(
        100_000, "Largest HTML part; longer digests say 'N more in your feed'.", low=1
    )


@dataclass(frozen=True)
class SmtpSettings:
    host: str = _opt("localhost", "SMTP server.", env="DIGEST_SMTP_HOST")
    port: int = _opt(587, "SMTP port.", env="DIGEST_SMTP_PORT", low=1, high=65535)
    security: str = _opt(
        "starttls", "starttls, ssl (implicit TLS) or none.", env="DIGEST_SMTP_SECURITY",
        choices=("starttls", "ssl", "none"),
    )  # fmt: skip
    timeout: float = _opt(30.0, "Seconds to wait for the server.", low=0.1, high=3600)
    attempts: int = _opt(
        4, "Tries per message on temporary (4xx) failures, with backoff.", low=1, high=20
    )


@dataclass(frozen=True)
class FeedsSettings:
    days: int = _opt(14, "Days of digests each feed holds.", low=1, high=366)


@dataclass(frozen=True)
class WikiSettings:
    commit: bool = _opt(True, "Commit new posts when the wiki folder is a git repository.")


@dataclass(frozen=True)
class LinksSettings:
    base_url: str = _opt(
        "", "Public URL of `digest serve`; links then record clicks and feedback.",
        env="DIGEST_BASE_URL",
    )  # fmt: skip
    secret_file: str = _opt(
        "", "File holding the link-signing secret (or set $DIGEST_SECRET).", path=True
    )


@dataclass(frozen=True)
class ServeSettings:
    host: str = _opt("127.0.0.1", "Address `digest serve` listens on.", env="DIGEST_HOST")
    port: int = _opt(8080, "Port `digest serve` listens on.", env="DIGEST_PORT", low=1, high=65535)
    click_window: float = _opt(
        600.0, "Seconds within which repeated presses of one link count once.", low=0
    )


@dataclass(frozen=True)
class Settings:
    """Every setting, resolved. Build with `load_settings`."""

    store: StoreSettings = field(default_factory=StoreSettings)
    readers: ReadersSettings = field(default_factory=ReadersSettings)
    sources: SourcesSettings = field(default_factory=SourcesSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    email: EmailSettings = field(default_factory=EmailSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    feeds: FeedsSettings = field(default_factory=FeedsSettings)
    wiki: WikiSettings = field(default_factory=WikiSettings)
    links: LinksSettings = field(default_factory=LinksSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    #: The config file read, if any.
    config: str | None = None
    #: Dotted keys that were set by a flag, the environment or the file (not defaults).
    explicit: frozenset[str] = frozenset()
    smtp_user: str | None = None
    smtp_password: str | None = None
    secret_env: str | None = None

    def outbox(self) -> Path:
        return Path(self.output.outbox or Path(self.output.dir) / "outbox")

    def feeds_dir(self) -> Path:
        return Path(self.output.feeds or Path(self.output.dir) / "feeds")

    def wiki_dir(self) -> Path:
        return Path(self.output.wiki or Path(self.output.dir) / "wiki")

    def templates(self) -> str | None:
        return self.output.templates or None

    def secret(self) -> str | None:
        """The link-signing secret: $DIGEST_SECRET, else the secret file, else None."""
        if self.secret_env:
            return self.secret_env
        if not self.links.secret_file:
            return None
        try:
            text = Path(self.links.secret_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.links.secret_file}: cannot read the secret ({exc})") from None
        return text or None


@dataclass(frozen=True)
class Key:
    """One declared setting."""

    name: str
    kind: type
    default: Any
    env: str | None
    help: str
    choices: tuple
    path: bool
    #: The smallest and largest value allowed (numbers only), when there is a limit.
    low: float | None = None
    high: float | None = None


def keys() -> list[Key]:
    """Every setting, in declaration order (the README table and `digest init` use this)."""
    out = []
    for section in dataclasses.fields(Settings):
        if section.default_factory is dataclasses.MISSING:
            continue
        cls = section.default_factory
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            meta = f.metadata
            out.append(
                Key(f"{section.name}.{f.name}", hints[f.name], f.default, meta["env"],
                    meta["help"], meta["choices"], meta["path"], meta["low"], meta["high"])
            )  # fmt: skip
    return out


def load_settings(
    config: str | None = None,
    *,
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every setting: flag > environment > config file > default.

    `config` (or $DIGEST_CONFIG) names a file that must exist; otherwise
    `./digest.toml` is read when present. `flags` maps dotted keys to values given
    on the command line (None means "not given").
    """
    env = os.environ if env is None else env
    path, required = (config, True) if config else (env.get(ENV_CONFIG) or None, True)
    if not path:
        path, required = DEFAULT_CONFIG, False
    values, explicit = _from_file(path, required), set()
    explicit.update(values)
    for key in keys():
        if key.env and env.get(key.env, "").strip():
            values[key.name] = _coerce(key, env[key.env].strip(), f"${key.env}", convert=True)
            explicit.add(key.name)
    for name, value in (flags or {}).items():
        if value is not None:
            key = _key(name)
            values[name] = _coerce(key, value, f"option for {name}", convert=True)
            explicit.add(name)
    return _build(values, explicit, path if Path(path).is_file() else None, env)


def _key(name: str) -> Key:
    for key in keys():
        if key.name == name:
            return key
    raise KeyError(name)


def _from_file(path: str, required: bool) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        if file.exists():
            raise ConfigError(f"{path}: config file is not a file")
        if required:
            raise ConfigError(f"{path}: config file does not exist")
        return {}
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise ConfigError(f"{path}: invalid TOML: {str(exc).split(':')[0]}") from None
    known = {k.name: k for k in keys()}
    sections = {name.partition(".")[0] for name in known}
    values: dict[str, Any] = {}
    for section, table in data.items():
        if section not in sections:
            raise ConfigError(_unknown_top(path, section, table, known, sections))
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: '{section}' must be a table ([{section}])")
        for name, raw in table.items():
            dotted = f"{section}.{name}"
            if dotted not in known:
                raise ConfigError(f"{path}: unknown key '{dotted}'{_suggest(dotted, known)}")
            value = _coerce(known[dotted], raw, f"{path}: key '{dotted}'")
            values[dotted] = _relative(known[dotted], value, file.parent)
    return values


def _suggest(name: str, known: Mapping[str, Key]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unknown_top(
    path: str, name: str, value: Any, known: Mapping[str, Key], sections: set[str]
) -> str:
    """An unknown table ([emial]) or a key written outside its table (transport = ...)."""
    if isinstance(value, dict):
        close = difflib.get_close_matches(name, sorted(sections), n=1)
        hint = f" (did you mean [{close[0]}]?)" if close else ""
        return f"{path}: unknown table [{name}]{hint}"
    homes = [k for k in known if k.endswith(f".{name}")]
    hint = f" (did you mean '{homes[0]}', under [{homes[0].partition('.')[0]}]?)" if homes else ""
    return f"{path}: unknown key '{name}'{hint or _suggest(name, known)}"


def _relative(key: Key, value: Any, base: Path) -> Any:
    """Paths in a config file are relative to the file (URLs and absolute paths kept)."""
    if not key.path:
        return value
    if isinstance(value, tuple):
        return tuple(_relative(key, v, base) for v in value)
    if not value or "://" in value or Path(value).is_absolute():
        return value
    return os.path.normpath(base / value)


def _coerce(key: Key, raw: Any, where: str, *, convert: bool = False) -> Any:
    """Check a value's type and limits; with `convert`, text (from a flag or the
    environment) is converted first. A file's values must have the right TOML type."""
    kind = key.kind
    try:
        if isinstance(raw, str) and kind in (bool, int, float) and not convert:
            raise ValueError
        if kind is bool:
            value = _boolean(raw)
        elif kind is int:
            if isinstance(raw, bool) or not isinstance(raw, int | str):
                raise ValueError
            value = int(raw)
        elif kind is float:
            if isinstance(raw, bool) or not isinstance(raw, int | float | str):
                raise ValueError
            value = float(raw)
            if value != value:  # NaN compares unequal to everything, limits included
                raise ValueError
        elif kind is tuple:
            if not isinstance(raw, list | tuple) or not all(isinstance(v, str) for v in raw):
                raise ValueError
            value = tuple(raw)
        else:
            if not isinstance(raw, str):
                raise ValueError
            value = raw
    except (TypeError, ValueError):
        noun = {bool: "true or false", int: "an integer", float: "a number",
                tuple: "a list of strings"}.get(kind, "a string")  # fmt: skip
        raise ConfigError(f"{where} must be {noun}, not {raw!r}") from None
    if key.choices and value not in key.choices:
        raise ConfigError(f"{where} must be one of {', '.join(key.choices)}, not {value!r}")
    _check_limits(key, value, where)
    return value


def _check_limits(key: Key, value: Any, where: str) -> None:
    low, high = key.low, key.high
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            raise ConfigError(f"{where} must be at least {low}, not {value!r}")
        raise ConfigError(f"{where} must be between {low} and {high}, not {value!r}")
    texts = value if isinstance(value, tuple) else (value,)
    for text in texts:
        if isinstance(text, str) and any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise ConfigError(f"{where} must not contain control characters, not {text!r}")


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(raw, str) and raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError


def _build(
    values: Mapping[str, Any], explicit: set[str], config: str | None, env: Mapping[str, str]
) -> Settings:
    sections: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        section, _, key = name.partition(".")
        sections.setdefault(section, {})[key] = value
    built = {
        f.name: f.default_factory(**sections.get(f.name, {}))
        for f in dataclasses.fields(Settings)
        if f.default_factory is not dataclasses.MISSING
    }
    return Settings(
        **built,
        config=config,
        explicit=frozenset(explicit),
        smtp_user=env.get(ENV_SMTP_USER) or None,
        smtp_password=env.get(ENV_SMTP_PASSWORD) or None,
        secret_env=env.get(ENV_SECRET) or None,
    )


def example_config() -> str:
    """The commented `digest.toml` that `digest init` writes: every key at its default."""
    lines = [
        "# digest configuration. Every key is optional; shown here at its default.",
        "# Precedence: command-line flag > DIGEST_* environment variable > this file.",
        "# Relative paths are relative to this file's folder.",
        f"# Secrets come from the environment only: ${ENV_SMTP_USER}, ${ENV_SMTP_PASSWORD},",
        f"# ${ENV_SECRET} (or links.secret_file).",
    ]
    section = None
    for key in keys():
        head, _, name = key.name.partition(".")
        if head != section:
            lines += ["", f"[{head}]"]
            section = head
        env = f" (${key.env})" if key.env else ""
        lines.append(f"# {key.help}{env}")
        lines.append(f"# {name} = {_toml(key.default)}")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == float("-inf"):
        return "-inf"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)
