"""Evaluation: data readers, protocols, metrics and an end-to-end run on synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FIXTURES
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.cli import cli
from digest.evaluate import (
    FIXED_EMBED,
    FIXED_NO_EMBED,
    LEARNED_EMBED,
    LEARNED_NO_EMBED,
    SVM,
    Dataset,
    _ranks,
    _top_columns,
    evaluate,
    evaluate_scores,
    item_cold_start,
    new_readers,
    read_citeulike,
    read_dataset,
    render_markdown,
    write_dataset,
)
from digest.features import ItemDoc

CITEULIKE_FIXTURE = FIXTURES / "citeulike"


def test_read_citeulike_fixture() -> None:
    data = read_citeulike(CITEULIKE_FIXTURE)
    assert len(data.items) == 6 and len(data.pairs) == 7
    assert data.items[0].tags == ("moe",) and data.items[5].tags == ()
    assert data.items[2].title == "Quantization of large language models"
    assert sorted(i for u, i in data.pairs if u == "u1") == ["0", "2", "3"]


def test_dataset_converter_round_trips(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["dataset", str(CITEULIKE_FIXTURE), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    back = read_dataset(tmp_path / "items.jsonl", tmp_path / "interactions.csv")
    original = read_citeulike(CITEULIKE_FIXTURE)
    assert [(d.id, d.title, d.tags) for d in back.items] == [
        (d.id, d.title, d.tags) for d in original.items
    ]
    assert sorted(back.pairs) == sorted(original.pairs)


def test_evaluate_scores_by_hand() -> None:
    items = ["a", "b", "c", "d"]
    scores = np.array([[4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    test = {"r1": {"b"}, "r2": {"a", "d"}}
    m = evaluate_scores(scores, ["r1", "r2"], items, test)
    # r1: b at rank 1 (0-based); r2: d at 0, a at 3. Every item is in a top-100.
    assert m["recall@50"] == 1.0 and m["coverage"] == 1.0
    ndcg_r1 = (1 / np.log2(3)) / 1.0
    ndcg_r2 = (1 + 1 / np.log2(5)) / (1 + 1 / np.log2(3))
    assert m["ndcg@100"] == pytest.approx((ndcg_r1 + ndcg_r2) / 2)
    # r1: b beats c, d and loses to a -> 2/3; r2: d beats b, c; a beats none -> 2/4.
    assert m["auc"] == pytest.approx((2 / 3 + 2 / 4) / 2)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 4), min_size=1, max_size=60),
    st.data(),
)
def test_ranks_and_top_columns_match_a_stable_sort(values: list[int], data) -> None:
    v = np.array(values, dtype=np.float64)
    order = np.argsort(-v, kind="stable")
    ranks = np.empty(len(v), dtype=np.int64)
    ranks[order] = np.arange(len(v))
    cols = np.array(sorted(set(data.draw(st.lists(st.integers(0, len(v) - 1), min_size=1)))))
    assert (_ranks(v, cols) == ranks[cols]).all()
    k = data.draw(st.integers(1, len(v)))
    assert set(_top_columns(v, k).tolist()) == set(order[:k].tolist())


def _topical(n_items: int = 400, n_readers: int = 60) -> Dataset:
    """Readers who each read one of five topics; items' titles name their topic."""
    topics = {
        "moe": "mixture experts routing sparse gating load balancing",
        "quant": "quantization low bit integer weights activation outliers",
        "robot": "robot manipulation grasping policy dexterous control",
        "protein": "protein folding structure residues sequence design",
        "speech": "speech recognition acoustic audio transcription accents",
    }
    rng = np.random.RandomState(7)
    names = list(topics)
    items = []
    for i in range(n_items):
        topic = names[i % 5]
        words = rng.choice(topics[topic].split(), 4, replace=False)
        items.append(ItemDoc(str(i), f"{' '.join(words)} study {i}", tags=(topic,)))
    pairs = []
    for u in range(n_readers):
        topic = u % 5
        chosen = rng.choice(np.arange(topic, n_items, 5), 25, replace=False)
        pairs += [(f"u{u}", str(i)) for i in chosen]
    return Dataset(items, pairs)


def test_item_cold_start_split_holds_items_out_and_strips_tags() -> None:
    data = _topical()
    split = item_cold_start(data, seed=3)
    test_ids = {d.id for d in split.test_items}
    assert len(test_ids) == 80 and not test_ids & {d.id for d in split.train_items}
    assert all(not d.tags for d in split.test_items + split.train_items)
    assert all(i not in test_ids for _, i in split.train)
    assert sum(len(v) for v in split.test.values()) + len(split.train) == len(data.pairs)
    assert item_cold_start(data, seed=3).test == split.test  # seeded
    assert all(d.tags for d in item_cold_start(data, 3, train_tags=True).train_items)


def test_new_readers_keep_at_most_three_clicks() -> None:
    split = item_cold_start(_topical(), seed=0)
    cut = new_readers(split, seed=0)
    assert set(cut.test) <= set(split.test) and len(cut.test) == round(0.2 * len(split.test))
    for reader in cut.test:
        assert sum(1 for u, _ in cut.train if u == reader) <= 3
    others = {(u, i) for u, i in split.train if u not in cut.test}
    assert others <= set(cut.train)


def test_evaluation_end_to_end_beats_baselines_on_topical_data() -> None:
    reports = evaluate(_topical(), [0], workers=1)
    assert [r.protocol for r in reports] == ["item-cold-start", "new-readers", "reader-history"]
    cold = reports[0].metrics
    expected = {"random", "popularity (text-predicted)", "tfidf centroid", SVM, "lightfm alone",
                "digest: text neighbours only", FIXED_NO_EMBED, LEARNED_NO_EMBED}  # fmt: skip
    assert expected <= set(cold)
    for row in (FIXED_NO_EMBED, LEARNED_NO_EMBED):
        assert cold[row]["auc"] > 0.9 > 0.7 > cold["random"]["auc"]
        assert cold[row]["recall@50"] > cold["random"]["recall@50"] + 0.3
    assert reports[2].readers == 0  # nobody in this small set has 50 clicks
    text = render_markdown(reports, "digest evaluate --test", 1.0)
    assert "## Summary: recall@100" in text and "### new-readers" in text
    assert "`digest evaluate --test`" in text


def test_cli_evaluate_runs_in_worker_processes(tmp_path: Path) -> None:
    items, pairs = write_dataset(_topical(200, 30), tmp_path / "data")
    out = tmp_path / "evaluation.md"
    result = CliRunner().invoke(
        cli,
        ["evaluate", "--items", str(items), "--interactions", str(pairs), "--seeds", "0,1",
         "--protocol", "item-cold-start", "--write", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "item-cold-start, seed 0" in text and "item-cold-start, seed 1" in text
    assert "new-readers, seed" not in text


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "give --citeulike DIR, or --items and --interactions"),
        (["--citeulike", "/nonexistent/folder"], "cannot read citeulike-a files"),
        (["--citeulike", str(CITEULIKE_FIXTURE), "--seeds", "one"], "not a list of integers"),
    ],
)
def test_cli_evaluate_bad_input_is_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["evaluate", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_read_dataset_reports_bad_rows(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"id": "1", "title": "A paper"}) + "\n")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user,item,event\nu1,1,click\nu2,1,explode\n")
    with pytest.raises(Exception, match=r"pairs.csv:3"):
        read_dataset(items, pairs)


def test_evaluation_without_the_embed_extra_reports_the_base_model(monkeypatch) -> None:
    from digest import embed

    monkeypatch.setattr(embed, "available", lambda: False)
    (report,) = evaluate(_topical(200, 30), [1], protocols=("item-cold-start",), workers=1)
    assert FIXED_EMBED not in report.metrics and LEARNED_EMBED not in report.metrics
    assert report.metrics[FIXED_NO_EMBED]["auc"] > 0.9


def test_the_cli_offers_every_protocol_the_evaluation_knows() -> None:
    from digest.cli import PROTOCOL_NAMES
    from digest.evaluate import PROTOCOLS

    assert tuple(PROTOCOLS) == PROTOCOL_NAMES
