"""Dedup: exact keys, normalised titles, near-duplicates, and two properties."""

from __future__ import annotations

import random
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.dedup import Candidate, find_match, fingerprint
from digest.ingest import ingest_record
from digest.records import ItemRecord
from digest.store import Store
from digest.text import normalize

ABSTRACT = (
    "We introduce a method for training sparse expert models that balances load across "
    "experts without auxiliary losses, and evaluate it on language modelling benchmarks."
)


def _match(new: ItemRecord, old: ItemRecord):
    old_fp = fingerprint(old)
    index = {k: "old" for k in old_fp.exact + old_fp.blocking}
    cand = Candidate("old", old_fp.title, old_fp.abstract, old.arxiv_id, old.doi)
    return find_match(
        fingerprint(new),
        lambda keys: {k: index[k] for k in keys if k in index},
        lambda ids: [cand],
    )


def test_normalize_handles_case_punctuation_unicode_and_tex() -> None:
    assert normalize("LLM.int8(): 8-bit Matrix") == normalize("llm int8 8 bit matrix")
    assert normalize("$O(n^2)$ attention") == normalize("O(n2) Attention")
    assert normalize("H_2O heavy hitters") == normalize("H2O Heavy-Hitters")
    assert normalize("Naïve") == normalize("naive")
    assert normalize("ｆｕｌｌｗｉｄｔｈ") == "fullwidth"
    assert normalize("\\textbf{Bold} idea") == "bold idea"


def test_exact_keys_match() -> None:
    base = ItemRecord("A Paper", ABSTRACT, arxiv_id="2401.00001")
    assert _match(ItemRecord("Renamed Entirely", arxiv_id="2401.00001"), base).reason == (
        "exact arxiv"
    )
    url = ItemRecord("X", url="https://www.example.org/p/1/?utm_source=feed#top")
    assert _match(ItemRecord("Y", url="http://example.org/p/1"), url).reason == "exact url"
    assert _match(ItemRecord("a paper!!"), base).reason == "exact title"


def test_same_abstract_under_changed_title() -> None:
    old = ItemRecord("Load Balancing Without Auxiliary Losses", ABSTRACT)
    new = ItemRecord("Auxiliary-Loss-Free Expert Balancing", ABSTRACT)
    assert _match(new, old).reason == "exact abstract"
    edited = ItemRecord("Auxiliary-Loss-Free Expert Balancing", ABSTRACT.replace("We", "Here we"))
    assert _match(edited, old).reason == "near abstract"


def test_small_title_edit_is_a_near_duplicate() -> None:
    old = ItemRecord("Sparse Mixture-of-Experts Routing with Learned Capacity Factors", ABSTRACT)
    new = ItemRecord("Sparse Mixture of Experts Routing with Learned Capacity Factor")
    match = _match(new, old)
    assert match is not None and match.reason == "near title"
    assert match.score >= 90


def test_different_papers_are_not_merged() -> None:
    old = ItemRecord("Scaling Laws for Neural Language Models", ABSTRACT)
    assert _match(ItemRecord("Scaling Laws for Neural Machine Translation"), old) is None
    other = ItemRecord(
        "Scaling Laws for Neural Language Models",
        "A completely different study of vision transformers, image resolution and data "
        "augmentation policies, measured on ImageNet and COCO detection benchmarks.",
        arxiv_id="2001.99999",
    )
    assert _match(other, ItemRecord(old.title, old.abstract, arxiv_id="2001.08361")) is None


# -- properties -------------------------------------------------------------------------

_WORDS = [
    "sparse", "expert", "routing", "diffusion", "policy", "robot", "quantized", "attention",
    "retrieval", "protein", "graph", "kernel", "scaling", "bandit", "privacy", "speech",
    "vision", "memory", "tokenizer", "reward", "agent", "causal", "federated", "optimizer",
]  # fmt: skip


@st.composite
def paper_sets(draw):
    """Distinct papers (no two share a word bag) plus exact and near copies of them."""
    count = draw(st.integers(1, 6))
    bags = draw(
        st.lists(
            st.lists(st.sampled_from(_WORDS), min_size=6, max_size=6, unique=True),
            min_size=count, max_size=count,
            unique_by=lambda b: frozenset(b[:3]),
        )
    )  # fmt: skip
    papers = [ItemRecord(" ".join(b).title(), f"We study {' and '.join(b)}. " * 6) for b in bags]
    records = list(papers)
    for _ in range(draw(st.integers(0, 8))):
        paper = draw(st.sampled_from(papers))
        kind = draw(st.sampled_from(["same", "case", "punct"]))
        title = {
            "same": paper.title, "case": paper.title.upper(),
            "punct": paper.title.replace(" ", "-", 1) + "!",
        }[kind]  # fmt: skip
        records.append(ItemRecord(title, paper.abstract))
    return len(papers), records


def _distinct_after_ingest(records: list[ItemRecord]) -> int:
    store = Store.open(":memory:")
    source = store.source_id("test", "json", None)
    with store.transaction():
        for record in records:
            ingest_record(store, record, source, None, date(2026, 1, 1).isoformat())
    count = store.conn.execute("SELECT count(*) FROM items").fetchone()[0]
    store.close()
    return count


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(paper_sets(), st.randoms(use_true_random=False))
def test_distinct_papers_do_not_depend_on_input_order(data, rnd: random.Random) -> None:
    expected, records = data
    shuffled = list(records)
    rnd.shuffle(shuffled)
    assert _distinct_after_ingest(records) == expected
    assert _distinct_after_ingest(shuffled) == expected


@settings(max_examples=30, deadline=None)
@given(paper_sets())
def test_ingesting_again_is_idempotent(data) -> None:
    _, records = data
    assert _distinct_after_ingest(records + records) == _distinct_after_ingest(records)
