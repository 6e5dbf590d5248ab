"""The recommender: a LightFM hybrid blended with text similarity (and embeddings).

Shaped like scikit-learn/LightFM: hyperparameters in the constructor, `fit`,
`fit_partial`, `score`, and a `random_state`. Each scorer's output is z-scored with
statistics fixed at training time, so blended scores mean the same on every day and
a thin day can yield fewer items above a minimum score.

Scorers (each a column of evidence for a (reader, item) pair):
- lightfm:  collaborative + content (item features are text, tags, source only, so a
            new item is scored from its features; readers carry interests and teams).
- neighbours: the item's nearest past items (TF-IDF) weighted by the reader's history,
            expanded through the team's co-clicks (see `digest.neighbours`).
- tfidf:    cosine between the item and the reader's weighted history (+ interests).
- embed_neighbours, embed: the same two with MiniLM sentence embeddings, when the
            `embed` extra is installed.
- interest: the reader's profile interests matched against the item text.

The default weights come from `make eval` on citeulike-a (docs/evaluation.md).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from digest import __version__, embed
from digest import neighbours as nn
from digest.errors import ModelError
from digest.features import (
    ItemDoc,
    ReaderInfo,
    Vocabulary,
    centroids,
    item_feature_matrix,
    make_vectorizer,
    user_feature_matrix,
)
from digest.text import normalize

MODEL_FORMAT = 1
DEFAULT_WEIGHTS = {
    "lightfm": 0.3,
    "neighbours": 1.0,
    "tfidf": 0.0,
    "embed_neighbours": 3.0,
    "embed": 0.5,
    "interest": 1.0,
}
SCORERS = tuple(DEFAULT_WEIGHTS)
#: An interest phrase counts as one history item of this weight.
INTEREST_WEIGHT = 1.0


@dataclass(frozen=True)
class Interaction:
    """One reader-item signal; weight > 0 is interest, < 0 is disinterest."""

    reader: str
    item_id: str
    weight: float = 1.0


@dataclass
class Components:
    """Raw and blended scores for readers x items."""

    raw: dict[str, np.ndarray]
    blended: np.ndarray


class Recommender:
    """A LightFM hybrid plus text-similarity scorers, blended on a fixed scale."""

    def __init__(
        self,
        *,
        components: int = 48,
        epochs: int = 10,
        learning_rate: float = 0.05,
        loss: str = "warp",
        item_alpha: float = 1e-6,
        user_alpha: float = 1e-6,
        max_terms: int = 20,
        max_features: int = 50_000,
        weights: dict[str, float] | None = None,
        embeddings: str = "auto",
        random_state: int = 0,
        num_threads: int = 1,
    ):
        # num_threads > 1 trains faster but LightFM's lock-free updates then make
        # results differ from run to run; one thread keeps "same seed, same model".
        if embeddings not in ("auto", "on", "off"):
            raise ValueError("embeddings must be 'auto', 'on' or 'off'")
        self.components = components
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.loss = loss
        self.item_alpha = item_alpha
        self.user_alpha = user_alpha
        self.max_terms = max_terms
        self.max_features = max_features
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        self.embeddings = embeddings
        self.random_state = random_state
        self.num_threads = num_threads
        self._fitted = False

    # -- training -----------------------------------------------------------------------

    def fit(
        self,
        items: list[ItemDoc],
        interactions: list[Interaction],
        readers: dict[str, ReaderInfo] | None = None,
        *,
        item_vectors: dict[str, np.ndarray] | None = None,
    ) -> Recommender:
        """Learn from scratch. `item_vectors` may pass precomputed embeddings by item id."""
        if not items:
            raise ModelError("no items to train on: ingest some first")
        self.use_embed = self.embeddings == "on" or (
            self.embeddings == "auto" and embed.available()
        )
        if self.embeddings == "on" and not embed.available():
            raise ModelError("embeddings requested but the 'embed' extra is not installed")
        self.readers_info = dict(readers or {})
        self.vectorizer = make_vectorizer(self.max_features)
        # Fitting and transforming in one pass tokenises the corpus once, not twice.
        tfidf = self.vectorizer.fit_transform([d.text for d in items])
        self.vocab = Vocabulary()
        self.item_ids = [d.id for d in items]
        self.item_index = {item_id: i for i, item_id in enumerate(self.item_ids)}
        self.titles = {d.id: d.title for d in items}
        self.lightfm = LightFM(
            no_components=self.components,
            loss=self.loss,
            learning_rate=self.learning_rate,
            item_alpha=self.item_alpha,
            user_alpha=self.user_alpha,
            random_state=np.random.RandomState(self.random_state),
        )
        self.reader_ids: list[str] = []
        self.reader_index: dict[str, int] = {}
        self._update(
            items, interactions, epochs=self.epochs, item_vectors=item_vectors, tfidf=tfidf
        )
        self._calibrate()
        self._fitted = True
        return self

    def fit_partial(
        self,
        items: list[ItemDoc],
        interactions: list[Interaction],
        readers: dict[str, ReaderInfo] | None = None,
        *,
        epochs: int = 3,
    ) -> Recommender:
        """The daily update: a few more epochs with new items, readers and events.

        The text vocabulary and the score scale stay fixed (retrain with `fit` to
        refresh them), so scores stay comparable with earlier days.
        """
        self._check_fitted()
        self.readers_info.update(readers or {})
        known = set(self.item_index)
        new = [d for d in items if d.id not in known]
        for doc in new:
            self.item_index[doc.id] = len(self.item_ids)
            self.item_ids.append(doc.id)
            self.titles[doc.id] = doc.title
        all_items = self._all_docs(items)
        self._update(all_items, interactions, epochs=epochs, item_vectors=None, partial=True)
        return self

    def _all_docs(self, items: list[ItemDoc]) -> list[ItemDoc]:
        given = {d.id: d for d in items}
        missing = [i for i in self.item_ids if i not in given]
        if missing:
            raise ModelError(f"fit_partial needs every trained item's text; {len(missing)} missing")
        return [given[i] for i in self.item_ids]

    def _update(
        self,
        items: list[ItemDoc],
        interactions: list[Interaction],
        *,
        epochs: int,
        item_vectors: dict[str, np.ndarray] | None,
        partial: bool = False,
        tfidf: sp.csr_matrix | None = None,
    ) -> None:
        docs = {d.id: d for d in items}
        for reader in sorted({i.reader for i in interactions} | set(self.readers_info)):
            if reader not in self.reader_index:
                self.reader_index[reader] = len(self.reader_ids)
                self.reader_ids.append(reader)
        if tfidf is None:
            tfidf = self.vectorizer.transform([docs[i].text for i in self.item_ids])
        item_features = item_feature_matrix(
            tfidf,
            [docs[i] for i in self.item_ids],
            self.vocab,
            grow=not partial,
            k=self.max_terms,
        )
        user_features = user_feature_matrix(
            self.reader_ids, self.readers_info, self.vocab, grow=True
        )
        matrix = self._interaction_matrix(interactions)
        self.lightfm.fit_partial(
            matrix,
            user_features=user_features,
            item_features=item_features,
            sample_weight=matrix,
            epochs=epochs,
            num_threads=self.num_threads,
        )
        self._item_features = item_features
        self._history(interactions, tfidf, docs, item_vectors)

    def _interaction_matrix(self, interactions: list[Interaction]) -> sp.coo_matrix:
        # WARP learns from positives only; negatives shape the text centroids instead.
        weights: dict[tuple[int, int], float] = {}
        for event in interactions:
            col = self.item_index.get(event.item_id)
            if col is not None and event.weight > 0:
                key = (self.reader_index[event.reader], col)
                weights[key] = max(weights.get(key, 0.0), event.weight)
        rows = [k[0] for k in weights]
        cols = [k[1] for k in weights]
        shape = (len(self.reader_ids), len(self.item_ids))
        return sp.coo_matrix(
            (np.array(list(weights.values()), dtype=np.float32), (rows, cols)), shape=shape
        )

    def _history(
        self,
        interactions: list[Interaction],
        tfidf: sp.csr_matrix,
        docs: dict[str, ItemDoc],
        item_vectors: dict[str, np.ndarray] | None,
    ) -> None:
        """Per-reader weighted history, the source of the text scorers and explanations."""
        per_reader: list[dict[int, float]] = [{} for _ in self.reader_ids]
        for event in interactions:
            col = self.item_index.get(event.item_id)
            if col is not None:
                row = per_reader[self.reader_index[event.reader]]
                row[col] = row.get(col, 0.0) + event.weight
        self.history = [{c: w for c, w in row.items() if w != 0} for row in per_reader]
        self.history_matrix = _history_matrix(self.history, len(self.item_ids))
        self.co_clicks = nn.co_clicks(self.history_matrix)
        interests = [self.readers_info.get(r, ReaderInfo(r)).interests for r in self.reader_ids]
        interest_text = [" ; ".join(phrases) for phrases in interests]
        self.interest_tfidf = self.vectorizer.transform(interest_text)
        self.item_tfidf = tfidf
        pairs = [list(row.items()) for row in self.history]
        history_centroid = centroids(pairs, tfidf)
        self.tfidf_centroid = _normalize_rows(
            history_centroid + INTEREST_WEIGHT * self.interest_tfidf
        )
        self.interest_phrases = [tuple(normalize(p) for p in ps) for ps in interests]
        if self.use_embed:
            self.item_embed = self._embed_items([docs[i] for i in self.item_ids], item_vectors)
            interest_vecs = np.zeros((len(self.reader_ids), embed.DIMENSIONS), dtype=np.float32)
            with_interests = [i for i, text in enumerate(interest_text) if text]
            if with_interests:
                encoded = embed.encode([interest_text[i] for i in with_interests])
                interest_vecs[with_interests] = encoded
            self.embed_centroid = _normalize_dense(
                centroids(pairs, self.item_embed) + INTEREST_WEIGHT * interest_vecs
            )

    def _embed_items(self, docs: list[ItemDoc], cache: dict[str, np.ndarray] | None) -> np.ndarray:
        cache = dict(cache or {})
        old = getattr(self, "_embed_cache", {})
        missing = [d for d in docs if d.id not in cache and d.id not in old]
        if missing:
            for doc, vec in zip(
                missing, embed.encode([embed_text(d) for d in missing]), strict=True
            ):
                cache[doc.id] = vec
        self._embed_cache = {**old, **cache}
        return np.vstack([self._embed_cache[d.id] for d in docs]).astype(np.float32)

    def _calibrate(self) -> None:
        """Fix each scorer's mean and spread on a sample, for comparable scores."""
        rng = np.random.RandomState(self.random_state)
        readers = rng.choice(len(self.reader_ids), min(300, len(self.reader_ids)), replace=False)
        cols = rng.choice(len(self.item_ids), min(1000, len(self.item_ids)), replace=False)
        self.scale = {name: (0.0, 1.0) for name in SCORERS}
        side = self._item_side(
            [self.item_ids[c] for c in cols],
            self.item_tfidf[cols],
            self.item_embed[cols] if self.use_embed else None,
            self._item_features[cols],
            texts=None,
        )
        raw = self._raw_scores([self.reader_ids[r] for r in readers], side)
        for name, values in raw.items():
            std = float(values.std())
            self.scale[name] = (float(values.mean()), std if std > 1e-9 else 1.0)

    # -- scoring ------------------------------------------------------------------------

    def prepare(self, items: list[ItemDoc]) -> dict:
        """Item-side work for `score`, done once when many reader blocks share the items."""
        self._check_fitted()
        tfidf = self.vectorizer.transform([d.text for d in items])
        features = item_feature_matrix(tfidf, items, self.vocab, grow=False, k=self.max_terms)
        vectors = self._embed_items(items, None) if self.use_embed else None
        texts = [normalize(f"{d.title} {d.abstract}") for d in items]
        return self._item_side([d.id for d in items], tfidf, vectors, features, texts)

    def _item_side(
        self,
        ids: list[str],
        tfidf: sp.csr_matrix,
        vectors: np.ndarray | None,
        features: sp.csr_matrix,
        texts: list[str] | None,
    ) -> dict:
        # An item that is also a past item must not count itself as its own neighbour:
        # the same item scores the same whether or not it was in the training set.
        own = np.array([self.item_index.get(i, -1) for i in ids], dtype=np.int64)
        side = {
            "ids": ids,
            "tfidf": tfidf,
            "vectors": vectors,
            "lightfm": self.lightfm.get_item_representations(features),
            "texts": texts,
            "neighbours": nn.nearest(tfidf, self.item_tfidf, exclude=own),
        }
        if vectors is not None:
            side["embed_neighbours"] = nn.nearest(vectors, self.item_embed, exclude=own)
        return side

    def score(
        self, readers: list[str], items: list[ItemDoc], *, prepared: dict | None = None
    ) -> Components:
        """Blended scores (readers x items) plus each scorer's raw scores."""
        raw = self._raw_scores(readers, prepared or self.prepare(items))
        return Components(raw, self.blend(raw))

    def blend(self, raw: dict[str, np.ndarray], weights: dict[str, float] | None = None):
        """Weighted sum of standardised scorers (the model's own weights by default)."""
        weights = self.weights if weights is None else weights
        shape = next(iter(raw.values())).shape
        blended = np.zeros(shape, dtype=np.float32)
        for name, values in raw.items():
            weight = weights.get(name, 0.0)
            if weight:
                mean, std = self.scale[name]
                blended += weight * (values - mean) / std
        return blended

    def _raw_scores(self, readers: list[str], side: dict) -> dict[str, np.ndarray]:
        rows = [self._reader_row(r) for r in readers]
        user_bias, user_vecs = self._user_vectors(readers)
        item_bias, item_vecs = side["lightfm"]
        out = {"lightfm": user_vecs @ item_vecs.T + item_bias[None, :] + user_bias[:, None]}
        expanded = nn.expand(self._rows_or_zero(self.history_matrix, rows), self.co_clicks)
        out["neighbours"] = nn.score(expanded, side["neighbours"])
        centroid = self._rows_or_zero(self.tfidf_centroid, rows)
        out["tfidf"] = np.asarray((centroid @ side["tfidf"].T).todense(), dtype=np.float32)
        interest = self._rows_or_zero(self.interest_tfidf, rows)
        out["interest"] = np.asarray((interest @ side["tfidf"].T).todense(), dtype=np.float32)
        if side["texts"] is not None:
            out["interest"] += self._phrase_hits(rows, side["texts"])
        vectors = side["vectors"]
        if self.use_embed and vectors is not None:
            dense = np.zeros((len(rows), vectors.shape[1]), dtype=np.float32)
            idx = [i for i, r in enumerate(rows) if r is not None]
            dense[idx] = self.embed_centroid[[rows[i] for i in idx]]
            out["embed"] = dense @ vectors.T
            out["embed_neighbours"] = nn.score(expanded, side["embed_neighbours"])
        return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}

    def _phrase_hits(self, rows: list[int | None], texts: list[str]) -> np.ndarray:
        hits = np.zeros((len(rows), len(texts)), dtype=np.float32)
        padded = [f" {t} " for t in texts]
        for i, row in enumerate(rows):
            phrases = self.interest_phrases[row] if row is not None else ()
            for phrase in phrases:
                if phrase:
                    hits[i] += np.fromiter((f" {phrase} " in t for t in padded), np.float32)
        return hits

    def _user_vectors(self, readers: list[str]) -> tuple[np.ndarray, np.ndarray]:
        features = user_feature_matrix(readers, self.readers_info, self.vocab, grow=False)
        return self.lightfm.get_user_representations(features)

    @staticmethod
    def _rows_or_zero(matrix: sp.csr_matrix, rows: list[int | None]) -> sp.csr_matrix:
        """The readers' rows of `matrix`; readers the model does not know get zeros."""
        picked = matrix[[r if r is not None else 0 for r in rows]]
        mask = sp.diags(np.array([r is not None for r in rows], dtype=np.float32))
        return sp.csr_matrix(mask @ picked)

    def _reader_row(self, reader: str) -> int | None:
        return self.reader_index.get(reader)

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise ModelError("the model is not trained: call fit first (digest train)")

    # -- what the model knows of a reader (for explanations and ranking) -----------------

    def reader_history(self, reader: str) -> dict[str, float]:
        """Item id -> signal weight for a reader's past interactions."""
        row = self._reader_row(reader)
        if row is None:
            return {}
        return {self.item_ids[c]: w for c, w in self.history[row].items()}

    def terms(self) -> np.ndarray:
        """The text vocabulary, by column."""
        return self.vectorizer.get_feature_names_out()

    # -- persistence --------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model atomically (a crash never leaves half a model file)."""
        self._check_fitted()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": MODEL_FORMAT, "digest": __version__, "model": self}
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".model-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                pickle.dump(payload, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recommender:
        """Read a saved model, refusing files of another format version."""
        try:
            with open(path, "rb") as handle:
                payload = pickle.load(handle)
        except FileNotFoundError:
            raise ModelError(f"{path}: no model file; run 'digest train' first") from None
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            raise ModelError(f"{path}: not a digest model ({exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
            raise ModelError(f"{path}: model format differs; retrain with 'digest train'")
        return payload["model"]


def embed_text(doc: ItemDoc) -> str:
    """What the sentence model reads: title and the start of the abstract."""
    return f"{doc.title}. {doc.abstract}"[:1000]


def _history_matrix(history: list[dict[int, float]], n_items: int) -> sp.csr_matrix:
    rows = [r for r, entries in enumerate(history) for _ in entries]
    cols = [c for entries in history for c in entries]
    vals = [w for entries in history for w in entries.values()]
    return sp.csr_matrix(
        (np.array(vals, dtype=np.float32), (rows, cols)), shape=(len(history), n_items)
    )


def _normalize_rows(matrix: sp.spmatrix) -> sp.csr_matrix:
    from sklearn.preprocessing import normalize as l2

    return l2(sp.csr_matrix(matrix, dtype=np.float32))


def _normalize_dense(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32)
