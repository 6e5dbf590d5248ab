"""Feedback, the model and ranking, on real SQLite files and example data."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT, TODAY

from digest.cli import cli
from digest.features import ItemDoc
from digest.feedback import import_feedback
from digest.ingest import ingest
from digest.model import Interaction, Recommender
from digest.profiles import load_profiles
from digest.rank import mmr, rank
from digest.store import Store
from digest.training import interactions_from_store, train

EXAMPLES = ROOT / "examples"
PROFILES = ROOT / "profiles"


@pytest.fixture
def loaded(store: Store) -> Store:
    ingest(store, [str(EXAMPLES / "dumps")], today=TODAY)
    return store


def test_feedback_import_resolves_and_reports(loaded: Store, tmp_path: Path) -> None:
    quant = loaded.items(search="QuantPrune")[0]["id"]
    path = tmp_path / "fb.csv"
    path.write_text(
        "user,item,event,time,tag\n"
        f"ada,{quant},click,2026-03-10T09:00:00,\n"
        "ada,Diffusion Policies for Dexterous Manipulation from Few Demonstrations,dislike,,\n"
        "ada,https://nowhere.example/paper,click,,\n"
        "ada,Some Paper,explode,,\n"
        "ada,Some Paper,tag,,\n"
    )
    report = import_feedback(loaded, str(path))
    assert report.imported == 2
    assert [line for line, _ in report.problems] == [4, 5, 6]
    assert "unknown item" in report.problems[0][1]
    again = import_feedback(loaded, str(path))
    assert again.imported == 0 and again.already_known == 2
    assert loaded.reader_handles() == ["ada"]  # a reader can exist through feedback alone


def _add_events(store: Store, rows: list[tuple[str, str, str, str]]) -> None:
    """(reader, item id, event, time) rows, as an import adds them."""
    with store.transaction():
        store.conn.executemany(
            "INSERT OR IGNORE INTO readers (handle, origin, created_at) VALUES (?, 'x', '')",
            [(r[0],) for r in rows],
        )
        store.conn.executemany(
            "INSERT INTO events (reader, item_id, event, tag, time, origin) "
            "VALUES (?, ?, ?, '', ?, 'import')",
            rows,
        )


def test_event_weights(loaded: Store) -> None:
    i1, i2, i3, i4, i5, i6 = [row["id"] for row in loaded.items()][:6]
    _add_events(loaded, [("a", i1, "click", "t"), ("a", i2, "like", "t"),
                         ("a", i3, "dislike", "t")])  # fmt: skip
    sent = [("a", i4, "2026-03-09"), ("a", i1, "2026-03-09"), ("a", i5, "2026-03-11"),
            ("team:core", i6, "2026-03-09")]  # fmt: skip
    for reader, item, day in sent:
        loaded.record_send(reader, item, channel="email", digest_date=day)
    got = interactions_from_store(loaded, before="2026-03-11")
    weights = {(i.reader, i.item_id): i.weight for i in got}
    assert weights[("a", i2)] > weights[("a", i1)] > 0  # a click outweighs its send
    assert weights[("a", i3)] < weights[("a", i4)] < 0  # sent, never opened: weak negative
    assert ("a", i5) not in weights  # sent today: not yet a negative
    assert not any(r.startswith("team:") for r, _ in weights)  # a team is not a reader


def _python_reference(store: Store, before: str | None) -> list[Interaction]:
    """The weighting rule written out plainly over every fetched event and send row."""
    from collections import defaultdict

    from digest.feedback import EVENT_WEIGHTS
    from digest.training import IGNORED_WEIGHT

    engaged: dict[tuple[str, str], float] = defaultdict(float)
    for reader, item_id, event, _tag, _time in store.events():
        engaged[(reader, item_id)] += EVENT_WEIGHTS.get(event, 0.0)
    for reader, item_id, day in store.sends():
        if not reader.startswith("team:") and (before is None or day < before):
            engaged.setdefault((reader, item_id), IGNORED_WEIGHT)
    return [Interaction(r, i, w) for (r, i), w in engaged.items() if w != 0]


def test_interactions_summed_by_sqlite_equal_those_summed_in_python(loaded: Store) -> None:
    """SQLite's summing gives what the rule written out plainly in Python gives."""
    ids = [row["id"] for row in loaded.items()][:6]
    _add_events(
        loaded,
        [("ada", ids[0], "click", "2026-03-01"), ("ada", ids[0], "click", "2026-03-02"),
         ("ada", ids[1], "like", "2026-03-01"), ("ada", ids[1], "dislike", "2026-03-02"),
         ("ada", ids[1], "dislike", "2026-03-03"), ("bob", ids[2], "tag", "2026-03-01"),
         ("bob", ids[3], "dislike", "2026-03-01"), ("bob", ids[4], "like", "2026-03-01"),
         ("bob", ids[4], "dislike", "2026-03-01"), ("bob", ids[4], "dislike", "2026-03-02")],
    )  # fmt: skip
    for reader, item, day in [
        ("ada", ids[0], "2026-03-09"), ("ada", ids[5], "2026-03-09"), ("bob", ids[5], "2026-03-11"),
        ("bob", ids[4], "2026-03-09"), ("team:core", ids[3], "2026-03-09"),
        ("TEAM:x", ids[3], "2026-03-09"), ("ada", ids[2], "2026-03-10"),
    ]:  # fmt: skip
        loaded.record_send(reader, item, channel="email", digest_date=day)
    for before in (None, "2026-03-10", "2026-03-11", "2026-03-12"):
        python = _python_reference(loaded, before)
        sql = interactions_from_store(loaded, before=before)
        assert sorted(sql) == sorted(python), before
        assert len(sql) == len(python) >= 5


def test_imported_sent_rows_reach_training_through_the_ledger(loaded: Store, tmp_path) -> None:
    """A 'sent' row lands in `sends` only, and training still reads it as a negative."""
    item = loaded.items()[0]["id"]
    path = tmp_path / "fb.csv"
    path.write_text(f"user,item,event,time\nada,{item},sent,2026-03-09T07:00:00Z\n")
    assert import_feedback(loaded, str(path)).imported == 1
    assert loaded.events() == []
    assert loaded.sends() == [("ada", item, "2026-03-09")]
    assert loaded.seen_by_all() == {"ada": {item}}
    got = interactions_from_store(loaded, before="2026-03-10")
    assert [(i.reader, i.item_id, i.weight) for i in got] == [("ada", item, -0.25)]


def _docs() -> list[ItemDoc]:
    topics = {
        "moe": "mixture of experts routing sparse experts load balancing",
        "quant": "quantization low bit weights int4 post training quantization",
        "robot": "robot manipulation policy grasping dexterous control",
        "protein": "protein structure folding residues sequence",
    }
    docs = []
    for name, words in topics.items():
        for k in range(12):
            docs.append(ItemDoc(f"{name}{k}", f"{words.split()[k % 4]} study {k} of {name}",
                                f"We study {words} in setting {k}. " * 3))  # fmt: skip
    return docs


def _interactions() -> list[Interaction]:
    out = []
    for u in range(6):
        topic = ["moe", "quant", "robot"][u % 3]
        out += [Interaction(f"u{u}", f"{topic}{k}", 1.0) for k in range(0, 8)]
    return out


def test_model_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    docs = _docs()
    a = Recommender(epochs=5, embeddings="off", random_state=3).fit(docs, _interactions())
    b = Recommender(epochs=5, embeddings="off", random_state=3).fit(docs, _interactions())
    new = docs[8:12] + docs[20:24]
    assert np.allclose(a.score(["u0"], new).blended, b.score(["u0"], new).blended)
    a.save(tmp_path / "m.model")
    loaded = Recommender.load(tmp_path / "m.model")
    assert np.allclose(loaded.score(["u0"], new).blended, a.score(["u0"], new).blended)


def test_new_items_and_new_readers_rank_topically() -> None:
    from digest.features import ReaderInfo

    docs = _docs()
    train_docs = [d for d in docs if int(d.id[-1:] if d.id[-2:-1].isalpha() else d.id[-2:]) < 8]
    new = [d for d in docs if d not in train_docs]
    readers = {"newbie": ReaderInfo("newbie", ("protein structure",))}
    model = Recommender(epochs=10, embeddings="off").fit(train_docs, _interactions(), readers)
    scores = model.score(["u0", "u1", "newbie"], new).blended
    top = [new[int(np.argmax(row))].id for row in scores]
    assert top[0].startswith("moe") and top[1].startswith("quant")
    assert top[2].startswith("protein")  # zero clicks, interests only


def test_rank_never_repeats_mutes_and_explains(loaded: Store, tmp_path: Path) -> None:
    profiles = load_profiles(PROFILES)
    model = train(loaded, profiles, tmp_path / "m.model", epochs=5, embeddings="off")
    items = loaded.stored_items()
    sent = {items[0].id}
    day = date(2026, 3, 11)
    result = rank(
        model, ["ada", "lin"], items, profiles=profiles, exclude={"ada": sent}, top=20, day=day
    )
    ada, lin = result
    assert sent.isdisjoint(p.item.id for p in ada.picks)
    robot = [i.id for i in items if ROBOTS.search(f"{i.title} {i.abstract}")]
    assert robot  # ada mutes "robot": those items are dropped, everything else is offered
    assert {p.item.id for p in ada.picks} == {i.id for i in items} - sent - set(robot)
    assert all(p.why.text() for p in ada.picks)
    assert [p.rank for p in ada.picks] == list(range(1, len(ada.picks) + 1))
    assert ada.day == day and ada.audience == "ada"
    assert lin.picks  # lin (no clicks on these) still gets a digest


ROBOTS = re.compile(r"\brobot(s|ic|ics)?\b", re.IGNORECASE)


def test_muting_matches_as_search_does(loaded: Store, tmp_path: Path) -> None:
    """Stemmed and case-folded: "language model" mutes "Large Language Models"."""
    from digest.profiles import Profile, ProfileSet
    from digest.records import StoredItem

    model = train(loaded, load_profiles(PROFILES), tmp_path / "m.model", epochs=2,
                  embeddings="off")  # fmt: skip
    items = [
        StoredItem("a", "Large Language Models Are Few-Shot Learners", "We scale models."),
        StoredItem("b", "Robotic Grasping in Clutter", "Grasp planning for arms."),
        StoredItem("c", "Graph Neural Networks for Chemistry", "Molecules as graphs."),
        StoredItem("d", "A language for modelling proofs", "Typed modelling language."),
    ]
    muted = Profile("zed", muted=("language model", "robot"))
    profiles = ProfileSet(readers={"zed": muted})
    (zed,) = rank(model, ["zed"], items, profiles=profiles, exclude={}, top=10,
                  day=date(2026, 3, 11))  # fmt: skip
    assert {p.item.id for p in zed.picks} == {"c", "d"}  # "language ... modelling" is no phrase


def test_mmr_pushes_down_near_copies() -> None:
    scores = np.array([3.0, 2.9, 1.0])
    similarity = np.array([[1, 0.99, 0], [0.99, 1, 0], [0, 0, 1]], dtype=np.float32)
    allowed = np.ones(3, dtype=bool)
    assert mmr(scores, similarity, allowed, 2, 0.0) == [0, 1]
    assert mmr(scores, similarity, allowed, 2, 0.5) == [0, 2]


def test_cli_train_and_rank_jsonl(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"DIGEST_DB": str(tmp_path / "d.db"), "DIGEST_MODEL": str(tmp_path / "m.model"),
           "DIGEST_PROFILES": str(PROFILES)}  # fmt: skip
    assert runner.invoke(cli, ["ingest", str(EXAMPLES / "dumps")], env=env).exit_code == 0
    result = runner.invoke(cli, ["train", "--embeddings", "off", "--epochs", "3"], env=env)
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        cli, ["rank", "--all", "--new-on", "2026-03-11", "--top", "2", "--format", "jsonl"], env=env
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert {line["user"] for line in lines} == {"ada", "grace", "lin", "sam"}
    for line in lines:
        assert 0 < len(line["items"]) <= 2
        assert all({"id", "rank", "score", "why"} == set(i) for i in line["items"])
        assert [i["rank"] for i in line["items"]] == list(range(1, len(line["items"]) + 1))
    ids = tmp_path / "ids.txt"
    ids.write_text(lines[0]["items"][0]["id"] + "\n")
    one = runner.invoke(cli, ["rank", "--user", "ada", "--candidates", str(ids)], env=env)
    assert one.exit_code == 0 and lines[0]["items"][0]["id"] in one.stdout
    bad = runner.invoke(cli, ["rank", "--user", "ada", "--model", str(tmp_path / "none")], env=env)
    assert bad.exit_code == 1 and "run 'digest train' first" in bad.stderr


def test_a_second_train_on_the_same_data_keeps_the_model_until_something_changes(
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    model = tmp_path / "m.model"
    env = {"DIGEST_DB": str(tmp_path / "d.db"), "DIGEST_MODEL": str(model),
           "DIGEST_PROFILES": str(PROFILES)}  # fmt: skip

    def train(*extra: str) -> str:
        args = ["train", "--embeddings", "off", "--epochs", "2", *extra]
        done = runner.invoke(cli, args, env=env)
        assert done.exit_code == 0, done.output
        return done.output

    assert runner.invoke(cli, ["ingest", str(EXAMPLES / "dumps")], env=env).exit_code == 0
    assert "trained on" in train()
    first, embeddings = model.read_bytes(), Recommender.load(model).lightfm.item_embeddings
    assert "is up to date" in train()
    assert model.read_bytes() == first  # kept as it was, not rewritten
    assert "trained on" in train("--force")
    # Same seed, same data: the very same model, which is why keeping it is safe.
    assert np.array_equal(Recommender.load(model).lightfm.item_embeddings, embeddings)
    assert "trained on" in train("--epochs", "3")  # another setting: trained anew
    assert "trained on" in train()  # and back
    item = Recommender.load(model).item_ids[0]
    assert runner.invoke(cli, ["feedback", "add", "zoe", item, "like"], env=env).exit_code == 0
    assert "trained on" in train()  # new feedback: trained anew
    assert runner.invoke(cli, ["train", "--update"], env=env).exit_code == 0
    assert "trained on" in train()  # an updated model is not what a full train gives
    model.write_bytes(b"not a model")
    assert "trained on" in train()  # an unreadable file is replaced, as before


def test_the_train_inputs_digest_covers_code_and_libraries(monkeypatch) -> None:
    from digest import training

    docs, days = _docs(), ["2026-03-01"] * len(_docs())
    args = (docs, days, _interactions(), {}, {"epochs": 2})
    first = training.inputs_digest(*args)
    assert training.inputs_digest(*args) == first
    assert training.inputs_digest(docs, days, _interactions()[1:], {}, {"epochs": 2}) != first
    monkeypatch.setattr(training, "code_version", lambda: "another build")
    assert training.inputs_digest(*args) != first  # new code or libraries: train anew


def test_a_train_whose_weight_search_failed_is_not_kept(tmp_path: Path, monkeypatch) -> None:
    from digest import training, tuning

    class Broken:
        def result(self, deadline: float | None = None):
            raise RuntimeError("worker died")

        def stop(self) -> None:
            pass

    monkeypatch.setattr(tuning, "recent_holdout", lambda *args: ("held", "out"))
    monkeypatch.setattr(tuning, "in_background", lambda **kwargs: Broken())
    store = Store.open(str(tmp_path / "d.db"))
    ingest(store, [str(EXAMPLES / "dumps")], today=TODAY)
    items = [row["id"] for row in store.items()]
    _add_events(store, [("ada", item, "click", "2026-03-01") for item in items[:5]])
    path = tmp_path / "m.model"
    model = training.train(store, load_profiles(PROFILES), path, epochs=2, embeddings="off")
    assert "failed" in str(model.tuning) and model.trained_on is None
    again = training.train(store, load_profiles(PROFILES), path, epochs=2, embeddings="off")
    assert not again.kept  # tried again, not kept as final


def test_embeddings_extra_is_used_when_installed() -> None:
    from digest import embed

    assert embed.available()  # `make test` installs the embed extra
    docs = _docs()
    model = Recommender(epochs=3, embeddings="on").fit(docs[:40], _interactions())
    parts = model.score(["u2"], docs[28:32] + docs[40:48]).raw  # u2 reads robot papers
    assert parts["embed"].shape == (1, 12)
    assert parts["embed"][0, :4].mean() > parts["embed"][0, 4:].mean()  # robot > protein


def test_incremental_update_learns_new_items_readers_and_events(tmp_path: Path) -> None:
    docs = _docs()
    old = [d for d in docs if not d.id.endswith(("8", "9", "10", "11"))]
    model = Recommender(epochs=5, embeddings="off").fit(old, _interactions())
    scale = dict(model.scale)
    fresh = [d for d in docs if d not in old]
    protein = np.array([d.id.startswith("protein") for d in fresh])
    before = model.score(["newcomer"], fresh)  # unknown reader: nothing known yet
    clicks = [Interaction("newcomer", f"protein{k}", 1.0) for k in range(4)]
    model.fit_partial(docs, _interactions() + clicks)
    assert set(model.item_ids) == {d.id for d in docs}
    assert model.scale == scale  # scores stay on the scale of earlier days
    after = model.score(["newcomer"], fresh)
    # The four protein clicks now lift protein papers, most of all through their neighbours.
    gain = after.blended[0] - before.blended[0]
    assert gain[protein].min() > gain[~protein].max()
    assert fresh[int(np.argmax(after.raw["neighbours"][0]))].id.startswith("protein")
    model.save(tmp_path / "m.model")
    assert Recommender.load(tmp_path / "m.model").reader_history("newcomer")


def test_cli_train_update_after_new_feedback(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"DIGEST_DB": str(tmp_path / "d.db"), "DIGEST_MODEL": str(tmp_path / "m.model"),
           "DIGEST_PROFILES": str(PROFILES)}  # fmt: skip
    assert runner.invoke(cli, ["ingest", str(EXAMPLES / "dumps")], env=env).exit_code == 0
    assert (
        runner.invoke(cli, ["train", "--embeddings", "off", "--epochs", "2"], env=env).exit_code
        == 0
    )
    before = Recommender.load(tmp_path / "m.model")
    item = before.item_ids[0]
    added = runner.invoke(cli, ["feedback", "add", "zoe", item, "like"], env=env)
    assert added.exit_code == 0, added.output
    updated = runner.invoke(cli, ["train", "--update"], env=env)
    assert updated.exit_code == 0, updated.output
    after = Recommender.load(tmp_path / "m.model")
    assert after.reader_history("zoe") == {item: 2.0}  # a like weighs double
    assert after.vectorizer.vocabulary_ == before.vectorizer.vocabulary_


def test_a_scale_measured_before_any_click_is_measured_again_once_clicks_exist() -> None:
    """An untrained LightFM scores near zero; its frozen scale must not outlive that."""
    from digest.features import ReaderInfo

    docs = _docs()
    readers = {r: ReaderInfo(r) for r in ("u1", "u2", "u3")}
    model = Recommender(epochs=5, embeddings="off").fit(docs[:40], [], readers)
    assert model.calibrated_on == 0
    model.fit_partial(docs[:40], _interactions(), readers, epochs=5)
    assert model.calibrated_on == sum(1 for e in _interactions() if e.weight > 0)
    fresh = Recommender(epochs=10, embeddings="off").fit(docs[:40], _interactions(), readers)
    updated = model.score(["u1", "u2"], docs[40:48]).blended
    reference = fresh.score(["u1", "u2"], docs[40:48]).blended
    # On the same scale as a model fitted with the clicks: not orders of magnitude apart.
    assert np.abs(updated).max() < 10 * np.abs(reference).max()
    scale = dict(model.scale)
    model.fit_partial(docs[:48], _interactions(), readers, epochs=1)
    assert model.scale == scale, "once measured with clicks, the scale stays fixed"


def test_explanations_for_many_readers_at_once_equal_a_plain_per_pick_computation() -> None:
    """The block-wise explanation (terms and closest past item) equals the definition."""
    from digest.model import _MIN_EXPLAIN_SIMILARITY

    docs = _docs()
    model = Recommender(epochs=2, embeddings="off").fit(docs[:40], _interactions())
    prepared = model.prepare(docs[40:] + docs[:8])
    names = model.terms()
    everything = list(range(len(docs[40:]) + 8))
    readers = ["u0", "u1", "nobody", "u2", "u3", "u4"]
    picks = [everything, everything[::3], everything, [], everything[5:9], [2, 0, 7]]
    got = model.explain_all(readers, prepared, picks)
    sims = (model.item_tfidf @ prepared["tfidf"].T).toarray()
    for reader, cols, reasons in zip(readers, picks, got, strict=True):
        assert len(reasons) == len(cols)
        assert reasons == model.explain(reader, prepared, cols)  # alone or in a block
        row = model._reader_row(reader)
        if row is None:
            assert all(not r.terms and r.because_id is None for r in reasons)
            continue
        centroid = model.tfidf_centroid[row].toarray().ravel()
        positives = [c for c, w in model.history[row].items() if w > 0]
        for col, why in zip(cols, reasons, strict=True):
            weights = prepared["tfidf"][col].toarray().ravel() * centroid
            ranked = [i for i in np.argsort(-weights, kind="stable")[:3] if weights[i] > 0]
            assert list(why.terms) == [str(names[i]) for i in ranked], (reader, col)
            best = positives[int(np.argmax(sims[positives, col]))]
            close = sims[best, col] >= _MIN_EXPLAIN_SIMILARITY
            assert why.because_id == (model.item_ids[best] if close else None), (reader, col)


def _mmr_reference(scores, similarity, allowed, size, diversity) -> list[int]:
    """MMR as defined: no pruning, every remaining candidate valued at every step."""
    pool = np.flatnonzero(allowed)
    if len(pool) == 0 or size <= 0:
        return []
    rel = scores[pool]
    rel = (rel - rel.mean()) / (rel.std() or 1.0)
    chosen: list[int] = []
    max_sim = np.zeros(len(pool), dtype=np.float32)
    available = np.ones(len(pool), dtype=bool)
    for _ in range(min(size, len(pool))):
        value = (1 - diversity) * rel - diversity * 3.0 * max_sim
        value[~available] = -np.inf
        best = int(np.argmax(value))
        chosen.append(int(pool[best]))
        available[best] = False
        max_sim = np.maximum(max_sim, similarity[pool[best], pool])
    return chosen


@pytest.mark.parametrize("seed", range(40))
def test_mmr_leaves_out_only_candidates_that_could_never_be_picked(seed: int) -> None:
    rng = np.random.RandomState(seed)
    n = rng.randint(1, 300)
    vectors = rng.rand(n, 6).astype(np.float32) ** 3
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = vectors @ vectors.T
    scores = rng.randn(n).astype(np.float32) * rng.choice([0.1, 1.0, 10.0])
    allowed = rng.rand(n) > 0.2
    size, diversity = rng.randint(0, 25), float(rng.choice([0.0, 0.1, 0.3, 0.6, 0.9, 1.0]))
    assert mmr(scores, similarity, allowed, size, diversity) == _mmr_reference(
        scores, similarity, allowed, size, diversity
    )


def test_an_update_keeps_past_items_tfidf_rows_and_adds_the_new_ones() -> None:
    docs = _docs()
    old = [d for d in docs if not d.id.endswith(("8", "9", "10", "11"))]
    model = Recommender(epochs=2, embeddings="off").fit(old, _interactions())
    model.fit_partial(docs, _interactions())
    # The vocabulary is fixed between full trains: stored rows equal a fresh transform.
    whole = model.vectorizer.transform([{d.id: d for d in docs}[i].text for i in model.item_ids])
    assert model.item_tfidf.shape == whole.shape
    assert abs(model.item_tfidf - whole).max() < 1e-6


def test_interest_phrase_hits_are_the_same_cached_or_not() -> None:
    model = Recommender(epochs=2, embeddings="off").fit(_docs(), _interactions())
    model.interest_phrases = [("protein folding", "graph"), ("graph",), ()]
    texts = ["protein folding with graph nets", "graph theory", "graphs of proteins"]
    cache: dict[str, np.ndarray] = {}
    rows = [0, 1, 2, None]
    first = model._phrase_hits(rows, texts, cache)
    assert first.tolist() == [[2, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]]
    assert set(cache) == {"protein folding", "graph"}
    assert (model._phrase_hits(rows, texts, cache) == first).all()


def test_an_update_trains_lightfm_on_new_clicks_and_as_many_replayed() -> None:
    import scipy.sparse as sp

    from digest.model import _to_learn

    learned = sp.csr_matrix(np.array([[1, 0, 2, 0], [0, 1, 0, 0]], dtype=np.float32))
    # Reader 0 clicked item 1 (new) and liked item 2 again (2 -> 3); reader 2 is new.
    now = sp.coo_matrix(np.array([[1, 1, 3, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float32))
    chosen = _to_learn(now, sp.csr_matrix(now), learned, seed=0).tocsr()
    fresh = {(0, 1): 1.0, (0, 2): 3.0, (2, 3): 1.0}
    got = {(int(r), int(c)): float(chosen[r, c]) for r, c in zip(*chosen.nonzero(), strict=True)}
    assert {k: got[k] for k in fresh} == fresh
    # Two unchanged pairs exist ((0, 0) and (1, 1)), three fresh ones: both are replayed.
    assert set(got) - set(fresh) == {(0, 0), (1, 1)}
    assert _to_learn(sp.coo_matrix(learned), learned, learned, seed=0).nnz == 0
    # Freshness follows the summed history, as `learned` is kept: one more click on a
    # pair clicked twice before is new; a like and a dislike on one pair are not.
    twice = sp.csr_matrix(np.array([[2.0]], dtype=np.float32))
    clicked = sp.coo_matrix(np.array([[1.0]], dtype=np.float32))
    assert _to_learn(clicked, twice * 1.5, twice, seed=0).nnz == 1
    mixed = sp.csr_matrix(np.array([[1.0]], dtype=np.float32))  # +2 and -1
    liked = sp.coo_matrix(np.array([[2.0]], dtype=np.float32))
    assert _to_learn(liked, mixed, mixed, seed=0).nnz == 0


def test_repeated_interactions_on_a_pair_count_as_history_does() -> None:
    docs = _docs()
    model = Recommender(epochs=2, embeddings="off").fit(docs, _interactions())
    twice = [*_interactions(), Interaction("u0", "protein1", 1.0)] * 2
    model.fit_partial(docs, twice)
    before = model.lightfm.user_embeddings.copy()
    model.fit_partial(docs, twice)  # the very same interactions: nothing new
    assert np.array_equal(model.lightfm.user_embeddings, before)
    model.fit_partial(docs, [*twice, Interaction("u0", "protein1", 1.0)])  # a third click
    assert not np.array_equal(model.lightfm.user_embeddings, before)


def test_an_update_with_nothing_new_leaves_lightfm_as_it_was() -> None:
    docs = _docs()
    model = Recommender(epochs=2, embeddings="off").fit(docs, _interactions())
    before = model.lightfm.item_embeddings.copy(), model.lightfm.user_embeddings.copy()
    model.fit_partial(docs, _interactions())
    assert np.array_equal(model.lightfm.item_embeddings, before[0])
    assert np.array_equal(model.lightfm.user_embeddings, before[1])
    model.fit_partial(docs, [*_interactions(), Interaction("u0", "protein1", 1.0)])
    assert not np.array_equal(model.lightfm.user_embeddings, before[1])
