"""Output paths are checked before work starts, and files are written whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from digest import paths
from digest.errors import OutputError


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding a file `db`, a folder `dir` and a named pipe `fifo`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "db").write_bytes(b"SQLite format 3\0")
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    return tmp_path


BAD_FILES = [
    ("", "not a usable path"),
    ("  ", "not a usable path"),
    ("a\0b", "not a usable path"),
    ("/", "it is a folder"),
    (".", "it is a folder"),
    ("..", "it is a folder"),
    ("dir", "it is a folder"),
    ("dir/", "it is a folder"),
    ("db/x.model", "db is a file, not a folder"),
    ("db/deeper/x.model", "db is a file, not a folder"),
    ("/proc/x.model", r"\(/proc: "),
    ("/proc/nowhere/x.model", r"\(/proc: "),
    ("fifo", "it is not a regular file"),  # not /dev/null: a regression would replace it
]


@pytest.mark.parametrize("path,reason", BAD_FILES)
def test_a_file_that_cannot_be_written_is_one_clear_error(
    place: Path, path: str, reason: str
) -> None:
    with pytest.raises(OutputError, match=reason) as caught:
        paths.check_output_file(path)
    assert ": cannot write (" in str(caught.value) or "not a usable path" in str(caught.value)
    assert "\n" not in str(caught.value)
    with pytest.raises(OutputError):
        paths.atomic_write(path, "text")
    assert sorted(p.name for p in place.iterdir()) == ["db", "dir", "fifo"]  # nothing left behind


@pytest.mark.parametrize("path", ["new.model", "dir/new.model", "new/deeper/x.model", "db"])
def test_files_that_can_be_written(place: Path, path: str) -> None:
    assert paths.check_output_file(path) == Path(path)
    paths.atomic_write(path, "é")
    assert Path(path).read_text(encoding="utf-8") == "é"
    assert not [p for p in place.rglob("*") if p.name.startswith(".")]  # no temporary file


@pytest.mark.parametrize(
    "path,reason",
    [
        ("", "not a usable path"),
        ("db", "it is a file, not a folder"),
        ("db/x", "db is a file, not a folder"),
        ("/proc/x", r"\(/proc: "),
    ],
)
def test_a_folder_that_cannot_be_written_is_one_clear_error(
    place: Path, path: str, reason: str
) -> None:
    with pytest.raises(OutputError, match=reason):
        paths.check_output_dir(path)


@pytest.mark.parametrize("path", ["dir", "new", "new/deeper", "."])
def test_folders_that_can_be_written(place: Path, path: str) -> None:
    assert paths.check_output_dir(path) == Path(path)
    assert not Path("new").exists()  # checking creates nothing


def test_permissions_are_those_of_an_ordinary_write(place: Path) -> None:
    Path("plain.txt").write_text("x")
    paths.atomic_write("atomic.txt", "x")
    assert Path("atomic.txt").stat().st_mode == Path("plain.txt").stat().st_mode
    Path("atomic.txt").chmod(0o600)
    paths.atomic_write("atomic.txt", "y")
    assert Path("atomic.txt").stat().st_mode & 0o777 == 0o600  # a replaced file keeps its own


def test_a_failed_write_keeps_the_old_file(place: Path) -> None:
    paths.atomic_write("out.txt", "old")
    with pytest.raises(RuntimeError), paths.atomic_file("out.txt") as handle:
        handle.write(b"half")
        raise RuntimeError("crash mid-write")
    assert Path("out.txt").read_text() == "old"
    assert sorted(p.name for p in place.iterdir()) == ["db", "dir", "fifo", "out.txt"]


def test_an_os_error_while_writing_names_the_path(place: Path) -> None:
    full = r"^out\.txt: cannot write \(No space left on device\)"
    with pytest.raises(OutputError, match=full), paths.atomic_file("out.txt"):
        raise OSError(28, "No space left on device")
    assert sorted(p.name for p in place.iterdir()) == ["db", "dir", "fifo"]
