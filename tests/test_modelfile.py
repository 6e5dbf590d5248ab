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
        # Numbers that would overflow in C code (NumPy's random state, SciPy, LightFM).
        (lambda h, a: {**h, "rng": {**h["rng"], "pos": 10**30}}, "field 'rng.pos'"),
        (lambda h, a: {**h, "rng": {**h["rng"], "pos": 2**31}}, "field 'rng.pos'"),
        (lambda h, a: {**h, "rng": {**h["rng"], "has_gauss": -5}}, "field 'rng.has_gauss'"),
        (lambda h, a: {**h, "lightfm": {**h["lightfm"], "max_sampled": 2**40}}, "max_sampled"),
        (lambda h, a: {**h, "params": {**h["params"], "num_threads": 2**63}}, "num_threads"),
        (lambda h, a: {**h, "item_ids": [*h["item_ids"][:-1], 10**30]}, r"field .item_ids\[31\]."),
        (lambda h, a: {**h, "scale": {**h["scale"], "tfidf": [float("nan"), 1.0]}}, "NaN"),
        (lambda h, a: a.update({"history.shape": np.array([1e30, 1e30])}), "two integers"),
        (lambda h, a: a.update({"history.shape": np.array([2**40, 40])}), "out of range"),
        (lambda h, a: a.update({"history.shape": np.array([-4, 40])}), "out of range"),
        (lambda h, a: a.update({"history.shape": np.array([4, 40, 1])}), "two integers"),
        (lambda h, a: a.update({"history.indptr": np.zeros(5)}), "indptr is not integers"),
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


def test_an_array_header_that_is_not_a_python_literal_fails_cleanly(
    saved: Path, tmp_path: Path
) -> None:
    """NumPy parses each array's header as a literal: a broken one raised SyntaxError."""
    raw = bytearray(saved.read_bytes())
    quote = raw.index(b"{'descr': '") + len("{'descr': ")
    raw[quote] ^= 0xFF  # the string's opening quote: an unterminated literal
    target = tmp_path / "mangled.model"
    target.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="not a digest model file"):
        Recommender.load(target)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(blob=st.binary(max_size=4096))
def test_random_bytes_fail_cleanly(tmp_path: Path, blob: bytes) -> None:
    target = tmp_path / "random.model"
    target.write_bytes(blob)
    with pytest.raises(ModelError) as caught:
        Recommender.load(target)
    assert "allow_pickle" not in str(caught.value)


def _npy(shape: tuple, descr: str = "<f4", payload: bytes = b"") -> bytes:
    """An .npy member whose header declares `shape`, followed by `payload` only."""
    out = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + payload


def _replace_member(source: Path, target: Path, member: str, data: bytes, **kwargs) -> None:
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", **kwargs) as dst:
        for name in src.namelist():
            if name != member:
                dst.writestr(name, src.read(name))
        dst.writestr(member, data)


@pytest.mark.parametrize(
    "shape,descr",
    [
        ((100_000_000_000,), "<f4"),  # 400 GB declared in a few bytes
        ((2**31, 2**31), "<f8"),
        ((10**10, 10**10, 10**10), "<i8"),  # more bytes than a 64-bit size can count
        ((3,), "<f4"),  # fewer bytes declared than held is corrupt too
    ],
)
def test_a_member_declaring_more_than_it_holds_allocates_nothing(
    saved: Path, tmp_path: Path, shape: tuple, descr: str
) -> None:
    target = tmp_path / "huge.model"
    _replace_member(saved, target, "idf.npy", _npy(shape, descr, b"\0" * 64))
    with pytest.raises(ModelError, match=r"array 'idf' of shape .* needs") as caught:
        Recommender.load(target)
    assert str(target) in str(caught.value) and "\n" not in str(caught.value)


def test_a_compression_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    """64 MB of zeros deflate to some 64 KB: a thousand times its size on disk."""
    bomb = tmp_path / "bomb.model"
    with (
        zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("idf.npy", "w", force_zip64=True) as member,
    ):
        member.write(_npy((16 * 2**20,)))
        for _ in range(64):
            member.write(bytes(2**20))
    with pytest.raises(ModelError, match="compression bomb") as caught:
        modelfile.read(bomb)
    assert str(bomb) in str(caught.value)


def test_an_archive_over_the_size_limit_is_refused(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(modelfile, "MAX_BYTES", 10_000)
    with pytest.raises(ModelError, match="over the 10,000-byte limit"):
        modelfile.read(saved)


@pytest.mark.parametrize(
    "blob",
    [
        b"\x00" * 100,
        b"PK\x03\x04" + bytes(range(256)),  # a zip signature, then noise
        pickle.dumps({"format": 2}),
        _npy((2,), "<f4", bytes(8)),  # a bare .npy array, not an archive
        _npy((1,), "|O", pickle.dumps([1])),  # a bare object array
        os.urandom(4096),
    ],
)
def test_not_a_model_file_never_suggests_loading_it_unsafely(tmp_path: Path, blob: bytes) -> None:
    """NumPy's own message offers `allow_pickle=`: the one thing never to do with it."""
    target = tmp_path / "blob.model"
    target.write_bytes(blob)
    with pytest.raises(ModelError, match="not a digest model file") as caught:
        Recommender.load(target)
    message = str(caught.value)
    assert "pickle" not in message and "unsafe" not in message, message
    assert message.startswith(f"{target}: ")


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
