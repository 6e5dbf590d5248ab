"""The model file holds plain arrays and JSON: loading a hostile file runs nothing."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest import modelfile
from digest.cli import cli
from digest.errors import ModelError
from digest.features import ItemDoc, ReaderInfo
from digest.model import Interaction, Recommender


def _docs() -> list[ItemDoc]:
    words = ["experts routing", "quantization int4", "robot grasping", "protein folding"]
    return [
        ItemDoc(f"i{n}", f"{words[n % 4]} study {n}", f"We study {words[n % 4]} setting {n}. " * 3)
        for n in range(40)
    ]


def _clicks() -> list[Interaction]:
    return [Interaction(f"u{u}", f"i{n}", 1.0) for u in range(4) for n in range(u, 32, 4)]


@pytest.fixture(scope="module")
def model() -> Recommender:
    readers = {"u0": ReaderInfo("u0", ("experts routing",), ("core",))}
    return Recommender(epochs=3, embeddings="off").fit(_docs()[:32], _clicks(), readers)


@pytest.fixture
def saved(model: Recommender, tmp_path: Path) -> Path:
    path = tmp_path / "digest.model"
    model.save(path)
    return path


class Exploit:
    """Unpickling this calls os.system: the attack a pickled model file allows."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_round_trip_keeps_every_score(model: Recommender, saved: Path) -> None:
    loaded = Recommender.load(saved)
    new = _docs()[32:]
    readers = ["u0", "u1", "u3", "stranger"]
    expected = model.score(readers, new)
    got = loaded.score(readers, new)
    assert np.allclose(got.blended, expected.blended)
    for name, values in expected.raw.items():
        assert np.allclose(got.raw[name], values), name
    assert loaded.reader_history("u1") == model.reader_history("u1")
    assert loaded.readers_info == model.readers_info
    assert loaded.get_params() == model.get_params()


def test_update_after_load_equals_update_without_saving(model: Recommender, saved: Path) -> None:
    """The random state travels with the file: save/load does not change training."""
    loaded = Recommender.load(saved)
    clicks = [*_clicks(), Interaction("newcomer", "i33", 1.0)]
    again = Recommender.load(saved)  # a second copy, updated without a save/load cycle
    loaded.fit_partial(_docs(), clicks)
    again.fit_partial(_docs(), clicks)
    new = _docs()[32:]
    assert np.allclose(
        loaded.score(["newcomer"], new).blended, again.score(["newcomer"], new).blended
    )


def test_file_is_plain_arrays_and_json(saved: Path) -> None:
    with zipfile.ZipFile(saved) as archive:
        names = archive.namelist()
    assert "header.npy" in names
    header, arrays = modelfile.read(saved)
    assert header["magic"] == "digest-model" and header["format"] == modelfile.FORMAT
    assert header["item_ids"][:2] == ["i0", "i1"]
    assert all(a.dtype != object for a in arrays.values())
    with np.load(saved, allow_pickle=False) as archive:  # NumPy itself can read it
        assert set(archive.files) == {n.removesuffix(".npy") for n in names}


def test_planted_pickle_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "digest.model"
    bad.write_bytes(pickle.dumps({"format": 1, "model": Exploit(marker)}))
    with pytest.raises(ModelError, match="not a digest model file"):
        Recommender.load(bad)
    assert not marker.exists()


def test_pickle_inside_the_archive_runs_nothing(tmp_path: Path, saved: Path) -> None:
    """An object array smuggled into the .npz is refused by allow_pickle=False."""
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.model"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(evil, "w") as dst:
        for name in src.namelist():
            if name != "idf.npy":
                dst.writestr(name, src.read(name))
        payload = io.BytesIO()
        np.save(payload, np.array([Exploit(marker)], dtype=object), allow_pickle=True)
        dst.writestr("idf.npy", payload.getvalue())
    with pytest.raises(ModelError):
        Recommender.load(evil)
    assert not marker.exists()


def test_cli_with_planted_pickle_is_clean(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "digest.model"
    bad.write_bytes(pickle.dumps(Exploit(marker)))
    db = tmp_path / "d.db"
    runner = CliRunner()
    ingested = runner.invoke(cli, ["--db", str(db), "ingest", str(FIXTURES / "dumps")])
    assert ingested.exit_code == 0, ingested.output
    for args in (["rank", "--all"], ["train", "--update", "--embeddings", "off"]):
        result = runner.invoke(cli, ["--db", str(db), *args, "--model", str(bad)])
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("error: ") and "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def _rewrite(source: Path, target: Path, edit) -> None:
    header, arrays = modelfile.read(source)
    members = {name: value for name, value in arrays.items()}
    edited = edit(header, members)
    header = edited if isinstance(edited, dict) else header
    with open(target, "wb") as handle:
        raw = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        np.savez(handle, header=raw, **members)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda h, a: {**h, "format": 1}, "model format 1 is not"),
        (lambda h, a: {**h, "format": 99}, "retrain"),
        (lambda h, a: {**h, "magic": "other"}, "wrong magic"),
        (lambda h, a: {k: v for k, v in h.items() if k != "terms"}, "field 'terms'"),
        (lambda h, a: {**h, "item_ids": h["item_ids"][:-1]}, "titles and item ids"),
        (lambda h, a: a.pop("user_embeddings"), "'user_embeddings' is missing"),
        (lambda h, a: a.update(idf=a["idf"][:-1]), "array 'idf' has shape"),
        (lambda h, a: a.update({"history.indptr": a["history.indptr"][:-1]}), "'history'"),
        (lambda h, a: {**h, "params": {**h["params"], "components": "many"}}, "'components'"),
        (lambda h, a: {**h, "scale": {}}, "scale of"),
    ],
)
def test_corrupt_or_wrong_version_is_one_clear_error(
    saved: Path, tmp_path: Path, edit, message: str
) -> None:
    target = tmp_path / "edited.model"
    _rewrite(saved, target, edit)
    with pytest.raises(ModelError, match=message) as caught:
        Recommender.load(target)
    assert str(target) in str(caught.value)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_truncated_and_mangled_files_fail_cleanly(saved: Path, tmp_path: Path, data) -> None:
    raw = saved.read_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1))
    flips = data.draw(st.lists(st.integers(0, len(raw) - 1), max_size=8))
    mangled = bytearray(raw[:cut] if data.draw(st.booleans()) else raw)
    for pos in flips:
        if pos < len(mangled):
            mangled[pos] ^= 0xFF
    target = tmp_path / "mangled.model"
    target.write_bytes(bytes(mangled))
    try:
        Recommender.load(target)
    except ModelError as exc:
        assert str(target) in str(exc)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(blob=st.binary(max_size=4096))
def test_random_bytes_fail_cleanly(tmp_path: Path, blob: bytes) -> None:
    target = tmp_path / "random.model"
    target.write_bytes(blob)
    with pytest.raises(ModelError):
        Recommender.load(target)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="run 'digest train' first"):
        Recommender.load(tmp_path / "nothing.model")
    with pytest.raises(ModelError, match="directory"):
        Recommender.load(tmp_path)


def test_size_grows_with_the_data_not_fixed_capacity(saved: Path) -> None:
    """40 items and 4 readers: kilobytes, where fixed 200,000-reader capacity cost 129 MB."""
    assert saved.stat().st_size < 1_000_000


def test_new_readers_and_features_widen_the_model(model: Recommender, saved: Path) -> None:
    loaded = Recommender.load(saved)
    before = loaded.lightfm.user_embeddings.shape[0]
    readers = {"late": ReaderInfo("late", ("protein folding", "new topic"), ("newteam",))}
    loaded.fit_partial(_docs(), [*_clicks(), Interaction("late", "i3", 1.0)], readers)
    assert loaded.lightfm.user_embeddings.shape[0] == before + 4  # id, 2 interests, team
    assert loaded.lightfm.user_biases.shape[0] == before + 4
    assert loaded.score(["late"], _docs()[32:]).blended.shape == (1, 8)
