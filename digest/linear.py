"""Per-reader linear scorers: one ridge regression per reader, solved for all at once.

The neighbour scorers average what a reader clicked; a linear scorer also learns what
a reader passed over, as the per-reader SVM of arxiv-sanity does. Here every past item
a reader did not engage with is an implicit zero and every dislike or ignored send an
explicit negative, and the regression runs over a small dense item space (LightFM's
learned item representations, or sentence embeddings), so the whole team costs one
d x d solve instead of one classifier fit per reader:

    W = (X^T X + ridge * I)^-1 X^T H^T        (d x readers)
    score(reader u, item j) = x_j . W[:, u]

where X holds the past items (one unit-length row each) and H the readers' weighted
histories (readers x past items).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def ridge_weights(items: np.ndarray, history: sp.csr_matrix, ridge: float) -> np.ndarray:
    """Every reader's weight vector (columns), from past item rows and their histories."""
    x = np.asarray(items, dtype=np.float64)
    gram = x.T @ x
    gram[np.diag_indices_from(gram)] += ridge
    targets = np.asarray(sp.csr_matrix(history, dtype=np.float64) @ x).T  # d x readers
    if targets.size == 0:
        return np.zeros((x.shape[1], history.shape[0]), dtype=np.float32)
    return np.linalg.solve(gram, targets).astype(np.float32)


def scores(weights: np.ndarray, rows: list[int | None], items: np.ndarray) -> np.ndarray:
    """Readers x items; a reader the model does not know (row None) scores zero."""
    out = np.zeros((len(rows), items.shape[0]), dtype=np.float32)
    known = [n for n, row in enumerate(rows) if row is not None]
    if known and weights.size:
        picked = weights[:, [rows[n] for n in known]]
        out[known] = (np.asarray(items, dtype=np.float32) @ picked).T
    return out
