"""Writing an output file so that no reader ever sees half of it.

Every delivered file (an `.eml` in the outbox, a feed, a wiki post) goes through
`write_atomically`: the bytes go to a temporary file beside the target, which is then
renamed over it. The temporary name is fixed per target, so a write cut short by a
crash is simply replaced by the next attempt and never left behind.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_atomically(target: Path, data: bytes, *, sync: bool = True, mode: int = 0o666) -> None:
    """Replace `target` with `data` in one rename; with `sync`, durable when this returns.

    `mode` applies to a newly created file (less the umask): the outbox passes 0o600,
    since a digest carries signed links that act on the reader's behalf. A caller that
    writes many files may pass `sync=False` and sync them all at once afterwards.
    """
    tmp = target.with_name(f".{target.name}.tmp")
    fd = _create(tmp, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync:
        sync_folder(target.parent)


def _create(tmp: Path, mode: int) -> int:
    """Create the temporary file anew; whatever held its name is removed first.

    A write cut short leaves a file there, and a planted symlink would redirect the
    write, so an existing name is never opened, only replaced.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(tmp, flags, mode)
    except FileExistsError:
        tmp.unlink()
        return os.open(tmp, flags, mode)


def sync_folder(folder: Path) -> None:
    """Make a rename itself durable across a power cut (POSIX only; best effort)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
