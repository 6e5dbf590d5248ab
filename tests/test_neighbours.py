"""Nearest-neighbour scoring: brute-force checks on small random matrices."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from digest import neighbours as nn


def _unit_rows(rng: np.random.Generator, n: int, dim: int = 8) -> np.ndarray:
    x = rng.random((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 30), st.integers(1, 40), st.integers(1, 12))
def test_nearest_matches_brute_force(seed: int, n_query: int, n_base: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    query, base = _unit_rows(rng, n_query), _unit_rows(rng, n_base)
    exclude = rng.integers(-1, n_base, n_query)
    got = nn.nearest(query, base, k, exclude=exclude).toarray()
    sims = query @ base.T
    for i in range(n_query):
        allowed = [j for j in range(n_base) if j != exclude[i]]
        want = sorted(allowed, key=lambda j: -sims[i, j])[: min(k, n_base)]
        picked = set(np.flatnonzero(got[i]))
        assert exclude[i] not in picked
        assert len(picked) == len(want)
        # Same similarities (ties may pick different columns of equal value).
        assert np.allclose(sorted(sims[i, list(picked)]), sorted(sims[i, want]))
        assert np.allclose(got[i, list(picked)], sims[i, list(picked)])


def test_nearest_works_on_sparse_and_in_chunks(monkeypatch) -> None:
    rng = np.random.default_rng(1)
    dense_q, dense_b = _unit_rows(rng, 50), _unit_rows(rng, 30)
    monkeypatch.setattr(nn, "CHUNK", 7)
    sparse = nn.nearest(sp.csr_matrix(dense_q), sp.csr_matrix(dense_b), 5)
    dense = nn.nearest(dense_q, dense_b, 5)
    assert np.allclose(sparse.toarray(), dense.toarray())
    assert (np.diff(dense.indptr) == 5).all()


def test_co_clicks_link_items_read_together_and_never_self() -> None:
    # readers x items: items 0 and 1 are always read together, item 2 alone.
    history = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [0, 0, -1]], np.float32))
    co = nn.co_clicks(history, k=5).toarray()
    assert np.allclose(co, co.T)
    assert np.allclose(np.diag(co), 0)
    assert co[0, 1] == co[1, 0] > 0.99
    assert co[0, 2] == 0 and co[1, 2] == 0


def test_expansion_adds_co_clicked_items_to_positive_history_only() -> None:
    co = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], np.float32))
    history = sp.csr_matrix(np.array([[2, 0, 0], [0, 0, -1]], np.float32))
    out = nn.expand(history, co, strength=0.5).toarray()
    assert np.allclose(out, [[2, 1, 0], [0, 0, -1]])


def test_score_collects_neighbour_history_weights() -> None:
    expanded = sp.csr_matrix(np.array([[1.0, 0.0, 0.5]], np.float32))
    # two new items: the first resembles past items 0 and 1, the second past item 2
    neighbours = sp.csr_matrix(np.array([[0.9, 0.8, 0], [0, 0, 0.6]], np.float32))
    assert np.allclose(nn.score(expanded, neighbours), [[0.9, 0.3]])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_query=st.integers(1, 30),
    n_base=st.integers(1, 60),
    k_max=st.integers(1, 20),
    k=st.integers(1, 25),
)
def test_a_shorter_neighbour_list_is_the_nearest_of_the_longer_one(
    seed: int, n_query: int, n_base: int, k_max: int, k: int
) -> None:
    """The weight search prepares k_max neighbours once and tries every k up to it."""
    rng = np.random.RandomState(seed)
    query, base = rng.rand(n_query, 8).astype(np.float32), rng.rand(n_base, 8).astype(np.float32)
    longer = nn.nearest(query, base, k_max)
    assert np.allclose(
        nn.keep_top(longer, k).toarray(), nn.nearest(query, base, min(k, k_max)).toarray()
    )
    kept = nn.keep_top(longer, k)
    assert (np.diff(kept.indptr) <= k).all()
