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
- lightfm_neighbours: the same neighbour scorer in LightFM's learned item space,
            where two papers are close when the same readers' features pull them together.
- char_neighbours: the same over character n-grams of titles (morphology, acronyms).
- lightfm_linear: a per-reader ridge regression over LightFM's item space (a reader's
            discriminative boundary, negatives included; see `digest.linear`).
- embed_neighbours, embed, embed_linear: neighbour, centroid and linear scorers over
            MiniLM sentence embeddings, when the `embed` extra is installed.
- interest: the reader's profile interests matched against the item text.

`digest train` learns the blend weights and the neighbour settings from the team's own
recent clicks when there are enough (see `digest.tuning`); the defaults below serve a
team too small to validate on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from digest import __version__, embed, linear, modelfile
from digest import neighbours as nn
from digest.errors import ModelError
from digest.features import (
    ItemDoc,
    ReaderInfo,
    Vocabulary,
    centroids,
    char_matrix,
    char_vectorizer,
    fit_char_vectorizer,
    item_feature_matrix,
    make_vectorizer,
    user_feature_matrix,
)
from digest.records import Explanation
from digest.text import normalize

#: The blend for a team too small to learn its own (see `digest.tuning`): every scorer
#: counts the same, on purpose. Chosen on no data set, they favour none; a team with
#: enough clicks replaces them. The TF-IDF centroid is kept for explanations only.
DEFAULT_WEIGHTS = {
    "lightfm": 1.0,
    "neighbours": 1.0,
    "lightfm_neighbours": 1.0,
    "char_neighbours": 1.0,
    "lightfm_linear": 1.0,
    "tfidf": 0.0,
    "embed_neighbours": 1.0,
    "embed": 1.0,
    "embed_linear": 1.0,
    "interest": 1.0,
}
SCORERS = tuple(DEFAULT_WEIGHTS)
#: Item id -> sentence vector, or a function that returns them when first needed.
VectorSource = dict[str, np.ndarray] | Callable[[], dict[str, np.ndarray]] | None
NEIGHBOUR_SCORERS = ("neighbours", "lightfm_neighbours", "char_neighbours", "embed_neighbours")
#: An interest phrase counts as one history item of this weight.
INTEREST_WEIGHT = 1.0
#: A past item less similar than this (TF-IDF cosine) is not offered as the reason.
_MIN_EXPLAIN_SIMILARITY = 0.15
#: Readers whose centroid rows are spread into a dense buffer at once, for explanations.
_TERM_BLOCK = 128


class Interaction(NamedTuple):
    """One reader-item signal; weight > 0 is interest, < 0 is disinterest.

    A named tuple rather than a dataclass: a team's history is half a million of
    these, made on every train and daily run, and a tuple is several times cheaper
    to create.
    """

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
        neighbours_k: int = nn.K_ITEMS,
        expansion: float = nn.EXPANSION,
        ridge: float = 10.0,
        ridge_embed: float = 100.0,
        embed_recipe: str = embed.DEFAULT_RECIPE,
    ):
        # num_threads > 1 trains faster but LightFM's lock-free updates then make
        # results differ from run to run; one thread keeps "same seed, same model".
        if embeddings not in ("auto", "on", "off"):
            raise ValueError("embeddings must be 'auto', 'on' or 'off'")
        if embed_recipe not in embed.RECIPES:
            raise ValueError(f"embed_recipe must be one of {', '.join(embed.RECIPES)}")
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
        self.neighbours_k = neighbours_k
        self.expansion = expansion
        self.ridge = ridge
        self.ridge_embed = ridge_embed
        self.embed_recipe = embed_recipe
        #: How the blend weights and neighbour settings were chosen (see `digest.tuning`).
        self.tuning: dict | None = None
        #: The inputs of the last full train (`training.inputs_digest`), saved with the model.
        self.trained_on: str | None = None
        #: Set by `training.train` when it kept this saved model instead of refitting.
        self.kept = False
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
        if not self.readers_info and not interactions:
            raise ModelError(
                "no readers to learn for: add reader profiles or import feedback first"
            )
        self.item_embed = None  # a refit must not reuse rows aligned with old item ids
        self.interest_embed = {}
        self.vectorizer = make_vectorizer(self.max_features)
        # Rows in `item_ids` order (the items' own): `_char_rows` then has none to add.
        self.char_vectorizer, self.item_char = fit_char_vectorizer([d.title for d in items])
        self._terms = self._term_list = None
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
        self.calibrated_on = _positives(interactions)
        self._fitted = True
        return self

    def fit_partial(
        self,
        items: list[ItemDoc],
        interactions: list[Interaction],
        readers: dict[str, ReaderInfo] | None = None,
        *,
        epochs: int = 3,
        item_vectors: VectorSource = None,
    ) -> Recommender:
        """The daily update: a few more epochs with new items, readers and events.

        `item_vectors` may be a function returning them: it is called once LightFM's
        epochs and every scorer that needs no vectors are done, so vectors can be
        encoded meanwhile.

        LightFM's epochs go over the clicks that are new since the model last trained
        (with as many old ones replayed; see `_to_learn`), not the whole history again.
        The text vocabulary and the score scale stay fixed (retrain with `fit` to
        refresh them), so scores stay comparable with earlier days. One exception: a
        scale measured before any click existed describes untrained scorers (LightFM's
        scores start near zero and grow by orders of magnitude once it learns), so it
        is measured again the first time there are clicks.
        """
        self._check_fitted()
        self.trained_on = None  # no longer what a full train on some inputs gives
        self.readers_info.update(readers or {})
        known = set(self.item_index)
        new = [d for d in items if d.id not in known]
        for doc in new:
            self.item_index[doc.id] = len(self.item_ids)
            self.item_ids.append(doc.id)
            self.titles[doc.id] = doc.title
        all_items = self._all_docs(items)
        self._update(
            all_items, interactions, epochs=epochs, item_vectors=item_vectors, partial=True,
            tfidf=self._tfidf_with(new), learned=self.history_matrix,
        )  # fmt: skip
        if self.calibrated_on == 0 and _positives(interactions):
            self._calibrate()
            self.calibrated_on = _positives(interactions)
        return self

    def _tfidf_with(self, new: list[ItemDoc]) -> sp.csr_matrix | None:
        """Every item's TF-IDF row: the stored rows, plus the new items' transformed.

        The vocabulary is fixed between full trains, so a known item's row cannot
        change; re-transforming twenty thousand past items took most of a daily update.
        None (transform everything) when the stored rows do not line up with the items.
        """
        stored = getattr(self, "item_tfidf", None)
        if stored is None or stored.shape[0] + len(new) != len(self.item_ids):
            return None
        if not new:
            return sp.csr_matrix(stored)
        fresh = self.vectorizer.transform([d.text for d in new])
        return sp.csr_matrix(sp.vstack([stored, fresh], format="csr", dtype=stored.dtype))

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
        item_vectors: VectorSource,
        partial: bool = False,
        tfidf: sp.csr_matrix | None = None,
        learned: sp.csr_matrix | None = None,
    ) -> None:
        docs = {d.id: d for d in items}
        self.__dict__.pop("_calibration_side", None)  # found with the model before this
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
        coordinates = self._coordinates(interactions)
        summed = self._summed(coordinates)
        matrix = self._interaction_matrix(coordinates)
        if learned is not None:
            matrix = _to_learn(matrix, summed, learned, self.random_state)
        self._fit_lightfm(matrix, item_features, user_features, epochs)
        self._item_features = item_features
        self.item_lf = _unit_rows(self.lightfm.get_item_representations(item_features)[1])
        self.item_char = self._char_rows([docs[i] for i in self.item_ids])
        self._history(summed, tfidf, docs, item_vectors)

    def _fit_lightfm(
        self,
        matrix: sp.coo_matrix,
        item_features: sp.csr_matrix,
        user_features: sp.csr_matrix,
        epochs: int,
    ) -> None:
        """Train LightFM, first widening its arrays for feature columns added since.

        Feature vocabularies grow with the data (new readers, teams, interests), so
        the model file stays proportional to the data instead of reserving fixed
        capacity; new rows start as LightFM starts its own.
        """
        if self.lightfm.item_embeddings is not None:
            _grow_lightfm(self.lightfm, "item", item_features.shape[1])
            _grow_lightfm(self.lightfm, "user", user_features.shape[1])
            if matrix.nnz == 0:
                return  # nothing new to learn; the arrays now fit the features
        self.lightfm.fit_partial(
            matrix,
            user_features=user_features,
            item_features=item_features,
            sample_weight=matrix,
            epochs=epochs,
            num_threads=self.num_threads,
        )

    def _coordinates(
        self, interactions: list[Interaction]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(reader rows, item columns, weights) of the interactions on known items.

        Half a million interactions are read once here, into arrays, instead of
        once per structure built from them in a Python loop.
        """
        if not interactions:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=np.float64)
        readers, items, weights = zip(*interactions, strict=True)
        n = len(interactions)
        rows = np.fromiter(map(self.reader_index.__getitem__, readers), np.int64, n)
        cols = np.fromiter(map(self.item_index.get, items, repeat(-1)), np.int64, n)
        known = cols >= 0
        return rows[known], cols[known], np.asarray(weights, dtype=np.float64)[known]

    def _interaction_matrix(
        self, coordinates: tuple[np.ndarray, np.ndarray, np.ndarray]
    ) -> sp.coo_matrix:
        """Positive signals only, the largest where a pair repeats.

        WARP learns from positives only; negatives shape the text centroids instead.
        """
        rows, cols, weights = coordinates
        positive = weights > 0
        keys = rows[positive] * len(self.item_ids) + cols[positive]
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], weights[positive][order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else keys
        values = np.maximum.reduceat(values, starts) if len(keys) else values
        keys = keys[starts]
        shape = (len(self.reader_ids), len(self.item_ids))
        return sp.coo_matrix(
            (values.astype(np.float32), (keys // len(self.item_ids), keys % len(self.item_ids))),
            shape=shape,
        )

    def _summed(self, coordinates: tuple[np.ndarray, np.ndarray, np.ndarray]) -> sp.csr_matrix:
        """Reader x item history: a pair's weights add up; weights that cancel out vanish."""
        rows, cols, weights = coordinates
        summed = sp.csr_matrix(
            (weights, (rows, cols)), shape=(len(self.reader_ids), len(self.item_ids))
        )
        summed.sum_duplicates()
        summed.eliminate_zeros()
        summed = sp.csr_matrix(summed, dtype=np.float32)
        summed.eliminate_zeros()
        return summed

    def _history(
        self,
        summed: sp.csr_matrix,
        tfidf: sp.csr_matrix,
        docs: dict[str, ItemDoc],
        item_vectors: VectorSource,
    ) -> None:
        """Per-reader weighted history (`_summed`), the source of the text scorers.

        Vectors given as a function are asked for last, after everything that does not
        need them: they may still be being encoded.
        """
        self.history_matrix = summed
        self.history = _history_rows(self.history_matrix)
        self.co_clicks = nn.co_clicks(self.history_matrix)
        interests = [self.readers_info.get(r, ReaderInfo(r)).interests for r in self.reader_ids]
        interest_text = [" ; ".join(phrases) for phrases in interests]
        self.interest_tfidf = self.vectorizer.transform(interest_text)
        self.item_tfidf = tfidf
        history_centroid = centroids(self.history_matrix, tfidf)
        self.tfidf_centroid = _normalize_rows(
            history_centroid + INTEREST_WEIGHT * self.interest_tfidf
        )
        self.interest_phrases = [tuple(normalize(p) for p in ps) for ps in interests]
        self.linear_lf = linear.ridge_weights(self.item_lf, self.history_matrix, self.ridge)
        if callable(item_vectors):
            item_vectors = item_vectors()
        if self.use_embed:
            self.item_embed = self._embed_items([docs[i] for i in self.item_ids], item_vectors)
            self.linear_embed = linear.ridge_weights(
                self.item_embed, self.history_matrix, self.ridge_embed
            )
            interest_vecs = self._interest_vectors(interest_text)
            self.embed_centroid = _normalize_dense(
                centroids(self.history_matrix, self.item_embed) + INTEREST_WEIGHT * interest_vecs
            )

    def _interest_vectors(self, texts: list[str]) -> np.ndarray:
        """Readers' interest embeddings; a phrase list already encoded is not encoded again.

        The daily update runs for every reader, and most readers' interests never change.
        """
        known: dict[str, np.ndarray] = getattr(self, "interest_embed", None) or {}
        fresh = sorted({t for t in texts if t and t not in known})
        if fresh:
            known = {**known, **dict(zip(fresh, embed.encode(fresh), strict=True))}
        self.interest_embed = {t: known[t] for t in texts if t}
        out = np.zeros((len(texts), embed.DIMENSIONS), dtype=np.float32)
        for row, text in enumerate(texts):
            if text:
                out[row] = known[text]
        return out

    def _embed_items(
        self, docs: list[ItemDoc], given: dict[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """Vectors for `docs`: given ones, then the model's own rows, encoding only the rest.

        The store keeps every item's vector (see `training.item_vectors`), so in the
        daily path nothing is encoded here; a library caller without a cache pays once.
        """
        out = np.zeros((len(docs), embed.DIMENSIONS), dtype=np.float32)
        known = getattr(self, "item_embed", None)
        missing = []
        for n, doc in enumerate(docs):
            row = self.item_index.get(doc.id) if known is not None else None
            if given is not None and doc.id in given:
                out[n] = given[doc.id]
            elif row is not None and row < len(known):
                out[n] = known[row]
            else:
                missing.append(n)
        if missing:
            pairs = [(docs[n].title, docs[n].abstract) for n in missing]
            out[missing] = embed.encode_items(pairs, self.embed_recipe)
        return out

    def _char_rows(self, docs: list[ItemDoc]) -> sp.csr_matrix:
        """Character n-gram rows of `docs`' titles, reusing the rows already computed.

        `docs` follows `item_ids`, whose order only ever grows at the end, so an update
        transforms only the new items' titles.
        """
        known = self.item_char
        start = 0 if known is None else known.shape[0]
        rows = char_matrix(self.char_vectorizer, [d.title for d in docs[start:]])
        return rows if known is None else sp.vstack([known, rows], format="csr", dtype=np.float32)

    def _calibrate(self, *, reuse: bool = False) -> None:
        """Fix each scorer's mean and spread on a sample, for comparable scores.

        With `reuse` (new settings applied to the model just fitted), the sample items'
        neighbours found for the last calibration serve again when they hold at least
        the new neighbour count: `raw_scores` keeps each item's top k of them, as the
        weight search does. Finding them was most of a calibration's cost.
        """
        rng = np.random.RandomState(self.random_state)
        readers = rng.choice(len(self.reader_ids), min(300, len(self.reader_ids)), replace=False)
        cols = rng.choice(len(self.item_ids), min(1000, len(self.item_ids)), replace=False)
        self.scale = {name: (0.0, 1.0) for name in SCORERS}
        shape = (len(self.reader_ids), len(self.item_ids), self.use_embed)
        kept = self.__dict__.get("_calibration_side")
        if reuse and kept is not None and kept[0] == shape and kept[1] >= self.neighbours_k:
            side = kept[2]
        else:
            side = self._item_side(
                [self.item_ids[c] for c in cols],
                self.item_tfidf[cols],
                self.item_embed[cols] if self.use_embed else None,
                self._item_features[cols],
                texts=None,
                char=self.item_char[cols],
            )
            self._calibration_side = (shape, self.neighbours_k, side)
        raw = self.raw_scores([self.reader_ids[r] for r in readers], side)
        for name, values in raw.items():
            std = float(values.std())
            self.scale[name] = (float(values.mean()), std if std > 1e-9 else 1.0)

    def apply_tuning(self, tuning) -> None:
        """Take the weights and settings a search chose (`digest.tuning.Tuning`).

        Called right after `fit`: the linear scorers are re-solved for a changed ridge
        and every scorer is recalibrated, since neighbour settings move their scale.
        """
        self._check_fitted()
        if getattr(self, "_item_features", None) is None:
            raise ModelError("settings can only be applied to a model fitted in this process")
        self.weights = dict(tuning.weights)
        before = (self.neighbours_k, self.expansion, self.ridge, self.ridge_embed)
        self.neighbours_k, self.expansion = int(tuning.neighbours_k), float(tuning.expansion)
        if tuning.ridge != self.ridge:
            self.ridge = float(tuning.ridge)
            self.linear_lf = linear.ridge_weights(self.item_lf, self.history_matrix, self.ridge)
        if tuning.ridge_embed != self.ridge_embed:
            self.ridge_embed = float(tuning.ridge_embed)
            if self.use_embed:
                self.linear_embed = linear.ridge_weights(
                    self.item_embed, self.history_matrix, self.ridge_embed
                )
        self.__dict__.pop("_linear_cache", None)
        if before != (self.neighbours_k, self.expansion, self.ridge, self.ridge_embed):
            self._calibrate(reuse=True)
        self.tuning = tuning.as_dict()

    # -- scoring ------------------------------------------------------------------------

    def prepare(
        self,
        items: list[ItemDoc],
        vectors: dict[str, np.ndarray] | None = None,
        *,
        k: int | None = None,
    ) -> dict:
        """Item-side work for `score`, done once when many reader blocks share the items.

        `vectors` passes stored embeddings by item id, so nothing is encoded twice. `k`
        keeps more neighbours than the model's own setting, so `raw_scores` can try
        several settings on one preparation (as the weight search does).
        """
        self._check_fitted()
        tfidf = self.vectorizer.transform([d.text for d in items])
        features = item_feature_matrix(tfidf, items, self.vocab, grow=False, k=self.max_terms)
        vectors = self._embed_items(items, vectors) if self.use_embed else None
        texts = [normalize(f"{d.title} {d.abstract}") for d in items]
        char = char_matrix(self.char_vectorizer, [d.title for d in items])
        side = self._item_side([d.id for d in items], tfidf, vectors, features, texts, char, k)
        side["tfidf"] = sp.csr_matrix(tfidf)
        return side

    def _item_side(
        self,
        ids: list[str],
        tfidf: sp.csr_matrix,
        vectors: np.ndarray | None,
        features: sp.csr_matrix,
        texts: list[str] | None,
        char: sp.csr_matrix,
        k: int | None = None,
    ) -> dict:
        # An item that is also a past item must not count itself as its own neighbour:
        # the same item scores the same whether or not it was in the training set.
        own = np.array([self.item_index.get(i, -1) for i in ids], dtype=np.int64)
        k = max(k or 0, self.neighbours_k)
        bias, reps = self.lightfm.get_item_representations(features)
        unit = _unit_rows(reps)
        side = {
            "ids": ids,
            "tfidf": tfidf,
            "vectors": vectors,
            "lightfm": (bias, reps),
            "lightfm_unit": unit,
            "texts": texts,
            "neighbours": nn.nearest(tfidf, self.item_tfidf, k, exclude=own),
            "lightfm_neighbours": nn.nearest(unit, self.item_lf, k, exclude=own),
            "char_neighbours": nn.nearest(char, self.item_char, k, exclude=own),
        }
        if vectors is not None:
            side["embed_neighbours"] = nn.nearest(vectors, self.item_embed, k, exclude=own)
        return side

    def score(
        self, readers: list[str], items: list[ItemDoc], *, prepared: dict | None = None
    ) -> Components:
        """Blended scores (readers x items) plus the raw scores of the scorers it blends."""
        active = frozenset(name for name, weight in self.weights.items() if weight)
        raw = self.raw_scores(readers, prepared or self.prepare(items), only=active)
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

    def raw_scores(
        self,
        readers: list[str],
        side: dict,
        *,
        only: frozenset[str] | None = None,
        k: int | None = None,
        expansion: float | None = None,
        ridge: float | None = None,
        ridge_embed: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Each scorer's unblended scores (readers x items of `side`, from `prepare`).

        `only` limits the work to some scorers. The weight search (`digest.tuning`)
        scores one preparation under several neighbour and ridge settings; ranking
        uses the model's own settings through `score`.
        """
        wanted = frozenset(SCORERS) if only is None else only
        rows = [self._reader_row(r) for r in readers]
        out: dict[str, np.ndarray] = {}
        if "lightfm" in wanted:
            user_bias, user_vecs = self._user_vectors(readers)
            item_bias, item_vecs = side["lightfm"]
            out["lightfm"] = user_vecs @ item_vecs.T + item_bias[None, :] + user_bias[:, None]
        neighbour_scorers = [n for n in NEIGHBOUR_SCORERS if n in wanted and n in side]
        if neighbour_scorers:
            strength = self.expansion if expansion is None else expansion
            history = self._rows_or_zero(self.history_matrix, rows)
            expanded = nn.expand(history, self.co_clicks, strength)
            for name in neighbour_scorers:
                out[name] = nn.score(expanded, nn.keep_top(side[name], k or self.neighbours_k))
        if "lightfm_linear" in wanted:
            weights = self._linear("lf", ridge)
            out["lightfm_linear"] = linear.scores(weights, rows, side["lightfm_unit"])
        if "tfidf" in wanted:
            centroid = self._rows_or_zero(self.tfidf_centroid, rows)
            out["tfidf"] = np.asarray((centroid @ side["tfidf"].T).todense(), dtype=np.float32)
        if "interest" in wanted:
            interest = self._rows_or_zero(self.interest_tfidf, rows)
            hits = np.asarray((interest @ side["tfidf"].T).todense(), dtype=np.float32)
            if side["texts"] is not None:
                hits += self._phrase_hits(rows, side["texts"], side.setdefault("phrase_hits", {}))
            out["interest"] = hits
        vectors = side["vectors"]
        if self.use_embed and vectors is not None:
            if "embed" in wanted:
                dense = np.zeros((len(rows), vectors.shape[1]), dtype=np.float32)
                idx = [i for i, r in enumerate(rows) if r is not None]
                dense[idx] = self.embed_centroid[[rows[i] for i in idx]]
                out["embed"] = dense @ vectors.T
            if "embed_linear" in wanted:
                weights = self._linear("embed", ridge_embed)
                out["embed_linear"] = linear.scores(weights, rows, vectors)
        return {name: np.asarray(v, dtype=np.float32) for name, v in out.items()}

    def _linear(self, space: str, ridge: float | None) -> np.ndarray:
        """Per-reader linear weights over one item space, for the model's ridge or another."""
        own = self.ridge if space == "lf" else self.ridge_embed
        if ridge is None or ridge == own:
            return self.linear_lf if space == "lf" else self.linear_embed
        cache = self.__dict__.setdefault("_linear_cache", {})
        if (space, ridge) not in cache:
            items = self.item_lf if space == "lf" else self.item_embed
            cache[(space, ridge)] = linear.ridge_weights(items, self.history_matrix, ridge)
        return cache[(space, ridge)]

    def _phrase_hits(
        self, rows: list[int | None], texts: list[str], cache: dict[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """Per reader, how many of their interest phrases each text holds (whole words).

        Readers share interests, so each phrase is looked for once per set of texts
        (`cache`, kept with the prepared candidates) instead of once per reader.
        """
        hits = np.zeros((len(rows), len(texts)), dtype=np.float32)
        cache = {} if cache is None else cache
        padded: list[str] | None = None
        for i, row in enumerate(rows):
            phrases = self.interest_phrases[row] if row is not None else ()
            for phrase in phrases:
                if not phrase:
                    continue
                found = cache.get(phrase)
                if found is None:
                    padded = padded or [f" {t} " for t in texts]
                    needle = f" {phrase} "
                    found = np.fromiter((needle in t for t in padded), np.float32, len(padded))
                    cache[phrase] = found
                hits[i] += found
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

    # -- explanations -------------------------------------------------------------------

    def explain(self, reader: str, prepared: dict, cols: list[int]) -> list[Explanation]:
        """Why each chosen column (of `prepared`'s items) suits a reader (see `explain_all`)."""
        return self.explain_all([reader], prepared, [cols])[0]

    def explain_all(
        self, readers: Sequence[str], prepared: dict, picks: Sequence[Sequence[int]]
    ) -> list[list[Explanation]]:
        """Why each reader's chosen columns (of `prepared`'s items) suit that reader.

        Three kinds of evidence, each cheap once `prepared` holds the candidates'
        similarity to every past item: a profile interest found in the item's text,
        the reader's closest past item, and the strongest terms shared with the
        reader's history. A reader with none of these gets the collaborative reason.
        A daily run explains every pick of every reader, so the work is done for a
        block of readers at once in array operations, not reader by reader.
        """
        pairs = _Pairs(
            [self.reader_index.get(r, -1) for r in readers], [list(cols) for cols in picks]
        )
        closest = self._closest(pairs, prepared)
        terms = self._shared_terms(pairs, prepared)
        texts = prepared.get("texts")
        out: list[list[Explanation]] = []
        for n, (reader, cols) in enumerate(zip(readers, pairs.cols, strict=True)):
            first = int(pairs.offsets[n])
            phrases = self._phrases(reader)
            out.append([
                Explanation(
                    interest=_interest(phrases, texts[c] if texts is not None else None),
                    because_title=self.titles.get(closest[first + m], "")
                    if closest[first + m] else None,
                    because_id=closest[first + m],
                    terms=tuple(terms[first + m]),
                )
                for m, c in enumerate(cols)
            ])  # fmt: skip
        return out

    def _phrases(self, reader: str) -> list[tuple[str, str]]:
        """A reader's interests, each with its normalised form padded for a word match."""
        info = self.readers_info.get(reader)
        return [(phrase, f" {normalize(phrase)} ") for phrase in (info.interests if info else ())]

    def _closest(self, pairs: _Pairs, prepared: dict) -> list[str | None]:
        """Each pair's most similar past item the reader engaged with, if similar enough."""
        out: list[str | None] = [None] * pairs.size
        positives = [
            [c for c, w in self.history[row].items() if w > 0] if row >= 0 else []
            for row in pairs.rows
        ]
        counts = np.array([len(p) for p in positives], dtype=np.int64)
        if not pairs.size or not counts.any():
            return out
        if "history_sims" not in prepared:
            # Every past item against every candidate, once per ranking: lookups are
            # then plain indexing instead of a sparse product each.
            sims = (self.item_tfidf @ prepared["tfidf"].T).toarray().astype(np.float32)
            prepared["history_sims"] = sims
        flat = np.fromiter((c for p in positives for c in p), dtype=np.int64, count=counts.sum())
        first = np.cumsum(counts) - counts
        # Every (pair, positive of the pair's reader), pair by pair.
        lengths = counts[pairs.owner]
        pair = np.flatnonzero(lengths)
        lengths = lengths[pair]
        starts = np.cumsum(lengths) - lengths
        inner = np.arange(lengths.sum()) - np.repeat(starts, lengths)
        past = flat[np.repeat(first[pairs.owner[pair]], lengths) + inner]
        values = prepared["history_sims"][past, np.repeat(pairs.col[pair], lengths)]
        best = np.maximum.reduceat(values, starts)
        # The first positive reaching the maximum, as `argmax` would choose.
        at = np.where(values == np.repeat(best, lengths), np.arange(len(values)), len(values))
        chosen = past[np.minimum.reduceat(at, starts)]
        for p, item, value in zip(pair.tolist(), chosen.tolist(), best.tolist(), strict=True):
            if value >= _MIN_EXPLAIN_SIMILARITY:
                out[p] = self.item_ids[item]
        return out

    def _shared_terms(self, pairs: _Pairs, prepared: dict, k: int = 3) -> list[list[str]]:
        """Each pair's k terms weighing most in both the item and the reader's centroid.

        The readers' centroid rows are spread, `_TERM_BLOCK` at a time, into a dense
        buffer kept with `prepared`: looking up every term of every pick is then one
        gather (a search per term, through all the block's entries, was slower than
        doing it reader by reader).
        """
        out: list[list[str]] = [[] for _ in range(pairs.size)]
        known = pairs.rows >= 0
        if not pairs.size or not known.any():
            return out
        centroid = self.tfidf_centroid
        pair = np.flatnonzero(known[pairs.owner])
        tfidf = prepared["tfidf"]
        starts = tfidf.indptr[pairs.col[pair]]
        lengths = tfidf.indptr[pairs.col[pair] + 1] - starts
        owner = np.repeat(pair, lengths)
        # Each pick's slice of the CSR arrays, as one index array: start + offset in row.
        take = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(len(owner))
        index = tfidf.indices[take]
        reader = pairs.owner[owner]  # ascending: pairs come reader by reader
        weight = np.zeros(len(owner), dtype=np.float32)
        buffer = prepared.get("centroid_buffer")
        if buffer is None or buffer.shape[1] != centroid.shape[1]:
            buffer = prepared["centroid_buffer"] = np.zeros(
                (_TERM_BLOCK, centroid.shape[1]), dtype=np.float32
            )
        readers = np.flatnonzero(known)
        for lo in range(0, len(readers), _TERM_BLOCK):
            group = readers[lo : lo + _TERM_BLOCK]
            mine = centroid[pairs.rows[group]]
            at = np.repeat(np.arange(len(group)), np.diff(mine.indptr))
            buffer[at, mine.indices] = mine.data
            try:
                first, last = np.searchsorted(reader, [group[0], group[-1] + 1])
                local = np.searchsorted(group, reader[first:last])
                values = buffer[local, index[first:last]]
                weight[first:last] = tfidf.data[take[first:last]] * values
            finally:
                buffer[at, mine.indices] = 0.0  # the buffer is shared: leave it clean
        shared = weight > 0
        owner, index, weight = owner[shared], index[shared], weight[shared]
        names = self.term_list()
        for who, term in _top_per_group(owner, weight, index, k):
            out[who].append(names[term])
        return out

    # -- what the model knows of a reader (for explanations and ranking) -----------------

    def reader_history(self, reader: str) -> dict[str, float]:
        """Item id -> signal weight for a reader's past interactions."""
        row = self._reader_row(reader)
        if row is None:
            return {}
        return {self.item_ids[c]: w for c, w in self.history[row].items()}

    def term_list(self) -> list[str]:
        """The text vocabulary as plain strings, by column (for per-pick lookups)."""
        if getattr(self, "_term_list", None) is None:
            self._term_list = [str(t) for t in self.terms()]
        return self._term_list

    def terms(self) -> np.ndarray:
        """The text vocabulary, by column (computed once: sklearn rebuilds it per call)."""
        if getattr(self, "_terms", None) is None:
            self._terms = self.vectorizer.get_feature_names_out()
        return self._terms

    def similarity(self, prepared: dict) -> np.ndarray:
        """Candidate x candidate text similarity, for diversifying a selection."""
        tfidf = prepared["tfidf"]
        return (tfidf @ tfidf.T).toarray()

    def summary(self) -> dict:
        """What `digest model show` reports: size, settings, weights and how they were chosen."""
        self._check_fitted()
        return {
            "items": len(self.item_ids),
            "readers": len(self.reader_ids),
            "embeddings": embed.cache_key(self.embed_recipe) if self.use_embed else None,
            "weights": {n: float(self.weights.get(n, 0.0)) for n in SCORERS},
            "default_weights": dict(DEFAULT_WEIGHTS),
            "neighbours_k": self.neighbours_k,
            "expansion": self.expansion,
            "ridge": self.ridge,
            "ridge_embed": self.ridge_embed,
            "tuning": self.tuning,
            "calibrated_on": self.calibrated_on,
            "params": self.get_params(),
        }

    # -- persistence --------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model atomically, as arrays and a JSON header (see `digest.modelfile`)."""
        self._check_fitted()
        header, arrays = self._state()
        modelfile.write(path, header, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recommender:
        """Read a saved model. Nothing in the file can run code; any fault is a ModelError."""
        header, arrays = modelfile.read(path)
        model = cls(**_params(path, header))
        model._restore(path, header, arrays)
        return model

    _LIGHTFM_ARRAYS = tuple(
        f"{side}_{part}"
        for side in ("item", "user")
        for part in (
            "embeddings", "embedding_gradients", "embedding_momentum",
            "biases", "bias_gradients", "bias_momentum",
        )
    )  # fmt: skip
    _LIGHTFM_PARAMS = (
        "no_components", "k", "n", "learning_schedule", "loss", "learning_rate", "rho",
        "epsilon", "item_alpha", "user_alpha", "max_sampled",
    )  # fmt: skip

    def _state(self) -> tuple[dict, dict]:
        """Everything `load` needs, split into JSON-able header fields and arrays."""
        rng_name, rng_keys, rng_pos, has_gauss, gauss = self.lightfm.random_state.get_state()
        header = {
            "digest": __version__,
            "params": self.get_params(),
            "use_embed": bool(self.use_embed),
            "embed_model": embed.cache_key(self.embed_recipe) if self.use_embed else None,
            "scale": {name: list(pair) for name, pair in self.scale.items()},
            "terms": [str(t) for t in self.terms()],
            "char_terms": _char_terms(self.char_vectorizer),
            "tuning": self.tuning,
            "calibrated_on": self.calibrated_on,
            "trained_on": self.trained_on,
            "item_extra": _by_column(self.vocab.item_extra),
            "user_features": _by_column(self.vocab.user),
            "item_ids": self.item_ids,
            "titles": [self.titles.get(i, "") for i in self.item_ids],
            "reader_ids": self.reader_ids,
            "readers": {
                h: {"interests": list(r.interests), "teams": list(r.teams)}
                for h, r in self.readers_info.items()
            },
            "lightfm": {name: getattr(self.lightfm, name) for name in self._LIGHTFM_PARAMS},
            "rng": {"name": rng_name, "pos": int(rng_pos), "has_gauss": int(has_gauss),
                    "gauss": float(gauss)},
        }  # fmt: skip
        arrays = {name: getattr(self.lightfm, name) for name in self._LIGHTFM_ARRAYS}
        arrays.update(
            idf=self.vectorizer.idf_,
            rng_keys=rng_keys,
            item_tfidf=self.item_tfidf,
            history=self.history_matrix,
            co_clicks=self.co_clicks,
            interest_tfidf=self.interest_tfidf,
            tfidf_centroid=self.tfidf_centroid,
            item_lf=self.item_lf,
            item_char=self.item_char,
            linear_lf=self.linear_lf,
        )
        if self.char_vectorizer is not None:
            arrays["char_idf"] = self.char_vectorizer.idf_
        if self.use_embed:
            header["interest_texts"] = list(self.interest_embed)
            arrays["interest_embed"] = np.asarray(
                list(self.interest_embed.values()), dtype=np.float32
            ).reshape(len(self.interest_embed), embed.DIMENSIONS)
            arrays.update(
                item_embed=self.item_embed,
                embed_centroid=self.embed_centroid,
                linear_embed=self.linear_embed,
            )
        return header, arrays

    def _restore(self, path: str | os.PathLike[str], header: dict, arrays: dict) -> None:
        """Rebuild a fitted model from `_state`'s output, checking every shape."""
        field = modelfile.field
        terms = field(path, header, "terms", list)
        self.item_ids = [str(i) for i in field(path, header, "item_ids", list)]
        self.reader_ids = [str(r) for r in field(path, header, "reader_ids", list)]
        titles = field(path, header, "titles", list)
        if len(titles) != len(self.item_ids):
            raise ModelError(f"{path}: corrupt model header (titles and item ids differ)")
        self.item_index = {item_id: i for i, item_id in enumerate(self.item_ids)}
        self.reader_index = {reader: i for i, reader in enumerate(self.reader_ids)}
        self.titles = dict(zip(self.item_ids, map(str, titles), strict=True))
        self.readers_info = _reader_infos(path, field(path, header, "readers", dict))
        self.vocab = Vocabulary(
            item_extra=_by_name(field(path, header, "item_extra", list)),
            user=_by_name(field(path, header, "user_features", list)),
        )
        self.scale = _scale(path, field(path, header, "scale", dict))
        self.use_embed = bool(header.get("use_embed"))
        self.vectorizer = make_vectorizer(self.max_features)
        self._terms = self._term_list = None
        self.vectorizer.vocabulary_ = {str(t): i for i, t in enumerate(terms)}
        self.vectorizer.idf_ = _shaped(path, arrays, "idf", (len(terms),))
        self._restore_lightfm(path, header, arrays, len(terms))
        n_items, n_readers = len(self.item_ids), len(self.reader_ids)
        self.item_tfidf = _sparse_shaped(path, arrays, "item_tfidf", (n_items, len(terms)))
        self.history_matrix = _sparse_shaped(path, arrays, "history", (n_readers, n_items))
        self.co_clicks = _sparse_shaped(path, arrays, "co_clicks", (n_items, n_items))
        self.interest_tfidf = _sparse_shaped(
            path, arrays, "interest_tfidf", (n_readers, len(terms))
        )
        self.tfidf_centroid = _sparse_shaped(
            path, arrays, "tfidf_centroid", (n_readers, len(terms))
        )
        self.history = _history_rows(self.history_matrix)
        self.tuning = _tuning(path, header.get("tuning"))
        self.calibrated_on = modelfile.field(path, header, "calibrated_on", int)
        trained_on = header.get("trained_on")
        self.trained_on = trained_on if isinstance(trained_on, str) else None
        self.char_vectorizer = _char_vectorizer(path, header, arrays)
        n_char = len(self.char_vectorizer.vocabulary_) if self.char_vectorizer else 0
        self.item_char = _sparse_shaped(path, arrays, "item_char", (n_items, n_char))
        width = self.lightfm.no_components
        self.item_lf = _shaped(path, arrays, "item_lf", (n_items, width))
        self.linear_lf = _shaped(path, arrays, "linear_lf", (width, n_readers))
        self.interest_phrases = [
            tuple(normalize(p) for p in self.readers_info.get(r, ReaderInfo(r)).interests)
            for r in self.reader_ids
        ]
        if self.use_embed:
            if header.get("embed_model") != embed.cache_key(self.embed_recipe):
                raise ModelError(f"{path}: embeddings of another model; retrain")
            self.item_embed = _shaped(path, arrays, "item_embed", (n_items, embed.DIMENSIONS))
            self.embed_centroid = _shaped(
                path, arrays, "embed_centroid", (n_readers, embed.DIMENSIONS)
            )
            self.linear_embed = _shaped(path, arrays, "linear_embed", (embed.DIMENSIONS, n_readers))
            texts = modelfile.field(path, header, "interest_texts", list)
            vectors = _shaped(path, arrays, "interest_embed", (len(texts), embed.DIMENSIONS))
            self.interest_embed = dict(zip(map(str, texts), vectors, strict=True))
        self._fitted = True

    def _restore_lightfm(self, path, header: dict, arrays: dict, n_terms: int) -> None:
        params = modelfile.field(path, header, "lightfm", dict)
        try:
            self.lightfm = LightFM(
                **{k: params[k] for k in self._LIGHTFM_PARAMS},
                random_state=np.random.RandomState(self.random_state),
            )
        except (KeyError, TypeError, ValueError, AssertionError):
            raise ModelError(f"{path}: corrupt model header (field 'lightfm')") from None
        rng = modelfile.field(path, header, "rng", dict)
        keys = _shaped(path, arrays, "rng_keys", (624,))
        try:
            self.lightfm.random_state.set_state(
                (rng["name"], keys.astype(np.uint32), rng["pos"], rng["has_gauss"], rng["gauss"])
            )
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{path}: corrupt model header (field 'rng')") from None
        n_item = n_terms + len(self.vocab.item_extra)
        n_user = len(self.vocab.user)
        dims = {"item": n_item, "user": n_user}
        for name in self._LIGHTFM_ARRAYS:
            side, _, part = name.partition("_")
            rows = dims[side]
            shape = (rows,) if part.startswith("bias") else (rows, self.lightfm.no_components)
            setattr(self.lightfm, name, _shaped(path, arrays, name, shape, np.float32))

    def get_params(self) -> dict:
        """Constructor arguments, as scikit-learn estimators report them."""
        return {
            "components": self.components, "epochs": self.epochs,
            "learning_rate": self.learning_rate, "loss": self.loss,
            "item_alpha": self.item_alpha, "user_alpha": self.user_alpha,
            "max_terms": self.max_terms, "max_features": self.max_features,
            "weights": dict(self.weights), "embeddings": self.embeddings,
            "random_state": self.random_state, "num_threads": self.num_threads,
            "neighbours_k": self.neighbours_k, "expansion": self.expansion,
            "ridge": self.ridge, "ridge_embed": self.ridge_embed,
            "embed_recipe": self.embed_recipe,
        }  # fmt: skip


def _grow_lightfm(lightfm: LightFM, side: str, rows: int) -> None:
    """Append rows to one side's LightFM arrays, initialised as `LightFM._initialize` does."""
    embeddings = getattr(lightfm, f"{side}_embeddings")
    extra = rows - embeddings.shape[0]
    if extra <= 0:
        return
    width = lightfm.no_components
    fresh = ((lightfm.random_state.rand(extra, width) - 0.5) / width).astype(np.float32)
    start = 1.0 if lightfm.learning_schedule == "adagrad" else 0.0
    pads = {
        "embeddings": fresh,
        "embedding_gradients": np.full((extra, width), start, dtype=np.float32),
        "embedding_momentum": np.zeros((extra, width), dtype=np.float32),
        "biases": np.zeros(extra, dtype=np.float32),
        "bias_gradients": np.full(extra, start, dtype=np.float32),
        "bias_momentum": np.zeros(extra, dtype=np.float32),
    }
    for part, pad in pads.items():
        name = f"{side}_{part}"
        setattr(lightfm, name, np.concatenate([getattr(lightfm, name), pad]))


def _params(path: str | os.PathLike[str], header: dict) -> dict:
    params = modelfile.field(path, header, "params", dict)
    expected = {
        "components": int, "epochs": int, "learning_rate": float, "loss": str,
        "item_alpha": float, "user_alpha": float, "max_terms": int, "max_features": int,
        "weights": dict, "embeddings": str, "random_state": int, "num_threads": int,
        "neighbours_k": int, "expansion": float, "ridge": float, "ridge_embed": float,
        "embed_recipe": str,
    }  # fmt: skip
    out = {}
    for key, kind in expected.items():
        value = params.get(key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ModelError(f"{path}: corrupt model header (parameter {key!r})")
        out[key] = value
    weights = out["weights"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in weights.values()):
        raise ModelError(f"{path}: corrupt model header (parameter 'weights')")
    if out["embeddings"] not in ("auto", "on", "off"):
        raise ModelError(f"{path}: corrupt model header (parameter 'embeddings')")
    if out["embed_recipe"] not in embed.RECIPES:
        raise ModelError(f"{path}: corrupt model header (parameter 'embed_recipe')")
    if not 1 <= out["neighbours_k"] <= 10_000:
        raise ModelError(f"{path}: corrupt model header (parameter 'neighbours_k')")
    for key in ("expansion", "ridge", "ridge_embed"):
        if not 0 <= out[key] < 1e9:
            raise ModelError(f"{path}: corrupt model header (parameter {key!r})")
    return out


def _char_terms(vectorizer) -> list[str] | None:
    if vectorizer is None:
        return None
    return [t for t, _ in sorted(vectorizer.vocabulary_.items(), key=lambda pair: pair[1])]


def _char_vectorizer(path: str | os.PathLike[str], header: dict, arrays: dict):
    """The title n-gram vectorizer rebuilt from its terms and weights (None if it had none)."""
    terms = header.get("char_terms")
    if terms is None:
        return None
    if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
        raise ModelError(f"{path}: corrupt model header (field 'char_terms')")
    vectorizer = char_vectorizer()
    vectorizer.vocabulary_ = {t: i for i, t in enumerate(terms)}
    vectorizer.idf_ = _shaped(path, arrays, "char_idf", (len(terms),))
    return vectorizer


def _tuning(path: str | os.PathLike[str], raw: object) -> dict | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: corrupt model header (field 'tuning')")
    return raw


def _shaped(
    path: str | os.PathLike[str],
    arrays: dict,
    name: str,
    shape: tuple[int, ...],
    dtype: type = np.float32,
) -> np.ndarray:
    value = modelfile.dense(path, arrays, name)
    if value.shape != shape:
        raise ModelError(f"{path}: corrupt model file (array {name!r} has shape {value.shape})")
    return np.ascontiguousarray(value, dtype=dtype if name != "rng_keys" else value.dtype)


def _sparse_shaped(
    path: str | os.PathLike[str], arrays: dict, name: str, shape: tuple[int, int]
) -> sp.csr_matrix:
    matrix = modelfile.sparse(path, arrays, name)
    if matrix.shape != shape:
        raise ModelError(f"{path}: corrupt model file (matrix {name!r} has shape {matrix.shape})")
    return sp.csr_matrix(matrix, dtype=np.float32)


def _scale(path: str | os.PathLike[str], raw: dict) -> dict[str, tuple[float, float]]:
    out = {}
    for name in SCORERS:
        pair = raw.get(name)
        if not (isinstance(pair, list) and len(pair) == 2) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in pair
        ):
            raise ModelError(f"{path}: corrupt model header (scale of {name!r})")
        out[name] = (float(pair[0]), float(pair[1]) or 1.0)
    return out


def _reader_infos(path: str | os.PathLike[str], raw: dict) -> dict[str, ReaderInfo]:
    out = {}
    for handle, info in raw.items():
        interests = info.get("interests") if isinstance(info, dict) else None
        teams = info.get("teams") if isinstance(info, dict) else None
        if not isinstance(interests, list) or not isinstance(teams, list):
            raise ModelError(f"{path}: corrupt model header (reader {handle!r})")
        out[handle] = ReaderInfo(handle, tuple(map(str, interests)), tuple(map(str, teams)))
    return out


def _by_column(index: dict[str, int]) -> list[str]:
    return [name for name, _ in sorted(index.items(), key=lambda pair: pair[1])]


def _by_name(names: list) -> dict[str, int]:
    return {str(name): col for col, name in enumerate(names)}


def _history_rows(matrix: sp.csr_matrix) -> list[dict[int, float]]:
    return [
        dict(zip(matrix.indices[s:e].tolist(), matrix.data[s:e].tolist(), strict=True))
        for s, e in zip(matrix.indptr[:-1], matrix.indptr[1:], strict=True)
    ]


def _interest(phrases: list[tuple[str, str]], text: str | None) -> str | None:
    """The first interest found in a (normalised) item text, as the reader wrote it."""
    padded = f" {text} " if text else ""
    for phrase, pattern in phrases if padded else ():
        if pattern in padded:
            return phrase
    return None


def _top_per_group(
    groups: np.ndarray, weights: np.ndarray, values: np.ndarray, k: int
) -> Iterator[tuple[int, int]]:
    """(group, value) of each group's k largest positive weights, best first.

    `groups` must be ascending. Ties go to the earlier entry, as a stable sort would
    order them. k rounds of a per-group maximum instead of sorting every entry: the
    daily run's explanations have over ten million shared terms to rank, and sorting
    them took seconds.
    """
    if not len(groups):
        return
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    lengths = np.diff(np.r_[starts, len(groups)])
    left = np.array(weights, dtype=np.float64)
    positions = np.arange(len(left))
    rounds = []
    for _ in range(k):
        best = np.maximum.reduceat(left, starts)
        at = np.where(left == np.repeat(best, lengths), positions, len(left))
        first = np.minimum.reduceat(at, starts)
        found = best > 0
        rounds.append((groups[starts[found]], values[first[found]]))
        left[first[found]] = 0.0
    for who, value in rounds:
        yield from zip(who.tolist(), value.tolist(), strict=True)


class _Pairs:
    """Readers' chosen columns, flattened: pair p is (reader `owner[p]`, column `col[p]`).

    `rows` holds each reader's model row (-1 for a reader the model does not know)
    and `offsets` where each reader's pairs start.
    """

    def __init__(self, rows: list[int], cols: list[list[int]]):
        self.rows = np.asarray(rows, dtype=np.int64)
        self.cols = cols
        counts = np.array([len(c) for c in cols], dtype=np.int64)
        self.size = int(counts.sum())
        self.offsets = np.cumsum(counts) - counts
        self.owner = np.repeat(np.arange(len(cols), dtype=np.int64), counts)
        self.col = np.fromiter((c for cs in cols for c in cs), dtype=np.int64, count=self.size)


def _to_learn(
    current: sp.coo_matrix, summed: sp.csr_matrix, learned: sp.csr_matrix, seed: int
) -> sp.coo_matrix:
    """The positives an update's epochs go over: new ones, plus as many old ones replayed.

    `current` is what LightFM would train on; `summed` the reader x item history now
    and `learned` the one the model last trained on (both summed per pair, as
    `_summed` makes them; rows and columns only ever grow at the end). Going over all
    of history again each day cost most of a daily update (three epochs over half a
    million clicks) and taught the model nothing it had not seen; going over the new
    clicks alone would pull readers toward their latest day. So the epochs see every
    pair that is new or stronger than before, plus an equal-sized random sample of
    unchanged pairs to hold the rest in place. Nothing new: an empty matrix (no
    epochs at all).
    """
    now = sp.csr_matrix(current, dtype=np.float32)
    now.sum_duplicates()
    now.eliminate_zeros()
    rows = np.repeat(np.arange(now.shape[0]), np.diff(now.indptr))
    cols, weights = now.indices, now.data
    before = sp.csr_matrix(learned, dtype=np.float32)
    before.resize(now.shape)
    after = sp.csr_matrix(summed, dtype=np.float32)
    # A pair is fresh when its summed interest grew (a negative sum counts as none).
    grown = np.maximum(np.asarray(after[rows, cols]).ravel(), 0)
    fresh = grown > np.maximum(np.asarray(before[rows, cols]).ravel(), 0)
    kept = np.flatnonzero(~fresh)
    rng = np.random.default_rng(seed + int(now.nnz))
    replay = rng.choice(kept, size=min(len(kept), int(fresh.sum())), replace=False)
    take = np.concatenate([np.flatnonzero(fresh), np.sort(replay)])
    return sp.coo_matrix(
        (weights[take].astype(np.float32), (rows[take], cols[take])), shape=now.shape
    )


def _normalize_rows(matrix: sp.spmatrix) -> sp.csr_matrix:
    from sklearn.preprocessing import normalize as l2

    return l2(sp.csr_matrix(matrix, dtype=np.float32))


def _normalize_dense(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Dense rows scaled to unit length (zero rows stay zero), as float32."""
    return _normalize_dense(np.asarray(matrix, dtype=np.float32))


def _positives(interactions: list[Interaction]) -> int:
    """Signals of interest (clicks, likes, tags) among the interactions."""
    return sum(1 for event in interactions if event.weight > 0)
