"""Reader and team profiles: one TOML file per reader, `teams/<name>.toml` per team.

Validation collects every problem (file and key named) instead of stopping at the
first, so `digest profiles check` can list them all. A file with a problem is left
out of the `ProfileSet` (its reader or team is *skipped*); `train` and `rank` go on
for everyone else and print `warnings()`. A reference to an unknown team or member is
a problem too, and the reference is dropped.

Handles name files, URLs and database rows, so one strict rule (`valid_handle`) applies
to every way a handle comes in: profile files, team members, feedback and the CLI.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from digest.errors import ConfigError, ValidationError

CHANNELS = ("email", "feed", "wiki")
DEFAULT_SIZE = 10
#: The folder read when none is named; unlike a named folder it may be absent.
DEFAULT_FOLDER = "profiles"
MAX_HANDLE = 64
_MAX_FILE = 1024 * 1024
_EMAIL = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\".]{2,}")
_HANDLE = re.compile(r"[a-z0-9][a-z0-9._-]*")
#: Control, surrogate and format characters (bidi overrides, zero-width joiners): text
#: carrying them can display as something it is not.
_HIDDEN = ("Cc", "Cs", "Cf")


def valid_handle(text: object, what: str = "handle") -> str:
    """`text` as a handle, lower-cased; raise ValidationError saying why it is not one.

    A handle is 1 to 64 ASCII characters from a-z, 0-9, '.', '_' and '-', starting
    with a letter or digit. Upper case is folded; anything else (spaces, slashes,
    non-ASCII lookalikes, bidi or zero-width characters) is refused, never repaired.
    ASCII is checked before folding: the Kelvin sign U+212A lower-cases to 'k'.
    """
    if not isinstance(text, str):
        raise ValidationError(f"a {what} must be text, not {type(text).__name__}")
    shown = ascii(text[: MAX_HANDLE + 1]) + ("..." if len(text) > MAX_HANDLE + 1 else "")
    if not text:
        raise ValidationError(f"empty {what}")
    if not text.isascii():
        odd = next(c for c in text if not c.isascii())
        raise ValidationError(
            f"{shown} is not a valid {what} (non-ASCII character U+{ord(odd):04X})"
        )
    if len(text) > MAX_HANDLE:
        raise ValidationError(f"{shown} is not a valid {what} (over {MAX_HANDLE} characters)")
    handle = text.lower()
    if not _HANDLE.fullmatch(handle):
        raise ValidationError(
            f"{shown} is not a valid {what} (only a-z, 0-9, '.', '_' and '-', "
            "starting with a letter or digit)"
        )
    return handle


def valid_email(text: str) -> bool:
    """True for one plain ASCII address that an email header can carry as it is.

    The same rule decides at `profiles check` and at delivery: an address the
    profile accepts is one the email renderer can put in a To header.
    """
    if not text.isascii() or not _EMAIL.fullmatch(text):
        return False
    local, _, domain = text.rpartition("@")
    parts = [*local.split("."), *domain.split(".")]
    return all(parts) and not any(c in text for c in ",;:()[]\\")


def hidden_char(text: str) -> str | None:
    """The first control, surrogate or format character in `text` (as U+XXXX), if any."""
    for char in text:
        if unicodedata.category(char) in _HIDDEN:
            return f"U+{ord(char):04X}"
    return None


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
    """Every valid profile and team under a folder, and the problems found reading them.

    `skipped_readers` and `skipped_teams` map the handle or team name of a file that
    has a problem (when it can be told) to that file; `skipped_files` maps every other
    skipped reader file (no valid handle, or a handle another file holds) to why.
    """

    readers: dict[str, Profile] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    skipped_readers: dict[str, str] = field(default_factory=dict)
    skipped_teams: dict[str, str] = field(default_factory=dict)
    skipped_files: dict[str, str] = field(default_factory=dict)
    folder: str = DEFAULT_FOLDER

    def get(self, handle: str) -> Profile:
        """The profile of `handle`, or a bare one for a reader known only from feedback."""
        return self.readers.get(handle) or Profile(handle=handle)

    def require_valid(self) -> None:
        """Raise ConfigError naming the first problem, if there is any."""
        if self.problems:
            more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise ConfigError(self.problems[0] + more)

    def warnings(self) -> list[str]:
        """Every problem, then one line per skipped reader or team: for `warning:` lines."""
        skipped = [f"{path}: reader '{h}' skipped" for h, path in self.skipped_readers.items()]
        skipped += [f"{path}: team '{t}' skipped" for t, path in self.skipped_teams.items()]
        skipped += [f"{path}: reader skipped ({why})" for path, why in self.skipped_files.items()]
        return self.problems + skipped

    def profile(self, handle: str) -> Profile:
        """The profile of `handle`; ConfigError when it has none or an invalid one."""
        key = valid_handle(handle)
        if key in self.skipped_readers:
            raise ConfigError(
                f"{self.skipped_readers[key]}: the profile of '{key}' is invalid "
                "(see 'digest profiles check')"
            )
        if key not in self.readers:
            raise ConfigError(f"no profile '{key}' in {self.folder}")
        return self.readers[key]

    def audience(self, known: Iterable[str] = (), only: str | None = None) -> list[str]:
        """The readers to rank: `only`, or every profile and every `known` handle.

        Readers whose profile file is invalid are left out (ranking them with a bare
        profile would ignore their mutes), as are stored handles that break the rule.
        `only` is checked with `valid_handle`; an invalid profile for it is an error.
        """
        if only is not None:
            handle = valid_handle(only)
            if handle in self.skipped_readers:
                self.profile(handle)  # raises, naming the file
            return [handle]
        handles = set(self.readers)
        for handle in known:
            try:
                if valid_handle(handle) == handle:
                    handles.add(handle)
            except ValidationError:
                continue
        return sorted(handles - set(self.skipped_readers))


@dataclass(frozen=True)
class _Ref:
    """A file naming a team (key 'teams') or a member (key 'members')."""

    path: str
    key: str
    name: str


_READER_KEYS: dict[str, type | tuple[type, ...]] = {
    "handle": str, "name": str, "email": str, "interests": list, "muted": list,
    "digest_size": int, "channels": list, "teams": list,
}  # fmt: skip
_TEAM_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str, "members": list, "wiki": str, "digest_size": int,
}  # fmt: skip


def load_profiles(folder: str | Path | None = None, *, required: bool | None = None) -> ProfileSet:
    """Read `folder/*.toml` (readers) and `folder/teams/*.toml` (teams).

    `folder` None means `DEFAULT_FOLDER`. A missing folder is a ConfigError when
    `required` (the default when a folder is named), else simply no profiles: readers
    then exist through feedback alone. Problems inside files never raise; they are
    collected in `problems` and the file is skipped.
    """
    if required is None:
        required = folder is not None
    root = Path(DEFAULT_FOLDER if folder is None else folder)
    out = ProfileSet(folder=str(root))
    try:
        exists, is_dir = root.exists(), root.is_dir()
    except OSError as exc:
        raise ConfigError(f"{root}: cannot read profiles folder ({exc.strerror})") from None
    if not exists:
        if required:
            raise ConfigError(f"{root}: profiles folder does not exist")
        return out
    if not is_dir:
        raise ConfigError(f"{root}: profiles folder is not a folder")
    refs: list[_Ref] = []
    for path in sorted(root.glob("*.toml")):
        _add_reader(path, _read_toml(path, out.problems), out, refs)
    for path in sorted((root / "teams").glob("*.toml")):
        _add_team(path, _read_toml(path, out.problems), out, refs)
    _check_references(out, refs)
    out.problems.sort(key=lambda problem: problem.partition(": ")[0])  # by file, stable
    return out


def _read_toml(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        if path.stat().st_size > _MAX_FILE:
            problems.append(f"{path}: file is larger than 1 MB")
            return None
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: invalid TOML: {exc}")
    except UnicodeDecodeError as exc:
        problems.append(f"{path}: cannot read: not UTF-8 text (bad byte at offset {exc.start})")
    except RecursionError:
        problems.append(f"{path}: invalid TOML: arrays or tables nested too deeply")
    except ValueError as exc:  # an integer of more than 4300 digits
        problems.append(f"{path}: invalid TOML: {str(exc).split(':')[0]}")
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror or exc}")
    return None


def _typed(path: Path, data: dict[str, Any], spec: dict, problems: list[str]) -> dict:
    good = {}
    for key, value in data.items():
        expected = spec.get(key)
        if expected is None:
            problems.append(f"{path}: unknown key {key!r} (allowed: {', '.join(spec)})")
        elif isinstance(value, bool) or not isinstance(value, expected):
            kind = expected.__name__ if isinstance(expected, type) else "value"
            problems.append(f"{path}: key '{key}' must be a {kind}, not {type(value).__name__}")
        elif isinstance(value, list) and not all(isinstance(v, str) for v in value):
            problems.append(f"{path}: key '{key}' must be a list of strings")
        elif odd := _hidden_in(value):
            problems.append(f"{path}: key '{key}' contains a control or format character {odd}")
        else:
            good[key] = value
    return good


def _hidden_in(value: object) -> str | None:
    texts = value if isinstance(value, list) else [value]
    for text in texts:
        if isinstance(text, str) and (odd := hidden_char(text)):
            return odd
    return None


def _handle_of(path: Path, text: object, where: str, what: str, problems: list[str]) -> str | None:
    try:
        return valid_handle(text, what)
    except ValidationError as exc:
        problems.append(f"{path}: {where}: {exc}")
        return None


def _guess(path: Path, data: dict[str, Any] | None) -> str | None:
    """The handle a broken reader file was meant for, if it can be told."""
    text = data.get("handle") if data and isinstance(data.get("handle"), str) else path.stem
    try:
        return valid_handle(text)
    except ValidationError:
        return None


def _add_reader(path: Path, data: dict[str, Any] | None, out: ProfileSet, refs: list[_Ref]) -> None:
    if data is None or not _check_reader(path, data, out, refs):
        guess = _guess(path, data)
        if guess is None:
            out.skipped_files[str(path)] = "no valid handle"
        elif guess in out.readers or guess in out.skipped_readers:
            other = out.readers[guess].path if guess in out.readers else out.skipped_readers[guess]
            out.skipped_files[str(path)] = f"handle '{guess}' is also in {other}"
        else:
            out.skipped_readers[guess] = str(path)


def _check_reader(path: Path, data: dict[str, Any], out: ProfileSet, refs: list[_Ref]) -> bool:
    """Add the reader if the file has no problem; False if it has one."""
    before = len(out.problems)
    good = _typed(path, data, _READER_KEYS, out.problems)
    if "handle" in data:  # a handle of the wrong type is already a problem
        handle = None
        if "handle" in good:
            handle = _handle_of(path, good["handle"], "key 'handle'", "handle", out.problems)
    else:
        where = "file name (no key 'handle')"
        handle = _handle_of(path, path.stem, where, "handle", out.problems)
    email = good.get("email")
    if email is not None and not valid_email(email):
        out.problems.append(f"{path}: key 'email': {email!r} is not an email address")
    for channel in good.get("channels", []):
        if channel not in CHANNELS:
            out.problems.append(
                f"{path}: key 'channels': unknown channel {channel!r} ({', '.join(CHANNELS)})"
            )
    size = good.get("digest_size", DEFAULT_SIZE)
    if not 1 <= size <= 200:
        out.problems.append(f"{path}: key 'digest_size' must be between 1 and 200")
    teams = []
    for team in good.get("teams", []):
        try:
            teams.append(valid_handle(team, "team name"))
            refs.append(_Ref(str(path), "teams", teams[-1]))
        except ValidationError as exc:
            out.problems.append(f"{path}: key 'teams': {exc}")
    if handle in out.readers:
        out.problems.append(
            f"{path}: duplicate handle '{handle}' (also in {out.readers[handle].path})"
        )
    if len(out.problems) > before or handle is None:
        return False
    out.readers[handle] = Profile(
        handle=handle,
        name=good.get("name", handle),
        email=email,
        interests=tuple(t.strip() for t in good.get("interests", []) if t.strip()),
        muted=tuple(t.strip() for t in good.get("muted", []) if t.strip()),
        digest_size=size,
        channels=tuple(good.get("channels", ["email"])),
        teams=tuple(dict.fromkeys(teams)),
        path=str(path),
    )
    return True


def _add_team(path: Path, data: dict[str, Any] | None, out: ProfileSet, refs: list[_Ref]) -> None:
    before = len(out.problems)
    name = _handle_of(path, path.stem, "file name", "team name", out.problems)
    good = {} if data is None else _typed(path, data, _TEAM_KEYS, out.problems)
    if data is not None and "members" not in data:
        out.problems.append(f"{path}: missing key 'members'")
    members = []
    for member in good.get("members", []):
        try:
            members.append(valid_handle(member))
            refs.append(_Ref(str(path), "members", members[-1]))
        except ValidationError as exc:
            out.problems.append(f"{path}: key 'members': {exc}")
    if name is not None and name in out.teams:
        out.problems.append(f"{path}: duplicate team '{name}' (also in {out.teams[name].path})")
    if data is None or len(out.problems) > before or name is None:
        if name is not None:
            out.skipped_teams.setdefault(name, str(path))
        return
    out.teams[name] = Team(
        name=name,
        title=good.get("name", name),
        members=tuple(dict.fromkeys(members)),
        wiki=good.get("wiki"),
        digest_size=good.get("digest_size", DEFAULT_SIZE),
        path=str(path),
    )


def _check_references(out: ProfileSet, refs: list[_Ref]) -> None:
    """Every team a reader file names exists, and every member a team names has a profile.

    Checked for every file read, valid or not, so `profiles check` lists them all. A
    dangling reference is a problem; loaded readers and teams drop every reference to
    something not loaded, so later stages never meet one.
    """
    root = Path(out.folder)
    _refuse_shared_names(out)
    for ref in refs:
        if ref.key == "teams" and ref.name not in out.teams | out.skipped_teams:
            out.problems.append(
                f"{ref.path}: key 'teams': unknown team '{ref.name}' "
                f"(no {root / 'teams' / ref.name}.toml)"
            )
        elif ref.key == "members" and ref.name not in out.readers | out.skipped_readers:
            out.problems.append(
                f"{ref.path}: key 'members': unknown reader '{ref.name}' "
                f"(no {root / ref.name}.toml)"
            )
    for handle, profile in list(out.readers.items()):
        kept = tuple(t for t in profile.teams if t in out.teams)
        if kept != profile.teams:
            out.readers[handle] = replace(profile, teams=kept)
    for name, team in list(out.teams.items()):
        kept = tuple(m for m in team.members if m in out.readers)
        if kept != team.members:
            out.teams[name] = replace(team, members=kept)


def _refuse_shared_names(out: ProfileSet) -> None:
    """A team may not share a reader's handle: their wiki posts would share a file name.

    The team is the one skipped (a reader's own digest matters more than a page).
    """
    for name in sorted(set(out.teams) & set(out.readers)):
        team = out.teams.pop(name)
        out.skipped_teams[name] = team.path or name
        out.problems.append(
            f"{team.path}: team name '{name}' is also a reader's handle "
            f"({out.readers[name].path}); rename one of them"
        )


def teams_of(profiles: ProfileSet, handle: str) -> tuple[str, ...]:
    """Teams a reader belongs to: named in the profile or listing them as a member."""
    named = set(profiles.get(handle).teams)
    named.update(t.name for t in profiles.teams.values() if handle in t.members)
    return tuple(sorted(named))
