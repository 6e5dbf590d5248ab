"""Generated garbage through the real `digest ingest`, next to a good file in the same call.

Whatever the garbage (random or NUL-led bytes, truncated or mutated real fixtures,
deep nesting, huge lines, other encodings, odd file names), the command must end
without a traceback, say `error:` once per bad input on one line, exit 1 exactly
when something failed, and still store the good file's items.
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.cli import cli

GOOD = FIXTURES / "json" / "items.jsonl"  # two items, never among the garbage sources
SOURCES = sorted(
    p
    for folder in ("dumps", "feeds", "json", "bad")
    for p in (FIXTURES / folder).iterdir()
    if p.is_file() and p != GOOD and ".expected." not in p.name and p.name != "expected.json"
)
DEEP = 100_000
NAMES = ["garbage.txt", "with space.json", "ünïcödé.xml", "new\nline.txt", "tab\there", "x.y.z"]


@dataclass(frozen=True)
class Garbage:
    """Bytes to ingest and whether they can never be a valid input."""

    data: bytes
    must_fail: bool
    kind: str


def _source_bytes() -> st.SearchStrategy[bytes]:
    return st.sampled_from(SOURCES).map(Path.read_bytes)


@st.composite
def _mutated(draw) -> Garbage:
    data = bytearray(draw(_source_bytes()))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            del data[position]
    return Garbage(bytes(data), False, "mutated")


@st.composite
def _truncated(draw) -> Garbage:
    data = draw(_source_bytes())
    return Garbage(data[: draw(st.integers(0, len(data)))], False, "truncated")


@st.composite
def _reencoded(draw) -> Garbage:
    text = draw(_source_bytes()).decode("utf-8", "replace")
    codec = draw(
        st.sampled_from(["utf-16", "utf-16-le", "utf-32-be", "latin-1", "cp1252", "shift_jis"])
    )
    bom = draw(st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]))
    return Garbage(bom + text.encode(codec, "replace"), False, f"encoded {codec}")


def _deep() -> st.SearchStrategy[Garbage]:
    shapes = [
        "[" * DEEP + "]" * DEEP,
        '{"items": [{"title": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}]}",
        '{"title": "ok"}\n' + '{"a": ' * DEEP + "1" + "}" * DEEP + "\n",
        "[" * DEEP,
    ]
    deep_json = st.sampled_from(shapes).map(lambda t: Garbage(t.encode(), True, "deep json"))
    xml = "<rss><channel>" + "<a>" * 20_000 + "</a>" * 20_000 + "</channel></rss>"
    return st.one_of(deep_json, st.just(Garbage(xml.encode(), False, "deep xml")))


def _huge_lines() -> st.SearchStrategy[Garbage]:
    return st.sampled_from(
        [
            Garbage(b"x" * 3_000_000, True, "huge line, no format"),
            Garbage(b"Mar 11\n\n" + b"word " * 400_000, False, "huge dump line"),
            Garbage(b'{"title": "' + b"t" * 2_000_000 + b'"}', False, "huge json string"),
        ]
    )


def _raw() -> st.SearchStrategy[Garbage]:
    return st.one_of(
        st.binary(max_size=2000).map(lambda b: Garbage(b, False, "random bytes")),
        st.binary(max_size=500).map(lambda b: Garbage(b"\x00\x00\x00\x00" + b, True, "binary")),
        st.text(max_size=500).map(lambda t: Garbage(b"\xff\xfd" + t.encode(), True, "not utf-8")),
        st.sampled_from([b"", b" \n\t\r\n"]).map(lambda b: Garbage(b, True, "empty")),
    )


GARBAGE = st.one_of(_raw(), _mutated(), _truncated(), _reencoded(), _deep(), _huge_lines())


def _ingest(folder: Path, garbage: list[Garbage], names: list[str]):
    paths = []
    for n, (item, name) in enumerate(zip(garbage, names, strict=True)):
        path = folder / f"{n}-{name}"
        path.write_bytes(item.data)
        paths.append(str(path))
    good = folder / "good.jsonl"
    good.write_bytes(GOOD.read_bytes())
    db = folder / "fuzz.db"
    result = CliRunner().invoke(
        cli, ["--db", str(db), "ingest", *paths, str(good)], catch_exceptions=False
    )
    return result, paths, good, db


def _check(result, paths: list[str], good: Path, db: Path, must_fail: bool) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == (1 if errors else 0), result.output
    if must_fail:
        assert errors, result.output
    shown = [repr(p) if not p.isprintable() else p for p in paths]
    for line in errors:
        assert any(line.startswith(f"error: {name}") for name in shown), line
        assert "internal error" not in line and "stopped abruptly" not in line, line
    conn = sqlite3.connect(db)
    status, entries = conn.execute(
        "SELECT status, entries FROM ingest_runs WHERE path = ?", (str(good),)
    ).fetchone()
    titles = {r[0] for r in conn.execute("SELECT title FROM records")}
    conn.close()
    assert (status, entries) == ("ok", 2)
    assert {"JSON Paper", "No URL Paper"} <= titles


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(GARBAGE, min_size=1, max_size=3),
    st.lists(st.sampled_from(NAMES), min_size=3, max_size=3),
)
def test_ingest_survives_garbage_next_to_a_good_file(garbage: list[Garbage], names) -> None:
    with tempfile.TemporaryDirectory() as folder:
        result, paths, good, db = _ingest(Path(folder), garbage, names[: len(garbage)])
        _check(result, paths, good, db, any(g.must_fail for g in garbage))


CORPUS = {
    "deep array": Garbage(("[" * DEEP + "]" * DEEP).encode(), True, ""),
    "deep title object": Garbage(
        ('{"items": [{"title": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}]}").encode(), True, ""
    ),
    "long number": Garbage(b'{"title": "x", "id": ' + b"7" * 5000 + b"}\n", True, ""),
    "lone surrogate": Garbage(b'{"title": "\\ud800"}\n', False, ""),
    "NUL bytes": Garbage(b"\x00" * 100, True, ""),
    "truncated utf-16": Garbage(b"\xff\xfe" + "Mar 11\n\nT".encode("utf-16-le") + b"x", True, ""),
    "json feed without items": Garbage(b'{"version": "https://jsonfeed.org/version/1"}', True, ""),
    "date of no day": Garbage(b"Feb 30\n\nA Title\n", True, ""),
    "huge line": Garbage(b"z" * 3_000_000, True, ""),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_known_garbage_fails_alone_through_the_cli(tmp_path: Path, name: str) -> None:
    result, paths, good, db = _ingest(tmp_path, [CORPUS[name]], ["input.bin"])
    _check(result, paths, good, db, CORPUS[name].must_fail)


@pytest.mark.parametrize(
    "url", ["http://[::1", "http://exa mple.com/feed", "https://:0/", "http://example.com:x/"]
)
def test_malformed_url_arguments_fail_alone_through_the_cli(tmp_path: Path, url: str) -> None:
    good = tmp_path / "good.jsonl"
    good.write_bytes(GOOD.read_bytes())
    db = tmp_path / "d.db"
    result = CliRunner().invoke(
        cli, ["--db", str(db), "ingest", url, str(good)], catch_exceptions=False
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].startswith(f"error: {url}: not a valid URL")
    assert "2 new" in result.stdout.splitlines()[-1]
