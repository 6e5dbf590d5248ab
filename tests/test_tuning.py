"""The weight search: a held-out newest slice, settings and weights chosen on it alone."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from digest import tuning
from digest.cli import cli
from digest.features import ItemDoc
from digest.model import DEFAULT_WEIGHTS, Interaction, Recommender

TOPICS = {
    "moe": "mixture experts routing sparse gating load balancing capacity",
    "quant": "quantization low bit integer weights activation outliers calibration",
    "robot": "robot manipulation grasping policy dexterous control tactile",
    "protein": "protein folding structure residues sequence design binding",
    "speech": "speech recognition acoustic audio transcription accents prosody",
}


def team(n_items: int = 300, n_readers: int = 40, seed: int = 3):
    """Readers who each follow one topic; items are one topic's words, oldest first."""
    rng = np.random.RandomState(seed)
    names = list(TOPICS)
    items, days = [], []
    for i in range(n_items):
        words = rng.choice(TOPICS[names[i % 5]].split(), 4, replace=False)
        items.append(ItemDoc(str(i), f"{' '.join(words)} study {i}"))
        days.append(f"2026-03-{1 + i * 28 // n_items:02d}")
    events = []
    for u in range(n_readers):
        mine = np.arange(u % 5, n_items, 5)
        for i in rng.choice(mine, min(20, len(mine)), replace=False):
            events.append(Interaction(f"u{u}", str(i), 1.0))
    return items, events, days


def test_the_newest_whole_days_are_held_out_with_their_clicks_as_truth() -> None:
    items, events, days = team()
    held = tuning.recent_holdout(items, events, days)
    assert isinstance(held, tuning.Holdout)
    cut = len(held.train_items)
    assert days[cut - 1] != days[cut], "a day is never split between the two sides"
    assert 0.15 * len(items) <= len(held.valid_items) <= 0.3 * len(items)
    newest = {d.id for d in held.valid_items}
    assert [d.id for d in held.train_items + held.valid_items] == [d.id for d in items]
    assert not any(e.item_id in newest for e in held.train)
    assert held.truth == {
        r: {e.item_id for e in events if e.reader == r and e.item_id in newest}
        for r in {e.reader for e in events if e.item_id in newest}
    }


def test_negatives_on_the_newest_items_are_not_truth() -> None:
    items, events, days = team()
    newest = items[-1].id
    disliked = [*events, Interaction("u0", newest, -1.0), Interaction("u1", newest, -0.25)]
    held = tuning.recent_holdout(items, disliked, days)
    assert isinstance(held, tuning.Holdout)
    assert newest not in held.truth.get("u0", set()) | held.truth.get("u1", set())
    assert not any(e.item_id == newest for e in held.train)


@pytest.mark.parametrize(
    ("n_items", "n_readers", "expected"),
    [(30, 40, "items: at least"), (300, 3, "readers are needed"), (300, 1, "readers")],
)
def test_a_team_too_small_to_split_keeps_the_defaults_and_says_why(
    n_items: int, n_readers: int, expected: str
) -> None:
    items, events, days = team(n_items, n_readers)
    chosen = tuning.tune(items, events, None, {"epochs": 2}, digest_size=10, days=days)
    assert chosen.method == "default"
    assert expected in chosen.reason
    assert chosen.weights == DEFAULT_WEIGHTS
    assert "fixed defaults" in tuning.describe(chosen.as_dict())


def test_the_search_repairs_a_bad_blend_on_the_held_out_slice() -> None:
    """Start from weights that trust the weakest scorer alone: the search must move them."""
    items, events, days = team()
    bad = {name: 0.0 for name in DEFAULT_WEIGHTS}
    bad["interest"] = 0.0
    bad["tfidf"] = 0.0
    bad["lightfm"] = 1.0
    params = {"epochs": 3, "embeddings": "off", "weights": bad}
    chosen = tuning.tune(items, events, None, params, digest_size=10, days=days)
    assert chosen.method == "learned"
    before, after = chosen.scores["default"], chosen.scores["learned"]
    assert after["recall"] + after["ndcg"] > before["recall"] + before["ndcg"] + 0.05
    assert chosen.weights != bad
    assert any(chosen.weights[n] > 0 for n in ("neighbours", "char_neighbours"))
    assert not any(chosen.weights[n] for n in DEFAULT_WEIGHTS if n.startswith("embed"))
    assert chosen.neighbours_k in tuning.K_GRID and chosen.expansion in tuning.EXPANSION_GRID
    assert chosen.held_out["readers"] == len({e.reader for e in events})


def test_learned_never_scores_below_the_defaults_on_validation() -> None:
    items, events, days = team(seed=11)
    params = {"epochs": 3, "embeddings": "off"}
    chosen = tuning.tune(items, events, None, params, digest_size=10, days=days)
    assert chosen.method == "learned"
    before, after = chosen.scores["default"], chosen.scores["learned"]
    assert after["recall"] + after["ndcg"] >= before["recall"] + before["ndcg"]


def test_a_limited_search_zeroes_the_scorers_it_was_not_given() -> None:
    items, events, days = team()
    params = {"epochs": 3, "embeddings": "off"}
    search = tuning.validation(items, events, None, params, 10, days)
    assert isinstance(search, tuning.Search)
    chosen = search.run(["neighbours", "lightfm"])
    assert set(n for n, w in chosen.weights.items() if w) <= {"neighbours", "lightfm"}


def test_the_search_reports_its_best_so_far_and_ends_on_what_it_returns() -> None:
    items, events, days = team()
    search = tuning.validation(items, events, None, {"epochs": 3, "embeddings": "off"}, 10, days)
    assert isinstance(search, tuning.Search)
    reports: list[tuning.Tuning] = []
    final = search.run(report=reports.append)
    assert reports[0].reason == "settings chosen, weights not yet searched"
    assert all("scorers searched in round" in r.reason for r in reports[1:])
    assert len(reports) > len(search.active)  # one report per scorer of the first round
    scores = [r.scores["learned"]["recall"] + r.scores["learned"]["ndcg"] for r in reports]
    assert scores == sorted(scores), "each report is at least as good as the one before"
    assert (reports[-1].weights, reports[-1].scores) == (final.weights, final.scores)
    assert final.reason == ""


def test_a_search_in_the_background_answers_in_full_or_with_its_best_so_far() -> None:
    items, events, days = team()
    kwargs = {
        "items": items, "interactions": events, "readers": None,
        "params": {"epochs": 3, "embeddings": "off"}, "digest_size": 10, "days": days,
    }  # fmt: skip
    whole = tuning.in_background(**kwargs).result()
    assert whole is not None and whole.method == "learned" and whole.reason == ""
    # A deadline already past: whatever arrived first, or nothing, and no process left.
    cut = tuning.in_background(**kwargs)
    early = cut.result(deadline=0.0)
    assert early is None or early.reason.startswith("stopped at its time budget")
    assert not cut._process.is_alive()


def test_a_train_whose_search_has_no_time_keeps_the_defaults_and_says_why() -> None:
    from digest.training import FitJob

    items, events, days = team()
    params = {"epochs": 2, "embeddings": "off"}
    job = FitJob(items, events, {}, None, params, search_budget=0.0, search_min_time=0.0)
    model = job.tuned(10, days)
    record = model.tuning
    if record["method"] == "default":  # nothing chosen by the time the final fit ended
        # No time beyond the fit itself: the budget is the fit's own time.
        assert re.search(r"chose nothing within its time budget of \d+\.\d s", record["reason"])
        assert job.search_failed, "a search that chose nothing is tried again next train"
    else:  # the search was quicker than the fit: its best so far, and it says so
        assert record["reason"].startswith("stopped at its time budget") or not record["reason"]
        if record["reason"]:
            assert "the search stopped at its time budget" in tuning.describe(record)


def test_applied_settings_calibrate_as_a_fresh_calibration_would() -> None:
    # apply_tuning reuses the calibration sample's neighbours; a model given the same
    # settings before its calibration must end with the same scale.
    items, events, days = team()
    chosen = tuning.tune(items, events, None, {"epochs": 3, "embeddings": "off"}, digest_size=10,
                         days=days)  # fmt: skip
    model = Recommender(epochs=3, embeddings="off").fit(items, events)
    # Fewer neighbours than fitted, another expansion, the same ridges.
    chosen = replace(
        chosen, neighbours_k=25, expansion=1.0, ridge=model.ridge, ridge_embed=model.ridge_embed
    )
    model.apply_tuning(chosen)
    fresh = Recommender(epochs=3, embeddings="off").fit(items, events)
    fresh.neighbours_k, fresh.expansion = 25, 1.0
    fresh.__dict__.pop("_calibration_side")
    fresh._calibrate()
    assert model.scale.keys() == fresh.scale.keys()
    for name, (mean, std) in fresh.scale.items():
        assert model.scale[name] == pytest.approx((mean, std), rel=1e-5, abs=1e-7), name


def test_applied_settings_survive_save_and_load(tmp_path: Path) -> None:
    items, events, days = team()
    params = {"epochs": 3, "embeddings": "off"}
    chosen = tuning.tune(items, events, None, params, digest_size=10, days=days)
    model = Recommender(**params).fit(items, events)
    model.apply_tuning(chosen)
    assert model.weights == chosen.weights and model.tuning == chosen.as_dict()
    path = tmp_path / "digest.model"
    model.save(path)
    loaded = Recommender.load(path)
    assert loaded.summary() == model.summary()
    readers = ["u0", "u1", "u7"]
    expected = model.score(readers, items[-30:]).blended
    assert np.allclose(loaded.score(readers, items[-30:]).blended, expected, atol=1e-5)


def test_the_metrics_are_recall_and_ndcg_at_the_digest_size() -> None:
    """Checked by hand on a 2-reader, 4-item slice with a digest of 2."""
    items, events, days = team()
    search = tuning.validation(items, events, None, {"epochs": 2}, 2, days)
    assert isinstance(search, tuning.Search)
    search.judge_by(np.array([[True, False, False, True], [False, True, False, False]]), 2)
    raw = {"a": np.array([[0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.9, 0.3]], dtype=np.float32)}
    got = search.metrics(raw, {"a": 1.0})
    # reader 0: top 2 = items 0, 1: one of two hits (recall 1/2), gain 1 / ideal 1 + 1/log2(3)
    # reader 1: top 2 = items 2, 3: no hit.
    assert got["recall"] == pytest.approx((0.5 + 0.0) / 2)
    assert got["ndcg"] == pytest.approx((1.0 / (1 + 1 / np.log2(3)) + 0.0) / 2)


# -- through the CLI --------------------------------------------------------------------------


def write_team(folder: Path, items: list[ItemDoc], events: list[Interaction], days: list[str]):
    rows = [
        {"id": d.id, "title": d.title, "url": f"https://example.org/{d.id}", "published": day}
        for d, day in zip(items, days, strict=True)
    ]
    by_day: dict[str, list[dict]] = {}
    for row in rows:
        by_day.setdefault(row["published"], []).append(row)
    paths = []
    for day, day_rows in sorted(by_day.items()):
        path = folder / f"{day}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in day_rows), encoding="utf-8")
        paths.append((day, path))
    feedback = folder / "feedback.csv"
    lines = ["user,item,event"] + [
        f"{e.reader},https://example.org/{e.item_id},click" for e in events
    ]
    feedback.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths, feedback


def test_train_learns_weights_and_model_show_lists_them(tmp_path: Path) -> None:
    items, events, days = team()
    paths, feedback = write_team(tmp_path, items, events, days)
    db, model = str(tmp_path / "d.db"), str(tmp_path / "d.model")
    runner = CliRunner()
    for day, path in paths:
        done = runner.invoke(cli, ["--db", db, "ingest", "--date", day, str(path)])
        assert done.exit_code == 0, done.output
    assert runner.invoke(cli, ["--db", db, "feedback", "import", str(feedback)]).exit_code == 0
    trained = runner.invoke(
        cli, ["--db", db, "train", "--model", model, "--embeddings", "off", "--epochs", "3"]
    )
    assert trained.exit_code == 0, trained.output
    assert "blend weights: learned on the newest" in trained.output
    shown = runner.invoke(cli, ["model", "show", "--model", model])
    assert shown.exit_code == 0, shown.output
    assert "blend weights: learned" in shown.output
    assert all(name in shown.output for name in DEFAULT_WEIGHTS)
    info = json.loads(runner.invoke(cli, ["model", "show", "--model", model, "--json"]).output)
    assert info["tuning"]["method"] == "learned"
    assert info["weights"] == info["tuning"]["weights"]
    assert info["tuning"]["held_out"]["clicks"] >= tuning.MIN_CLICKS

    fixed = runner.invoke(
        cli, ["--db", db, "train", "--model", model, "--embeddings", "off", "--no-tune"]
    )
    assert fixed.exit_code == 0, fixed.output
    assert "blend weights: fixed" in fixed.output
    info = json.loads(runner.invoke(cli, ["model", "show", "--model", model, "--json"]).output)
    assert info["weights"] == DEFAULT_WEIGHTS


def test_model_show_without_a_model_is_one_error_line(tmp_path: Path) -> None:
    shown = CliRunner().invoke(cli, ["model", "show", "--model", str(tmp_path / "none.model")])
    assert shown.exit_code == 1
    assert shown.output.strip().splitlines() == [
        f"error: {tmp_path / 'none.model'}: no model file; run 'digest train' first"
    ]


def test_one_big_day_is_split_by_arrival_order() -> None:
    """A history imported in one go has one first-seen day: its newest items still count."""
    items, events, _days = team()
    held = tuning.recent_holdout(items, events, ["2026-03-11"] * len(items))
    assert isinstance(held, tuning.Holdout)
    assert len(held.valid_items) == round(tuning.HOLDOUT * len(items))
    assert held.valid_items == items[-len(held.valid_items) :]


def test_the_weights_are_searched_strongest_scorer_first() -> None:
    # A search cut short by its time budget has then tuned the scorers that matter most.
    items, events, days = team()
    search = tuning.validation(items, events, None, {"epochs": 3, "embeddings": "off"}, 10, days)
    assert isinstance(search, tuning.Search)
    search.run()
    raw = search._raw(search.model.neighbours_k, search.model.expansion, 10.0, 100.0)
    order = search._strongest_first(raw)
    alone = [search.objective(raw, {name: 1.0}) for name in order]
    assert sorted(order) == sorted(search.active) and alone == sorted(alone, reverse=True)
