"""Reader and team profiles: one TOML file per reader, `teams/<name>.toml` per team.

Validation collects every problem (file and key named) instead of stopping at the
first, so `digest profiles check` can list them all.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digest.errors import ConfigError

CHANNELS = ("email", "feed", "wiki")
DEFAULT_SIZE = 10
_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\".]{2,}$")
_HANDLE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Profile:
    """One reader: who they are, what they want, and where it goes."""

    handle: str
    name: str = ""
    email: str | None = None
    interests: tuple[str, ...] = ()
    muted: tuple[str, ...] = ()
    digest_size: int = DEFAULT_SIZE
    channels: tuple[str, ...] = ("email",)
    teams: tuple[str, ...] = ()
    path: str | None = None


@dataclass(frozen=True)
class Team:
    """A group of readers sharing a wiki page."""

    name: str
    title: str = ""
    members: tuple[str, ...] = ()
    wiki: str | None = None
    digest_size: int = DEFAULT_SIZE
    path: str | None = None


@dataclass
class ProfileSet:
    """Every profile and team under a folder, and the problems found reading them."""

    readers: dict[str, Profile] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def get(self, handle: str) -> Profile:
        """The profile of `handle`, or a bare one for a reader known only from feedback."""
        return self.readers.get(handle) or Profile(handle=handle)

    def require_valid(self) -> None:
        """Raise ConfigError naming the first problem, if there is any."""
        if self.problems:
            more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise ConfigError(self.problems[0] + more)


_READER_KEYS: dict[str, type | tuple[type, ...]] = {
    "handle": str, "name": str, "email": str, "interests": list, "muted": list,
    "digest_size": int, "channels": list, "teams": list,
}  # fmt: skip
_TEAM_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str, "members": list, "wiki": str, "digest_size": int,
}  # fmt: skip


def load_profiles(folder: str | Path) -> ProfileSet:
    """Read `folder/*.toml` (readers) and `folder/teams/*.toml` (teams)."""
    root = Path(folder)
    out = ProfileSet()
    if not root.is_dir():
        out.problems.append(f"{root}: profiles folder does not exist")
        return out
    for path in sorted(root.glob("*.toml")):
        data = _read_toml(path, out.problems)
        if data is not None:
            _add_reader(path, data, out)
    for path in sorted((root / "teams").glob("*.toml")):
        data = _read_toml(path, out.problems)
        if data is not None:
            _add_team(path, data, out)
    return out


def _read_toml(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: invalid TOML: {exc}")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read: {exc}")
    return None


def _typed(path: Path, data: dict[str, Any], spec: dict, problems: list[str]) -> dict:
    good = {}
    for key, value in data.items():
        expected = spec.get(key)
        if expected is None:
            problems.append(f"{path}: unknown key '{key}' (allowed: {', '.join(spec)})")
        elif isinstance(value, bool) or not isinstance(value, expected):
            kind = expected.__name__ if isinstance(expected, type) else "value"
            problems.append(f"{path}: key '{key}' must be a {kind}, not {type(value).__name__}")
        elif isinstance(value, list) and not all(isinstance(v, str) for v in value):
            problems.append(f"{path}: key '{key}' must be a list of strings")
        else:
            good[key] = value
    return good


def _add_reader(path: Path, data: dict[str, Any], out: ProfileSet) -> None:
    before = len(out.problems)
    good = _typed(path, data, _READER_KEYS, out.problems)
    handle = good.get("handle", path.stem).lower()
    if not _HANDLE.match(handle):
        out.problems.append(f"{path}: key 'handle': {handle!r} is not a valid handle")
    email = good.get("email")
    if email is not None and not _EMAIL.match(email):
        out.problems.append(f"{path}: key 'email': {email!r} is not an email address")
    for channel in good.get("channels", []):
        if channel not in CHANNELS:
            out.problems.append(
                f"{path}: key 'channels': unknown channel {channel!r} ({', '.join(CHANNELS)})"
            )
    size = good.get("digest_size", DEFAULT_SIZE)
    if not 1 <= size <= 200:
        out.problems.append(f"{path}: key 'digest_size' must be between 1 and 200")
    if handle in out.readers:
        out.problems.append(
            f"{path}: duplicate handle '{handle}' (also in {out.readers[handle].path})"
        )
    if len(out.problems) > before:
        return
    out.readers[handle] = Profile(
        handle=handle,
        name=good.get("name", handle),
        email=email,
        interests=tuple(t.strip() for t in good.get("interests", []) if t.strip()),
        muted=tuple(t.strip() for t in good.get("muted", []) if t.strip()),
        digest_size=size,
        channels=tuple(good.get("channels", ["email"])),
        teams=tuple(good.get("teams", [])),
        path=str(path),
    )


def _add_team(path: Path, data: dict[str, Any], out: ProfileSet) -> None:
    before = len(out.problems)
    good = _typed(path, data, _TEAM_KEYS, out.problems)
    if "members" not in good and "members" not in data:
        out.problems.append(f"{path}: missing key 'members'")
    if len(out.problems) > before:
        return
    name = path.stem.lower()
    out.teams[name] = Team(
        name=name,
        title=good.get("name", name),
        members=tuple(m.lower() for m in good.get("members", [])),
        wiki=good.get("wiki"),
        digest_size=good.get("digest_size", DEFAULT_SIZE),
        path=str(path),
    )


def teams_of(profiles: ProfileSet, handle: str) -> tuple[str, ...]:
    """Teams a reader belongs to: named in the profile or listing them as a member."""
    named = set(profiles.get(handle).teams)
    named.update(t.name for t in profiles.teams.values() if handle in t.members)
    return tuple(sorted(named))
