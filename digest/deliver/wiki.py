"""Writing wiki posts into a folder, and committing them when it is a git repository.

GitHub and GitLab wikis are git repositories: a run writes its posts atomically
(temporary file in the same folder, then `os.replace`), then commits exactly the
files it changed in one commit. Nothing else in the repository is staged or
committed, an identical post changes nothing, and a run that changed nothing makes
no commit. A folder that is not the top of a git work tree is only written to, so a
wiki folder nested inside some other project never gets commits it did not ask for.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from digest.deliver.files import write_atomically
from digest.errors import DeliveryError
from digest.render.wiki import WikiPost

#: Identity used only when the repository (or the user) has none configured.
FALLBACK_NAME = "digest"
FALLBACK_EMAIL = "digest@localhost"
GIT_TIMEOUT = 120
# Variables that would point git at another repository, index or work tree than `root`.
_GIT_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
)


@dataclass(frozen=True)
class Published:
    """What one delivery did: the files it changed and the commit holding them, if any."""

    changed: tuple[Path, ...]
    commit: str | None


def publish(root: Path, posts: Sequence[WikiPost], message: str | None = None) -> Published:
    """Write `posts` under `root`, then commit the changed ones if `root` is a repository."""
    changed = write_posts(root, posts)
    if not changed:
        return Published(changed=(), commit=None)
    if message is None:
        by_path = {_target(Path(root), post): post for post in posts}
        message = commit_message([by_path[path] for path in changed])
    return Published(changed=tuple(changed), commit=commit_posts(root, changed, message))


def write_posts(root: Path, posts: Sequence[WikiPost], *, sync: bool = True) -> list[Path]:
    """Write each post atomically under `root`; returns the files whose content changed.

    Every path is checked before anything is written, so a bad post leaves the wiki
    untouched. A post identical to the file on disk is not rewritten. `sync=False` is
    for a caller that syncs a whole batch before recording it.
    """
    root = Path(root)
    if not root.is_dir():
        raise DeliveryError(f"{root}: wiki folder does not exist")
    targets = [_target(root, post) for post in posts]
    _refuse_duplicates(posts, targets)
    changed = []
    for post, target in zip(posts, targets, strict=True):
        if _write_if_changed(target, post.text.encode("utf-8"), sync=sync):
            changed.append(target)
    return changed


def commit_posts(root: Path, changed: Sequence[Path], message: str) -> str | None:
    """Commit exactly `changed` in one commit; its sha, or None (not a repository, no change).

    Other staged or modified files in the repository are left as they are. Without a
    configured user.name / user.email the commit is made as "digest".
    """
    root = Path(root)
    if not changed or not _is_repository_top(root):
        return None
    paths = [_relative(root, Path(p)) for p in changed]
    _git(root, "add", "--", *paths)
    if not _staged_differs(root, paths):
        return None
    _git(root, "commit", "--quiet", "-m", message, "--", *paths, options=_identity(root))
    return _git(root, "rev-parse", "HEAD").strip()


def commit_message(posts: Sequence[WikiPost]) -> str:
    """Subject `digest: posts for 2026-03-11 (team efficiency, 2 readers)`, then the files."""
    days = sorted({p.day for p in posts})
    if not days:
        raise ValueError("a commit message needs at least one post")
    when = days[0].isoformat() if len(days) == 1 else f"{days[0]} to {days[-1]}"
    teams = sorted({p.audience.removeprefix("team:") for p in posts if p.is_team})
    readers = {p.audience for p in posts if not p.is_team}
    parts = []
    if teams:
        parts.append(("team " if len(teams) == 1 else "teams ") + _and(teams))
    if readers:
        parts.append(f"{len(readers)} reader" + ("" if len(readers) == 1 else "s"))
    subject = f"digest: posts for {when} ({', '.join(parts)})"
    return "\n\n".join([subject, "\n".join(sorted(p.path for p in posts))]).rstrip() + "\n"


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _target(root: Path, post: WikiPost) -> Path:
    """The file for `post`, refused unless it is a plain relative path that stays in `root`."""
    rel = PurePosixPath(post.path)
    if (
        not post.path
        or "\\" in post.path
        or "\x00" in post.path
        or rel.is_absolute()
        or any(part in ("", ".", "..") for part in post.path.split("/"))
        or rel.suffix != ".md"
    ):
        raise DeliveryError(f"{root}: refusing post path {post.path!r}")
    target = root.joinpath(*rel.parts)
    if not target.resolve().is_relative_to(root.resolve()):
        raise DeliveryError(f"{root}: post path {post.path!r} leads outside the wiki folder")
    return target


def _refuse_duplicates(posts: Sequence[WikiPost], targets: list[Path]) -> None:
    """Two posts for one file (a team and a reader sharing a name) would overwrite each other."""
    seen: dict[Path, str] = {}
    for post, target in zip(posts, targets, strict=True):
        if target in seen:
            raise DeliveryError(
                f"{target}: both {seen[target]!r} and {post.audience!r} would be written here"
            )
        seen[target] = post.audience


def _write_if_changed(target: Path, data: bytes, *, sync: bool = True) -> bool:
    """Atomically replace `target` with `data` unless it already holds exactly that."""
    try:
        if target.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise DeliveryError(f"{target}: cannot read: {exc.strerror or exc}") from None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, data, sync=sync)
    except OSError as exc:
        raise DeliveryError(f"{target}: cannot write: {exc.strerror or exc}") from None
    return True


def _relative(root: Path, path: Path) -> str:
    """`path` relative to `root`, as git wants it; refuses a file outside the repository."""
    full = path if path.is_absolute() else root / path
    try:
        return full.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise DeliveryError(f"{root}: {path} is not inside the repository") from None


def _is_repository_top(root: Path) -> bool:
    """True when `root` is the top of a git work tree (as a cloned wiki is).

    A plain folder costs no subprocess; a `.git` that git cannot read is an error,
    not a silent "no repository".
    """
    if not (root / ".git").exists():
        return False
    top = _git(root, "rev-parse", "--show-toplevel").strip()
    return Path(top).resolve() == root.resolve()


def _staged_differs(root: Path, paths: list[str]) -> bool:
    """Whether the index differs from HEAD for `paths` (a restored file does not)."""
    head = _git(root, "rev-parse", "--verify", "--quiet", "HEAD", check=False).strip()
    if not head:
        return True  # first commit: whatever was added is new
    result = _run(root, "diff", "--cached", "--quiet", "HEAD", "--", *paths)
    if result.returncode not in (0, 1):
        raise _git_error(root, ("diff",), result)
    return result.returncode == 1


def _identity(root: Path) -> list[str]:
    """`-c user.name=... -c user.email=...` for whichever of the two git cannot find."""
    args = []
    for key, fallback in (("user.name", FALLBACK_NAME), ("user.email", FALLBACK_EMAIL)):
        if not _git(root, "config", "--get", key, check=False).strip():
            args += ["-c", f"{key}={fallback}"]
    return args


def _git(root: Path, *args: str, check: bool = True, options: Sequence[str] = ()) -> str:
    """Run `git [options] args` in `root`; its stdout, or a DeliveryError naming the repository."""
    result = _run(root, *args, options=options)
    if check and result.returncode != 0:
        raise _git_error(root, args, result)
    return result.stdout if result.returncode == 0 else ""


def _run(root: Path, *args: str, options: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
    # Paths are literal file names, and git must never stop to ask a question.
    env.update(GIT_LITERAL_PATHSPECS="1", GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    try:
        return subprocess.run(
            ["git", *options, *args],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
        )
    except FileNotFoundError:
        raise DeliveryError(f"{root}: git is not installed (needed to commit the posts)") from None
    except subprocess.TimeoutExpired:
        raise DeliveryError(f"{root}: git {args[0]} took over {GIT_TIMEOUT}s") from None


def _git_error(
    root: Path, args: Sequence[str], result: subprocess.CompletedProcess[str]
) -> DeliveryError:
    lines = (result.stderr or result.stdout).splitlines()
    detail = " ".join(
        line.strip() for line in lines if line.strip() and not line.startswith("hint:")
    )
    reason = detail[:300] or f"exit status {result.returncode}"
    return DeliveryError(f"{root}: git {args[0]} failed: {reason}")
