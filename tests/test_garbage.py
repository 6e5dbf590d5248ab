"""Generated garbage at every command that reads a file not covered elsewhere.

Ingest (`test_fuzz_cli.py`), feedback import and profiles (`test_feedback.py`,
`test_profiles.py`) and model files (`test_modelfile.py`) have their own. Here: the
config file, `rank --candidates`, and a model file given to `rank` and `train
--update`. Each must end in a clean exit: no traceback, and a non-zero status with
one `error:` line when the input is bad. (The evaluation inputs, `digest evaluate`
and `digest dataset`, are not covered here.)
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.cli import cli

GARBAGE = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=512).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3000).map(lambda n: b"a = " + b"[" * n + b"]" * n),
    st.sampled_from([b"\xff\xfe\x00", b"\x00" * 64, "é".encode("latin-1") * 10, b"[store]\ndb=1"]),
)
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with items and a trained model (embeddings off, two epochs)."""
    root = tmp_path_factory.mktemp("garbage")
    runner = CliRunner()
    db = str(root / "d.db")
    assert runner.invoke(cli, ["--db", db, "ingest", str(FIXTURES / "seeds")]).exit_code == 0
    trained = runner.invoke(
        cli, ["--db", db, "train", "--model", str(root / "m.model"), "--epochs", "2",
              "--embeddings", "off"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    return root


def _clean(result, *, may_pass: bool = False) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    assert "allow_pickle" not in result.output  # never advise loading a bad file unsafely
    if result.exit_code == 0:
        assert may_pass, result.output
        return
    assert result.exit_code in (1, 2)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert errors or result.exit_code == 2, result.stderr  # 2: click's usage error


@SETTINGS
@given(blob=GARBAGE)
def test_a_garbage_config_file(workspace: Path, blob: bytes) -> None:
    config = workspace / "garbage.toml"
    config.write_bytes(blob)
    result = CliRunner().invoke(cli, ["--config", str(config), "stats"])
    _clean(result, may_pass=True)  # an empty or comment-only file is a valid config


@SETTINGS
@given(blob=GARBAGE)
def test_a_garbage_candidates_file(workspace: Path, blob: bytes) -> None:
    ids = workspace / "ids.txt"
    ids.write_bytes(blob)
    result = CliRunner().invoke(
        cli, ["--db", str(workspace / "d.db"), "rank", "--all", "--candidates", str(ids),
              "--model", str(workspace / "m.model")],
    )  # fmt: skip
    _clean(result, may_pass=not blob.strip() or blob.lstrip().startswith(b"#"))


@SETTINGS
@given(blob=GARBAGE)
def test_a_garbage_model_file(workspace: Path, blob: bytes) -> None:
    model = workspace / "bad.model"
    model.write_bytes(blob)
    db = str(workspace / "d.db")
    for args in (["rank", "--all"], ["train", "--update", "--embeddings", "off"]):
        result = CliRunner().invoke(cli, ["--db", db, *args, "--model", str(model)])
        _clean(result)


def _hostile_models(good: Path, root: Path) -> dict[str, Path]:
    """Model files built from a real one, each with one hostile change."""
    out = {}
    with zipfile.ZipFile(good) as src:
        members = {name: src.read(name) for name in src.namelist()}
    header = json.loads(np.load(io.BytesIO(members["header.npy"])).tobytes())
    shape_header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        shape_header, {"descr": "<f4", "fortran_order": False, "shape": (10**11,)}
    )
    edits = {
        "huge-shape": {"idf.npy": shape_header.getvalue() + bytes(64)},
        "rng-pos": {"header.npy": {**header, "rng": {**header["rng"], "pos": 10**30}}},
        "float-shape": {"history.shape.npy": np.array([1e30, 1e30])},
        "object-array": {"idf.npy": np.array([object()], dtype=object)},
    }
    for name, edit in edits.items():
        path = root / f"{name}.model"
        with zipfile.ZipFile(path, "w") as dst:
            for member, data in {**members, **edit}.items():
                if isinstance(data, dict):
                    raw = json.dumps(data).encode()
                    data = np.frombuffer(raw, dtype=np.uint8)
                if isinstance(data, np.ndarray):
                    buffer = io.BytesIO()
                    np.save(buffer, data, allow_pickle=True)
                    data = buffer.getvalue()
                dst.writestr(member, data)
        out[name] = path
    return out


@pytest.mark.parametrize("name", ["huge-shape", "rng-pos", "float-shape", "object-array"])
def test_a_hostile_model_file_is_one_error_line(workspace: Path, name: str) -> None:
    """Huge declared arrays, numbers that overflow in C, pickles: no traceback, no allocation."""
    model = _hostile_models(workspace / "m.model", workspace)[name]
    db = str(workspace / "d.db")
    for args in (["rank", "--all"], ["train", "--update", "--embeddings", "off"]):
        result = CliRunner().invoke(cli, ["--db", db, *args, "--model", str(model)])
        _clean(result)
        assert result.exit_code == 1 and result.stderr.startswith(f"error: {model}: ")
        assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("codec", ["utf-16", "utf-32", "utf-16-le"])
def test_a_wide_unicode_candidates_file_is_read(workspace: Path, codec: str) -> None:
    """README: inputs may be UTF-16/32 (with a BOM, or told by ASCII's zero bytes)."""
    db = str(workspace / "d.db")
    listed = CliRunner().invoke(cli, ["--db", db, "items", "--limit", "2"])
    ids = [line.split()[0] for line in listed.stdout.splitlines()]
    path = workspace / f"ids-{codec}.txt"
    path.write_bytes(("# two picks\n" + "\n".join(ids) + "\n").encode(codec))
    result = CliRunner().invoke(
        cli, ["--db", db, "rank", "--all", "--candidates", str(path), "--format", "jsonl",
              "--model", str(workspace / "m.model")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
