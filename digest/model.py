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
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from digest import __version__, embed, modelfile
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
from digest.records import Explanation
from digest.text import normalize

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
#: A past item less similar than this (TF-IDF cosine) is not offered as the reason.
_MIN_EXPLAIN_SIMILARITY = 0.15


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
        self.item_embed = None  # a refit must not reuse rows aligned with old item ids
        self.vectorizer = make_vectorizer(self.max_features)
        self._terms = None
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
        item_vectors: dict[str, np.ndarray] | None = None,
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
        self._update(
            all_items, interactions, epochs=epochs, item_vectors=item_vectors, partial=True
        )
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
        self._fit_lightfm(
            self._interaction_matrix(interactions), item_features, user_features, epochs
        )
        self._item_features = item_features
        self._history(interactions, tfidf, docs, item_vectors)

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
        self.lightfm.fit_partial(
            matrix,
            user_features=user_features,
            item_features=item_features,
            sample_weight=matrix,
            epochs=epochs,
            num_threads=self.num_threads,
        )

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
            out[missing] = embed.encode([embed_text(docs[n]) for n in missing])
        return out

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

    def prepare(self, items: list[ItemDoc], vectors: dict[str, np.ndarray] | None = None) -> dict:
        """Item-side work for `score`, done once when many reader blocks share the items.

        `vectors` passes stored embeddings by item id, so nothing is encoded twice.
        """
        self._check_fitted()
        tfidf = self.vectorizer.transform([d.text for d in items])
        features = item_feature_matrix(tfidf, items, self.vocab, grow=False, k=self.max_terms)
        vectors = self._embed_items(items, vectors) if self.use_embed else None
        texts = [normalize(f"{d.title} {d.abstract}") for d in items]
        side = self._item_side([d.id for d in items], tfidf, vectors, features, texts)
        side["tfidf"] = sp.csr_matrix(tfidf)
        return side

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

    # -- explanations -------------------------------------------------------------------

    def explain(self, reader: str, prepared: dict, cols: list[int]) -> list[Explanation]:
        """Why each chosen column (of `prepared`'s items) suits a reader.

        Three kinds of evidence, each cheap once `prepared` holds the candidates'
        similarity to every past item: a profile interest found in the item's text,
        the reader's closest past item, and the strongest terms shared with the
        reader's history. A reader with none of these gets the collaborative reason.
        """
        if not cols:
            return []
        closest = self._closest(reader, prepared, cols)
        terms = self._shared_terms(reader, prepared, cols)
        interest = [self._interest(reader, prepared["texts"][c]) for c in cols]
        return [
            Explanation(
                interest=interest[n],
                because_title=self.titles.get(closest[n], "") if closest[n] else None,
                because_id=closest[n],
                terms=tuple(terms[n]),
            )
            for n in range(len(cols))
        ]

    def _interest(self, reader: str, text: str | None) -> str | None:
        info = self.readers_info.get(reader)
        padded = f" {text} " if text else ""
        for phrase in info.interests if info else ():
            if f" {normalize(phrase)} " in padded:
                return phrase
        return None

    def _closest(self, reader: str, prepared: dict, cols: list[int]) -> list[str | None]:
        row = self._reader_row(reader)
        positives = [c for c, w in self.history[row].items() if w > 0] if row is not None else []
        if not positives:
            return [None] * len(cols)
        if "history_sims" not in prepared:
            # Every past item against every candidate, once per ranking: per-reader
            # lookups are then plain indexing instead of a sparse product each.
            sims = (self.item_tfidf @ prepared["tfidf"].T).toarray().astype(np.float32)
            prepared["history_sims"] = sims
        sims = prepared["history_sims"][np.ix_(positives, cols)]
        best = sims.argmax(axis=0)
        return [
            self.item_ids[positives[b]] if sims[b, n] >= _MIN_EXPLAIN_SIMILARITY else None
            for n, b in enumerate(best)
        ]

    def _shared_terms(
        self, reader: str, prepared: dict, cols: list[int], k: int = 3
    ) -> list[list[str]]:
        row = self._reader_row(reader)
        if row is None:
            return [[] for _ in cols]
        tfidf = prepared["tfidf"]
        names = self.terms()
        centroid = self.tfidf_centroid[row].toarray().ravel()
        out = []
        for col in cols:
            start, end = tfidf.indptr[col], tfidf.indptr[col + 1]
            idx = tfidf.indices[start:end]
            weight = tfidf.data[start:end] * centroid[idx]
            order = np.argsort(-weight)[:k]
            out.append([str(names[idx[i]]) for i in order if weight[i] > 0])
        return out

    # -- what the model knows of a reader (for explanations and ranking) -----------------

    def reader_history(self, reader: str) -> dict[str, float]:
        """Item id -> signal weight for a reader's past interactions."""
        row = self._reader_row(reader)
        if row is None:
            return {}
        return {self.item_ids[c]: w for c, w in self.history[row].items()}

    def terms(self) -> np.ndarray:
        """The text vocabulary, by column (computed once: sklearn rebuilds it per call)."""
        if getattr(self, "_terms", None) is None:
            self._terms = self.vectorizer.get_feature_names_out()
        return self._terms

    def similarity(self, prepared: dict) -> np.ndarray:
        """Candidate x candidate text similarity, for diversifying a selection."""
        tfidf = prepared["tfidf"]
        return (tfidf @ tfidf.T).toarray()

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
            "embed_model": embed.MODEL_NAME if self.use_embed else None,
            "scale": {name: list(pair) for name, pair in self.scale.items()},
            "terms": [str(t) for t in self.terms()],
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
        )
        if self.use_embed:
            arrays.update(item_embed=self.item_embed, embed_centroid=self.embed_centroid)
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
        self._terms = None
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
        self.interest_phrases = [
            tuple(normalize(p) for p in self.readers_info.get(r, ReaderInfo(r)).interests)
            for r in self.reader_ids
        ]
        if self.use_embed:
            if header.get("embed_model") != embed.MODEL_NAME:
                raise ModelError(f"{path}: embeddings of another model; retrain")
            self.item_embed = _shaped(path, arrays, "item_embed", (n_items, embed.DIMENSIONS))
            self.embed_centroid = _shaped(
                path, arrays, "embed_centroid", (n_readers, embed.DIMENSIONS)
            )
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
    return out


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


#: Names what `embed_text` feeds the sentence model: a stored vector made from other
#: text is stale (the cache key is the model name and this recipe).
EMBED_RECIPE = "title+abstract:1000c"


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
