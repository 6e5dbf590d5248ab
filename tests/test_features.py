"""Item and reader features: top terms, one-hot names, row weights, centroids, char n-grams."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.features import (
    ItemDoc,
    ReaderInfo,
    Vocabulary,
    _rows_sum_to_one,
    centroids,
    char_matrix,
    doc_of,
    fit_char_vectorizer,
    item_extra_names,
    item_feature_matrix,
    make_vectorizer,
    top_terms,
    user_feature_matrix,
    user_feature_names,
)
from digest.records import StoredItem


@st.composite
def sparse_rows(draw: st.DrawFn) -> sp.csr_matrix:
    """A small sparse matrix of positive weights (TF-IDF rows are non-negative)."""
    rows, cols = draw(st.integers(1, 6)), draw(st.integers(1, 12))
    cells = draw(
        st.dictionaries(
            st.tuples(st.integers(0, rows - 1), st.integers(0, cols - 1)),
            st.floats(0.125, 16.0, width=32),
            max_size=rows * cols,
        )
    )
    r = [i for i, _ in cells]
    c = [j for _, j in cells]
    return sp.csr_matrix((list(cells.values()), (r, c)), shape=(rows, cols), dtype=np.float32)


# -- top_terms --------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(sparse_rows(), st.integers(0, 6))
def test_top_terms_keeps_the_k_strongest_terms_of_each_row(matrix: sp.csr_matrix, k: int) -> None:
    kept = top_terms(matrix, k)
    assert kept.shape == matrix.shape and kept.dtype == np.float32
    dense, out = matrix.toarray(), kept.toarray()
    for row, got in zip(dense, out, strict=True):
        nonzero = np.flatnonzero(row)
        chosen = np.flatnonzero(got)
        assert len(chosen) == min(k, len(nonzero))
        # Every kept term keeps its weight; none dropped outweighs one kept.
        assert np.array_equal(got[chosen], row[chosen])
        dropped = np.setdiff1d(nonzero, chosen)
        if len(chosen) and len(dropped):
            assert row[dropped].max() <= row[chosen].min()


def test_top_terms_leaves_short_rows_and_empty_rows_untouched() -> None:
    matrix = sp.csr_matrix(np.array([[0, 3, 0, 1], [0, 0, 0, 0], [2, 0, 0, 0]], np.float32))
    assert (top_terms(matrix, 2) != matrix).nnz == 0
    assert np.array_equal(top_terms(matrix, 1).toarray()[0], [0, 3, 0, 0])


# -- rows summing to one ----------------------------------------------------------------------


@given(sparse_rows())
def test_rows_sum_to_one_keeps_proportions_and_empty_rows(matrix: sp.csr_matrix) -> None:
    scaled = _rows_sum_to_one(matrix).toarray()
    dense = matrix.toarray()
    for row, got in zip(dense, scaled, strict=True):
        if row.any():
            assert np.isclose(got.sum(), 1.0, atol=1e-5)
            assert np.allclose(got * row.sum(), row, rtol=1e-4)
        else:
            assert not got.any()


# -- feature names ----------------------------------------------------------------------------


def test_item_extra_names_are_normalised_tags_then_source() -> None:
    doc = ItemDoc("p1", "T", tags=("Machine Learning", "Naïve-Bayes", "!!!"), source="arXiv")
    assert item_extra_names(doc) == ["tag:machine learning", "tag:naive bayes", "source:arXiv"]
    assert item_extra_names(ItemDoc("p2", "T")) == []


def test_user_feature_names_start_with_the_reader_and_add_profile_words() -> None:
    info = ReaderInfo("ada", interests=("Mixture-of-Experts", "LLMs"), teams=("core",))
    assert user_feature_names("ada", info) == [
        "user:ada",
        "interest:mixture of experts",
        "interest:llms",
        "team:core",
    ]
    assert user_feature_names("zoe", None) == ["user:zoe"]  # known from feedback alone


def test_interests_with_no_words_add_nothing_and_repeats_count_once() -> None:
    # "!!!" normalises to nothing: as a feature it would tie every such reader together.
    info = ReaderInfo("ada", interests=("!!!", "C++", "C#", "Graphs"))
    assert user_feature_names("ada", info) == ["user:ada", "interest:c", "interest:graphs"]


def test_user_feature_matrix_grows_at_training_and_drops_unknown_names_later() -> None:
    vocab = Vocabulary()
    infos = {"ada": ReaderInfo("ada", ("quantization",), ("core",)), "lin": ReaderInfo("lin")}
    trained = user_feature_matrix(["ada", "lin"], infos, vocab, grow=True)
    assert set(vocab.user) == {"user:ada", "interest:quantization", "team:core", "user:lin"}
    assert sorted(vocab.user.values()) == list(range(4))
    assert trained.shape == (2, 4)
    assert np.allclose(trained.sum(axis=1), 1.0)  # ada's three names share one unit of weight
    assert np.isclose(trained[0, vocab.user["user:ada"]], 1 / 3)
    # A new reader after training: their own name is unknown, their team is not.
    infos["sam"] = ReaderInfo("sam", teams=("core",))
    later = user_feature_matrix(["sam", "nobody"], infos, vocab, grow=False)
    assert later.shape == (2, 4) and len(vocab.user) == 4
    assert later[0, vocab.user["team:core"]] == 1.0 and later[0].nnz == 1
    assert later[1].nnz == 0


def test_item_feature_matrix_weighs_text_and_tags_together_to_one() -> None:
    docs = [
        ItemDoc("a", "Sparse experts", "mixture of experts routing", ("MoE",), "hf"),
        ItemDoc("b", "Sparse quantization", "low bit quantization", ("Quant",), "hf"),
        ItemDoc("c", "Dense experts", "experts routing at scale", (), ""),
        ItemDoc("d", "Dense quantization", "low bit kernels", (), ""),
    ]
    vectorizer = make_vectorizer()
    text = vectorizer.fit_transform([d.text for d in docs])
    vocab = Vocabulary()
    matrix = item_feature_matrix(text, docs, vocab, grow=True, k=2)
    assert set(vocab.item_extra) == {"tag:moe", "tag:quant", "source:hf"}
    assert matrix.shape == (4, text.shape[1] + 3)
    assert np.allclose(matrix.sum(axis=1), 1.0)
    terms = matrix[:, : text.shape[1]]
    assert [terms[i].nnz for i in range(4)] == [2, 2, 2, 2]
    # An unseen tag at scoring time adds no column and no weight.
    new = [ItemDoc("d", "Sparse experts", "", ("Brand New",), "elsewhere")]
    scored = item_feature_matrix(vectorizer.transform([new[0].text]), new, vocab, grow=False, k=2)
    assert scored.shape == (1, matrix.shape[1])
    assert scored[:, text.shape[1] :].nnz == 0


def test_doc_of_carries_what_the_model_reads() -> None:
    item = StoredItem("p1", "Title", "Abstract", tags=("t",), source="s", url="https://x.org")
    doc = doc_of(item)
    assert doc == ItemDoc("p1", "Title", "Abstract", ("t",), "s")
    assert doc.text.count("Title") == 2  # the title is weighted over the abstract


def test_word_vectorizer_compares_normalised_text() -> None:
    docs = ["Naïve Bayes routing", "naive bayes ROUTING", "sparse kernels", "kernels tomography"]
    vectorizer = make_vectorizer()
    vectorizer.fit(docs)
    assert "naive bayes" in vectorizer.vocabulary_
    assert "naïve" not in vectorizer.vocabulary_
    assert "kernels" in vectorizer.vocabulary_
    assert "tomography" not in vectorizer.vocabulary_  # in one document only (min_df=2)


# -- centroids --------------------------------------------------------------------------------


def test_centroids_are_unit_weighted_means_and_empty_readers_stay_zero() -> None:
    vectors = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    rows = [[(0, 2.0), (1, 1.0)], [], [(2, -1.0)]]
    got = centroids(rows, vectors)
    expected = np.array([2, 1, 0]) / np.sqrt(5)
    assert np.allclose(got[0], expected)
    assert not got[1].any()
    assert np.allclose(got[2], [0, 0, -1])  # a dislike points away


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_sparse_and_dense_centroids_agree(seed: int) -> None:
    rng = np.random.RandomState(seed)
    vectors = rng.rand(6, 5).astype(np.float32) * (rng.rand(6, 5) < 0.5)
    rows = [
        [(int(c), float(rng.randn())) for c in rng.choice(6, rng.randint(0, 4), replace=False)]
        for _ in range(4)
    ]
    dense = centroids(rows, vectors)
    sparse = centroids(rows, sp.csr_matrix(vectors))
    assert sp.issparse(sparse) and isinstance(dense, np.ndarray)
    assert np.allclose(sparse.toarray(), dense, atol=1e-5)
    norms = np.linalg.norm(dense, axis=1)
    assert np.all(np.isclose(norms, 1.0, atol=1e-5) | (norms == 0))


# -- character n-grams ------------------------------------------------------------------------


def test_fit_char_vectorizer_is_none_without_shared_ngrams() -> None:
    for titles in ([], ["Attention"], ["abc", "xyz"], ["", ""]):  # an n-gram in two titles
        vectorizer, rows = fit_char_vectorizer(titles)
        assert vectorizer is None and rows.shape == (len(titles), 0)


def test_the_fitted_titles_rows_are_what_the_vectorizer_makes_of_them() -> None:
    titles = ["Recommender systems", "Recommendation engines", "Graph kernels", "graph nets"]
    vectorizer, rows = fit_char_vectorizer(titles)
    assert vectorizer is not None and rows.dtype == np.float32
    again = char_matrix(vectorizer, titles)
    assert rows.shape == again.shape and np.allclose(rows.toarray(), again.toarray())


def test_char_matrix_links_inflections_of_a_word() -> None:
    vectorizer, _ = fit_char_vectorizer(["Recommender systems", "Recommendation engines"])
    assert vectorizer is not None
    rows = char_matrix(vectorizer, ["RECOMMENDERS", "Graph kernels", "Récommendation"])
    assert rows.shape == (3, len(vectorizer.vocabulary_)) and rows.dtype == np.float32
    similarity = (rows @ rows.T).toarray()
    assert similarity[0, 2] > 0  # case and accents do not matter, shared stems do
    assert not rows[1].nnz  # nothing in common with the fitted titles


def test_char_matrix_shapes_without_a_vectorizer_or_titles() -> None:
    assert char_matrix(None, ["a", "b"]).shape == (2, 0)
    assert char_matrix(None, []).shape == (0, 0)
    vectorizer, _ = fit_char_vectorizer(["graph networks", "graph kernels"])
    assert vectorizer is not None
    assert char_matrix(vectorizer, []).shape == (0, len(vectorizer.vocabulary_))
