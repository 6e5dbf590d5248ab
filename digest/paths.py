"""Where digest writes files: output paths checked up front, files written atomically.

A path a user names (`--model`, `--out`, `init PATH`, ...) is checked before any long
work starts, so a typo fails in a second rather than after a whole training run:
`check_output_file` and `check_output_dir` raise `OutputError` naming the path and
the reason. `atomic_file` and `atomic_write` then write through a temporary file in
the same folder and `os.replace`, so a reader never sees half a file and a failure
leaves nothing behind; any OS error at that point is an `OutputError` too.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from digest.errors import OutputError


def check_output_file(path: str | os.PathLike[str]) -> Path:
    """`path` as a Path, if a file can be written there; else an OutputError saying why.

    Missing folders on the way are fine (writers create them), but the nearest one
    that exists must be a folder digest can write in. An existing directory, device
    or other non-regular file is refused: replacing it would destroy it.
    """
    text = _usable(path)
    target = Path(text)
    if target.name in ("", ".", ".."):
        raise OutputError(f"{text}: cannot write (it is a folder; name a file)")
    try:
        if target.is_dir():
            raise OutputError(f"{text}: cannot write (it is a folder; name a file)")
        if target.exists() and not stat.S_ISREG(target.stat().st_mode):
            raise OutputError(f"{text}: cannot write (it is not a regular file)")
    except OSError as exc:
        raise OutputError(f"{text}: cannot write ({_reason(exc)})") from None
    _check_folder(target.parent, text)
    return target


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """`path` as a Path, if it is (or can be created as) a folder digest can write in."""
    text = _usable(path)
    target = Path(text)
    try:
        if target.exists() and not target.is_dir():
            raise OutputError(f"{text}: cannot write (it is a file, not a folder)")
    except OSError as exc:
        raise OutputError(f"{text}: cannot write ({_reason(exc)})") from None
    _check_folder(target, text)
    return target


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces `path` in one step when the block ends.

    Missing parent folders are created. On any failure the temporary file is removed
    and the target is left as it was; an OS error is an OutputError naming `path`.
    """
    target = check_output_file(path)
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.chmod(tmp, _mode_for(target))
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        _discard(tmp)
        raise OutputError(f"{os.fspath(path)}: cannot write ({_reason(exc)})") from None
    except BaseException:
        _discard(tmp)
        raise


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write a generated file all at once (text as UTF-8): readers never see half of it."""
    with atomic_file(path) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def _mode_for(target: Path) -> int:
    """The replaced file's permissions, or those `open` gives a new file.

    `mkstemp` makes owner-only files; a generated config or report should not change
    permissions just because it was written atomically.
    """
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def _usable(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    if not text.strip() or "\x00" in text:
        raise OutputError(f"{text!r}: not a usable path (an unset variable?)")
    return text


def _check_folder(folder: Path, shown: str) -> None:
    """The nearest existing folder at or above `folder` must be one we can write in.

    A real file is tried: `os.access` says yes to root on a read-only or pseudo file
    system such as /proc.
    """
    try:
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise OutputError(f"{shown}: cannot write ({folder} is a file, not a folder)")
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".digest-probe-")
    except OSError as exc:
        raise OutputError(f"{shown}: cannot write ({folder}: {_reason(exc)})") from None
    os.close(fd)
    _discard(probe)


def _discard(tmp: str | None) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _reason(exc: OSError) -> str:
    return exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
