"""Per-reader ridge regression over a dense item space, solved for all readers at once."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.linear import ridge_weights, scores


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _clusters(rng: np.random.RandomState, per: int, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Unit item rows around two orthogonal directions: `per` items each; labels 0 and 1."""
    centres = np.eye(d)[:2] * 3.0
    labels = np.repeat([0, 1], per)
    return _unit(centres[labels] + rng.randn(2 * per, d) * 0.3), labels


def test_weights_have_one_column_per_reader() -> None:
    rng = np.random.RandomState(0)
    items = _unit(rng.randn(7, 5))
    history = sp.csr_matrix(rng.randn(3, 7))
    weights = ridge_weights(items, history, 1.0)
    assert weights.shape == (5, 3) and weights.dtype == np.float32


def test_weights_solve_the_ridge_problem() -> None:
    """At the minimum of |X w - h|^2 + ridge |w|^2 the gradient X^T (X w - h) + ridge w is 0."""
    rng = np.random.RandomState(1)
    x = _unit(rng.randn(12, 4))
    h = rng.randn(3, 12) * (rng.rand(3, 12) < 0.4)  # sparse histories, some negatives
    for ridge in (0.1, 10.0):
        w = ridge_weights(x, sp.csr_matrix(h), ridge).astype(np.float64)
        gradient = x.T @ (x @ w - h.T) + ridge * w
        assert np.abs(gradient).max() < 1e-4


def test_a_reader_of_one_cluster_scores_its_unseen_items_above_the_other() -> None:
    rng = np.random.RandomState(2)
    past, past_labels = _clusters(rng, per=10)
    fresh, fresh_labels = _clusters(rng, per=5)
    # Reader 0 clicked half of cluster 0 and passed over (zero) the rest; reader 1 the same
    # for cluster 1; reader 2 disliked cluster 0.
    history = np.zeros((3, len(past)))
    history[0, np.flatnonzero(past_labels == 0)[:5]] = 1.0
    history[1, np.flatnonzero(past_labels == 1)[:5]] = 1.0
    history[2, np.flatnonzero(past_labels == 0)[:5]] = -1.0
    weights = ridge_weights(past, sp.csr_matrix(history), 1.0)
    got = scores(weights, [0, 1, 2], fresh)
    assert got[0, fresh_labels == 0].min() > got[0, fresh_labels == 1].max()
    assert got[1, fresh_labels == 1].min() > got[1, fresh_labels == 0].max()
    assert got[2, fresh_labels == 0].max() < 0
    assert got[2, fresh_labels == 0].max() < got[2, fresh_labels == 1].min()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    ridges=st.tuples(st.floats(0.01, 1e3), st.floats(0.01, 1e3)).filter(
        lambda r: abs(r[0] - r[1]) > 1e-3 * max(r)
    ),
)
def test_more_ridge_shrinks_every_readers_weights(seed: int, ridges: tuple[float, float]) -> None:
    rng = np.random.RandomState(seed)
    n, d = rng.randint(1, 15), rng.randint(1, 6)
    items = _unit(rng.randn(n, d))
    history = sp.csr_matrix(rng.randn(2, n) * (rng.rand(2, n) < 0.5))
    low, high = sorted(ridges)
    small = np.linalg.norm(ridge_weights(items, history, high), axis=0)
    large = np.linalg.norm(ridge_weights(items, history, low), axis=0)
    assert np.all(small <= large * (1 + 1e-5) + 1e-7)


def test_weights_vanish_as_ridge_grows() -> None:
    rng = np.random.RandomState(3)
    items = _unit(rng.randn(8, 4))
    history = sp.csr_matrix(rng.randn(2, 8))
    assert np.abs(ridge_weights(items, history, 1e9)).max() < 1e-7


def test_no_readers_or_no_past_items_give_zero_weights() -> None:
    items = _unit(np.random.RandomState(4).randn(5, 3))
    none = ridge_weights(items, sp.csr_matrix((0, 5)), 1.0)
    assert none.shape == (3, 0)
    empty = ridge_weights(np.zeros((0, 3)), sp.csr_matrix((2, 0)), 1.0)
    assert empty.shape == (3, 2) and not empty.any()
    silent = ridge_weights(items, sp.csr_matrix((2, 5)), 1.0)  # readers with no history
    assert silent.shape == (3, 2) and not silent.any()


def test_scores_follow_the_rows_and_zero_unknown_readers() -> None:
    rng = np.random.RandomState(5)
    weights = rng.randn(4, 3).astype(np.float32)
    items = _unit(rng.randn(6, 4)).astype(np.float32)
    got = scores(weights, [2, None, 0, 2], items)
    assert got.shape == (4, 6) and got.dtype == np.float32
    assert np.allclose(got[0], items @ weights[:, 2], atol=1e-6)
    assert not got[1].any()
    assert np.allclose(got[2], items @ weights[:, 0], atol=1e-6)
    assert np.array_equal(got[0], got[3])


def test_scores_without_anything_known_are_zeros_of_the_right_shape() -> None:
    items = np.ones((4, 3), dtype=np.float32)
    assert not scores(np.ones((3, 2), dtype=np.float32), [None, None], items).any()
    nobody = scores(np.zeros((3, 0), dtype=np.float32), [None], items)  # model with no readers
    assert nobody.shape == (1, 4) and not nobody.any()
    assert scores(np.ones((3, 2), dtype=np.float32), [0, 1], items[:0]).shape == (2, 0)
    assert scores(np.ones((3, 2), dtype=np.float32), [], items).shape == (0, 4)
