"""Nearest-neighbour scoring: new items reach readers through the past items they resemble.

A brand-new item has no clicks, but it resembles past items that do. The neighbour
scorer gives reader u and new item j

    score(u, j) = sum over j's k nearest past items i of  sim(i, j) * H'[u, i]

where H' is the reader's history expanded through the whole team's co-clicks: items
that readers of u's items also clicked count a little too (`EXPANSION`). Text
neighbours (TF-IDF) and, with the `embed` extra, semantic neighbours are two
scorers of this form. On citeulike-a this beats the reader-centroid scorers by a wide
margin (see docs/evaluation.md), because a reader with several interests is not
averaged into one point.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize as l2_normalize

#: Nearest past items kept per new item.
K_ITEMS = 50
#: Co-clicked items kept per past item.
K_COCLICK = 50
#: Weight of co-clicked items relative to the reader's own history.
EXPANSION = 0.3
#: Query rows per dense similarity block: bounds memory at CHUNK x past items floats.
CHUNK = 512


def nearest(
    query: sp.csr_matrix | np.ndarray,
    base: sp.csr_matrix | np.ndarray,
    k: int = K_ITEMS,
    *,
    exclude: np.ndarray | None = None,
) -> sp.csr_matrix:
    """The k most similar base rows of every query row (dot products of unit vectors).

    `exclude[i]` names a base row that query row i may not pick (the item itself,
    when a query item is also a past item), or -1.
    """
    n_query, n_base = query.shape[0], base.shape[0]
    k = min(k, n_base)
    if k == 0 or n_query == 0:
        return sp.csr_matrix((n_query, n_base), dtype=np.float32)
    rows, cols, vals = [], [], []
    for start in range(0, n_query, CHUNK):
        sims = _dense(query[start : start + CHUNK] @ base.T)
        if exclude is not None:
            own = exclude[start : start + CHUNK]
            hit = np.flatnonzero(own >= 0)
            sims[hit, own[hit]] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        picked = np.take_along_axis(sims, top, axis=1)
        # Most similar first within each row, so a shorter list is a prefix (`keep_top`).
        order = np.argsort(-picked, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        picked = np.take_along_axis(picked, order, axis=1)
        keep = np.isfinite(picked) & (picked > 0)
        local = np.broadcast_to(np.arange(len(sims))[:, None], top.shape)
        rows.append(local[keep] + start)
        cols.append(top[keep])
        vals.append(picked[keep])
    return _rows_in_order(
        np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), (n_query, n_base)
    )


def keep_top(neighbours: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The first k neighbours of each row of a `nearest` result (most similar first)."""
    counts = np.diff(neighbours.indptr)
    if len(counts) == 0 or counts.max() <= k:
        return neighbours
    position = np.arange(neighbours.nnz) - np.repeat(neighbours.indptr[:-1], counts)
    mask = position < k
    indptr = np.concatenate([[0], np.cumsum(np.minimum(counts, k))])
    return sp.csr_matrix(
        (neighbours.data[mask], neighbours.indices[mask], indptr), shape=neighbours.shape
    )


def _rows_in_order(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """A CSR matrix keeping each row's entries in the given order (rows ascending).

    `scipy.sparse.csr_matrix((data, (rows, cols)))` would sort each row by column and
    lose the most-similar-first order that `keep_top` relies on.
    """
    counts = np.bincount(rows, minlength=shape[0]) if len(rows) else np.zeros(shape[0], int)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    order = np.argsort(rows, kind="stable")
    return sp.csr_matrix(
        (vals[order].astype(np.float32), cols[order], indptr), shape=shape, dtype=np.float32
    )


def co_clicks(history: sp.csr_matrix, k: int = K_COCLICK) -> sp.csr_matrix:
    """Item-item cosine over who engaged with them (positives only), k per item, no self."""
    n_items = history.shape[1]
    if history.shape[0] == 0 or history.nnz == 0:
        # Nobody has clicked anything yet: no item is co-clicked with another.
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    positive = history.multiply(history > 0).tocsc().astype(np.float32)
    positive.data[:] = 1.0
    by_item = l2_normalize(positive.T.tocsr())
    cosine = (by_item @ by_item.T).tocsr()
    cosine.setdiag(0)
    cosine.eliminate_zeros()
    return top_per_row(cosine, k)


def expand(history: sp.csr_matrix, co: sp.csr_matrix, strength: float = EXPANSION) -> sp.csr_matrix:
    """History plus `strength` x the co-clicked items of its positive entries."""
    positive = history.multiply(history > 0).tocsr()
    return sp.csr_matrix(history + strength * (positive @ co), dtype=np.float32)


def score(expanded: sp.csr_matrix, neighbours: sp.csr_matrix) -> np.ndarray:
    """Readers x new items: each new item collects its neighbours' history weights."""
    return _dense(expanded @ neighbours.T).astype(np.float32)


def top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The k largest entries of every row (all of a row with fewer)."""
    matrix = matrix.tocsr()
    counts = np.diff(matrix.indptr)
    rows, cols, vals = [], [], []
    for i in np.flatnonzero(counts):
        start, end = matrix.indptr[i], matrix.indptr[i + 1]
        data = matrix.data[start:end]
        keep = np.argpartition(-data, k - 1)[:k] if end - start > k else slice(None)
        picked = matrix.indices[start:end][keep]
        rows.append(np.full(len(picked), i))
        cols.append(picked)
        vals.append(data[keep])
    if not rows:
        return sp.csr_matrix(matrix.shape, dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=matrix.shape,
        dtype=np.float32,
    )


def _dense(matrix: sp.spmatrix | np.ndarray) -> np.ndarray:
    out = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    return out.astype(np.float32, copy=False)
