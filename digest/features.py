"""Turning items and readers into features: TF-IDF text vectors and LightFM matrices.

Item features are content only (weighted words and phrases, tags, source), so a
brand-new item is represented exactly like a trained one. Reader features are the
reader's id plus profile interests and teams, so a reader with no clicks still has
a representation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize as l2_normalize

from digest.records import StoredItem
from digest.text import normalize


@dataclass(frozen=True)
class ItemDoc:
    """What the model sees of an item."""

    id: str
    title: str
    abstract: str = ""
    tags: tuple[str, ...] = ()
    source: str = ""

    @property
    def text(self) -> str:
        # The title carries most of the signal; repeating it weights it over the abstract.
        return f"{self.title}. {self.title}. {self.abstract}"


def doc_of(item: StoredItem) -> ItemDoc:
    """What the model reads of a stored item."""
    return ItemDoc(item.id, item.title, item.abstract, item.tags, item.source)


@dataclass(frozen=True)
class ReaderInfo:
    """What the model sees of a reader beyond clicks."""

    handle: str
    interests: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()


@dataclass
class Vocabulary:
    """Feature names -> columns, fixed at training time and saved with the model."""

    item_extra: dict[str, int] = field(default_factory=dict)
    user: dict[str, int] = field(default_factory=dict)


def make_vectorizer(max_features: int = 50_000) -> TfidfVectorizer:
    """Words and two-word phrases, sublinear tf, English stop words removed."""
    return TfidfVectorizer(
        preprocessor=normalize,
        ngram_range=(1, 2),
        min_df=2,
        max_df=0.5,
        sublinear_tf=True,
        stop_words="english",
        max_features=max_features,
        dtype=np.float32,
    )


def top_terms(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k strongest terms of each row: bounds LightFM's cost per item."""
    matrix = matrix.tocsr()
    rows, cols, vals = [], [], []
    for i in range(matrix.shape[0]):
        start, end = matrix.indptr[i], matrix.indptr[i + 1]
        data = matrix.data[start:end]
        keep = np.argsort(-data)[:k] if end - start > k else np.arange(end - start)
        rows.extend([i] * len(keep))
        cols.extend(matrix.indices[start:end][keep])
        vals.extend(data[keep])
    return sp.csr_matrix((vals, (rows, cols)), shape=matrix.shape, dtype=np.float32)


def item_extra_names(doc: ItemDoc) -> list[str]:
    """Non-text item features: tags and source."""
    names = [f"tag:{normalize(t)}" for t in doc.tags if normalize(t)]
    if doc.source:
        names.append(f"source:{doc.source}")
    return names


def item_feature_matrix(
    text: sp.csr_matrix, docs: list[ItemDoc], vocab: Vocabulary, *, grow: bool, k: int
) -> sp.csr_matrix:
    """LightFM item features: top-k TF-IDF terms plus tags/source, rows summing to 1."""
    extra = _one_hot([item_extra_names(d) for d in docs], vocab.item_extra, grow)
    combined = sp.hstack([top_terms(text, k), extra], format="csr", dtype=np.float32)
    return _rows_sum_to_one(combined)


def user_feature_names(handle: str, info: ReaderInfo | None) -> list[str]:
    """A reader's own id plus their interests and teams."""
    names = [f"user:{handle}"]
    if info:
        # An interest that normalises to nothing ("!!!") would be one feature shared by
        # every such reader; repeats ("C++" and "C#" both read "c") count once.
        interests = dict.fromkeys(n for n in map(normalize, info.interests) if n)
        names += [f"interest:{n}" for n in interests]
        names += [f"team:{t}" for t in info.teams]
    return names


def user_feature_matrix(
    handles: list[str], infos: dict[str, ReaderInfo], vocab: Vocabulary, *, grow: bool
) -> sp.csr_matrix:
    """LightFM user features (unknown names are dropped when not growing)."""
    names = [user_feature_names(h, infos.get(h)) for h in handles]
    return _rows_sum_to_one(_one_hot(names, vocab.user, grow))


def _one_hot(rows: list[list[str]], index: dict[str, int], grow: bool) -> sp.csr_matrix:
    """One column per known name; with `grow`, unknown names get new columns.

    The width is the vocabulary's size, so it grows with the data: the model widens
    its LightFM arrays to match (`Recommender._fit_lightfm`).
    """
    r, c = [], []
    for i, names in enumerate(rows):
        for name in names:
            col = index.get(name)
            if col is None and grow:
                col = index[name] = len(index)
            if col is not None:
                r.append(i)
                c.append(col)
    data = np.ones(len(r), dtype=np.float32)
    return sp.csr_matrix((data, (r, c)), shape=(len(rows), len(index)), dtype=np.float32)


def _rows_sum_to_one(matrix: sp.csr_matrix) -> sp.csr_matrix:
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / sums) @ matrix, dtype=np.float32)


def centroids(
    rows: list[list[tuple[int, float]]] | sp.csr_matrix, vectors: sp.csr_matrix | np.ndarray
) -> sp.csr_matrix | np.ndarray:
    """Weighted mean of item vectors per reader, L2-normalised (zero rows stay zero).

    `rows` is each reader's (item row, weight) pairs, or those weights as a matrix.
    """
    if sp.issparse(rows):
        weights = sp.csr_matrix(rows, dtype=np.float32)
    else:
        r = [i for i, pairs in enumerate(rows) for _ in pairs]
        c = [col for pairs in rows for col, _ in pairs]
        w = [weight for pairs in rows for _, weight in pairs]
        shape = (len(rows), vectors.shape[0])
        weights = sp.csr_matrix((w, (r, c)), shape=shape, dtype=np.float32)
    out = weights @ vectors
    if sp.issparse(out):
        return l2_normalize(sp.csr_matrix(out))
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (out / norms).astype(np.float32)


def char_vectorizer() -> TfidfVectorizer:
    """Character 3-5-grams of titles (within words), unfitted.

    Word features miss what titles say in pieces: plurals and inflections
    ("recommender", "recommendation"), compounds, acronyms glued to numbers.
    """
    return TfidfVectorizer(
        preprocessor=normalize,
        analyzer="char_wb",
        ngram_range=(3, 5),
        min_df=2,
        sublinear_tf=True,
        max_features=50_000,
        dtype=np.float32,
    )


def fit_char_vectorizer(titles: list[str]) -> tuple[TfidfVectorizer | None, sp.csr_matrix]:
    """A character n-gram vectorizer fitted on titles, and the titles' rows (`char_matrix`).

    One pass: fitting and then transforming cut every title into n-grams twice, a
    tenth of a full train. The vectorizer is None when the titles share no n-gram.
    """
    vectorizer = char_vectorizer()
    try:
        rows = vectorizer.fit_transform(titles)
    except ValueError:  # too few titles to share an n-gram: the scorer stays silent
        return None, char_matrix(None, titles)
    return vectorizer, sp.csr_matrix(rows, dtype=np.float32)


def char_matrix(vectorizer: TfidfVectorizer | None, titles: list[str]) -> sp.csr_matrix:
    """Rows of character n-gram weights (zero columns without a vectorizer)."""
    if vectorizer is None:
        return sp.csr_matrix((len(titles), 0), dtype=np.float32)
    if not titles:
        return sp.csr_matrix((0, len(vectorizer.vocabulary_)), dtype=np.float32)
    return sp.csr_matrix(vectorizer.transform(titles), dtype=np.float32)
