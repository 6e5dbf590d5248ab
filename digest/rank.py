"""Per-reader selection: exclusions, muting, diversity (MMR) and explanations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from digest.features import ItemDoc
from digest.model import Recommender
from digest.profiles import ProfileSet
from digest.text import normalize

#: Readers scored per block: bounds memory at (block x candidates) floats per scorer.
BLOCK = 1000
#: Share of relevance (vs. novelty against picks so far) in the MMR trade-off.
DEFAULT_DIVERSITY = 0.3
_VERBS = {"click": "clicked", "like": "liked", "tag": "tagged"}


@dataclass(frozen=True)
class Pick:
    """One selected item for one reader, with a human reason."""

    id: str
    score: float
    why: str
    title: str = ""


@dataclass(frozen=True)
class ReaderDigest:
    """The ranked selection for one reader."""

    user: str
    items: tuple[Pick, ...]

    def to_json(self) -> dict:
        return {
            "user": self.user,
            "items": [{"id": p.id, "score": round(p.score, 4), "why": p.why} for p in self.items],
        }


def rank(
    model: Recommender,
    readers: list[str],
    candidates: list[ItemDoc],
    *,
    profiles: ProfileSet,
    exclude: dict[str, set[str]],
    top: int | None = None,
    diversity: float = DEFAULT_DIVERSITY,
    min_score: float | None = None,
) -> list[ReaderDigest]:
    """Rank `candidates` for each reader.

    Never offers an item in `exclude[reader]` (already sent or acted on), drops items
    matching a muted topic, and re-ranks for diversity. `top` defaults to each
    reader's profile digest size.
    """
    if not candidates:
        return [ReaderDigest(r, ()) for r in readers]
    texts = [f" {normalize(f'{d.title} {d.abstract}')} " for d in candidates]
    tfidf = model.vectorizer.transform([d.text for d in candidates])
    similarity = (tfidf @ tfidf.T).toarray()
    explainer = Explainer(model, candidates, tfidf, texts)
    prepared = model.prepare(candidates)
    out = []
    for start in range(0, len(readers), BLOCK):
        block = readers[start : start + BLOCK]
        scores = model.score(block, candidates, prepared=prepared).blended
        for row, reader in enumerate(block):
            profile = profiles.get(reader)
            allowed = _allowed(candidates, texts, exclude.get(reader, set()), profile.muted)
            if min_score is not None:
                allowed &= scores[row] >= min_score
            size = top or profile.digest_size
            chosen = mmr(scores[row], similarity, allowed, size, diversity)
            reasons = explainer.why(reader, chosen)
            picks = tuple(
                Pick(candidates[c].id, float(scores[row, c]), why, candidates[c].title)
                for c, why in zip(chosen, reasons, strict=True)
            )
            out.append(ReaderDigest(reader, picks))
    return out


def _allowed(
    candidates: list[ItemDoc], texts: list[str], seen: set[str], muted: tuple[str, ...]
) -> np.ndarray:
    mask = np.array([d.id not in seen for d in candidates], dtype=bool)
    for phrase in (normalize(m) for m in muted):
        if phrase:
            mask &= np.array([f" {phrase} " not in t for t in texts], dtype=bool)
    return mask


def mmr(
    scores: np.ndarray, similarity: np.ndarray, allowed: np.ndarray, size: int, diversity: float
) -> list[int]:
    """Maximal marginal relevance: each pick trades score against likeness to earlier picks.

    `diversity` 0 is pure score order; higher values push near-copies of a topic down.
    Scores are standardised first so the trade-off means the same for every reader.
    """
    pool = np.flatnonzero(allowed)
    if len(pool) == 0 or size <= 0:
        return []
    rel = scores[pool]
    rel = (rel - rel.mean()) / (rel.std() or 1.0)
    chosen: list[int] = []
    max_sim = np.zeros(len(pool), dtype=np.float32)
    available = np.ones(len(pool), dtype=bool)
    for _ in range(min(size, len(pool))):
        value = (1 - diversity) * rel - diversity * 3.0 * max_sim
        value[~available] = -np.inf
        best = int(np.argmax(value))
        chosen.append(int(pool[best]))
        available[best] = False
        max_sim = np.maximum(max_sim, similarity[pool[best], pool])
    return chosen


class Explainer:
    """Short reasons: a matched interest, the closest past item, the strongest shared terms."""

    def __init__(
        self, model: Recommender, candidates: list[ItemDoc], tfidf: sp.csr_matrix, texts: list[str]
    ):
        self.model = model
        self.candidates = candidates
        self.tfidf = sp.csr_matrix(tfidf)
        self.texts = texts
        self.terms = model.terms()
        # Every past item against every candidate, once: per-reader lookups are then
        # plain array indexing instead of a sparse product per reader.
        self.history_sims = (model.item_tfidf @ self.tfidf.T).toarray().astype(np.float32)

    def why(self, reader: str, cols: list[int]) -> list[str]:
        """One line per chosen column; parts joined with '; '.

        Computed per reader for all its picks at once: one sparse product each for the
        closest past item and the shared terms.
        """
        if not cols:
            return []
        closest = self._closest(reader, cols)
        terms = self._shared_terms(reader, cols)
        out = []
        for n, col in enumerate(cols):
            parts = []
            interest = self._interest(reader, col)
            if interest:
                parts.append(f"matches your interest '{interest}'")
            if closest[n]:
                parts.append(closest[n])
            if terms[n]:
                parts.append("shared terms: " + ", ".join(terms[n]))
            out.append("; ".join(parts) or "readers with similar interests read papers like this")
        return out

    def _interest(self, reader: str, col: int) -> str | None:
        info = self.model.readers_info.get(reader)
        for phrase in info.interests if info else ():
            if f" {normalize(phrase)} " in self.texts[col]:
                return phrase
        return None

    def _closest(self, reader: str, cols: list[int]) -> list[str | None]:
        row = self.model.reader_index.get(reader)
        positives = (
            [c for c, w in self.model.history[row].items() if w > 0] if row is not None else []
        )
        if not positives:
            return [None] * len(cols)
        sims = self.history_sims[np.ix_(positives, cols)]
        best = sims.argmax(axis=0)
        out: list[str | None] = []
        for n, b in enumerate(best):
            if sims[b, n] < 0.15:
                out.append(None)
                continue
            title = self.model.titles.get(self.model.item_ids[positives[b]], "")
            out.append(f"because you read '{_shorten(title)}'")
        return out

    def _shared_terms(self, reader: str, cols: list[int], k: int = 3) -> list[list[str]]:
        row = self.model.reader_index.get(reader)
        if row is None:
            return [[] for _ in cols]
        centroid = self.model.tfidf_centroid[row].toarray().ravel()
        out = []
        for col in cols:
            start, end = self.tfidf.indptr[col], self.tfidf.indptr[col + 1]
            idx = self.tfidf.indices[start:end]
            weight = self.tfidf.data[start:end] * centroid[idx]
            order = np.argsort(-weight)[:k]
            out.append([str(self.terms[idx[i]]) for i in order if weight[i] > 0])
        return out


def _shorten(title: str, limit: int = 70) -> str:
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"
