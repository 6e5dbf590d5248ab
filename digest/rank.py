"""Per-audience selection: exclusions, muting, diversity (MMR) and explanations.

Candidates come in as `StoredItem`s and leave as `ReaderDigest`s of `Pick`s, so
the renderers downstream need nothing else: no store, no model, no numpy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import date

import numpy as np

from digest.features import doc_of
from digest.model import Recommender
from digest.profiles import ProfileSet, Team
from digest.records import Explanation, Pick, ReaderDigest, StoredItem
from digest.text import phrase_matches

#: Readers scored per block: bounds memory at (block x candidates) floats per scorer.
BLOCK = 1000
#: Share of relevance (vs. novelty against picks so far) in the MMR trade-off.
DEFAULT_DIVERSITY = 0.3
#: Items in a team post when the team file does not say.
TEAM_SIZE = 10


class Ranking:
    """One day's candidates, prepared once and ranked for any number of audiences."""

    def __init__(
        self,
        model: Recommender,
        candidates: Sequence[StoredItem],
        *,
        profiles: ProfileSet,
        exclude: dict[str, set[str]],
        day: date,
        diversity: float = DEFAULT_DIVERSITY,
        min_score: float | None = None,
        vectors: dict[str, np.ndarray] | None = None,
    ):
        """`vectors`: stored embeddings of the candidates, so none is encoded here."""
        self.model = model
        self.candidates = list(candidates)
        self.profiles = profiles
        self.exclude = exclude
        self.day = day
        self.diversity = diversity
        self.min_score = min_score
        # A day with no candidates ranks nothing (and the model has nothing to prepare).
        self._column = {item.id: col for col, item in enumerate(self.candidates)}
        docs = [doc_of(i) for i in self.candidates]
        self.prepared = model.prepare(docs, vectors) if candidates else {}
        self.similarity = model.similarity(self.prepared) if self.candidates else None
        #: Team members' blended scores, kept as their digests are ranked: a team post
        #: reuses them instead of scoring its members again.
        self._rows: dict[str, np.ndarray] = {}
        self._members = {m for team in profiles.teams.values() for m in team.members}
        muted = {m for p in profiles.readers.values() for m in p.muted}
        texts = [f"{i.title}\n{i.abstract}" for i in self.candidates]
        self._muted_hits = phrase_matches(texts, muted)

    def readers(self, readers: Sequence[str], top: int | None = None) -> Iterator[ReaderDigest]:
        """Each reader's digest, scored in blocks; `top` overrides profile sizes."""
        for start in range(0, len(readers), BLOCK):
            block = list(readers[start : start + BLOCK])
            scores = self._scores(block)
            self._rows.update(
                (r, s) for r, s in zip(block, scores, strict=True) if r in self._members
            )
            chosen = []
            for row, reader in enumerate(block):
                profile = self.profiles.get(reader)
                size = top or profile.digest_size
                allowed = self._allowed(reader, profile.muted, scores[row])
                chosen.append(self._select(scores[row], allowed, size))
            # No picks at all (a day without candidates): nothing to explain, and the
            # model may not even be loaded.
            reasons = (
                self.model.explain_all(block, self.prepared, chosen)
                if any(chosen)
                else [[] for _ in block]
            )
            for row, reader in enumerate(block):
                yield self._digest(reader, scores[row], chosen[row], reasons[row])

    def team(self, team: Team, size: int | None = None) -> ReaderDigest:
        """A team's post: items ranked by the members' mean score, with who each suits.

        A member is named for an item when it is among that member's own top
        `digest_size` candidates: the post says whom to send each paper to.
        """
        audience = f"team:{team.name}"
        members = [m for m in team.members]
        if not self.candidates or not members:
            return ReaderDigest(audience, self.day, ())
        scores = self._member_scores(members)
        mean = scores.mean(axis=0)
        allowed = self._allowed(audience, (), mean)
        chosen = self._select(mean, allowed, size or team.digest_size or TEAM_SIZE)
        suits = self._suits(members, scores)
        lead = np.argmax(scores, axis=0)  # the member whose reason explains the pick
        picks = []
        for rank, col in enumerate(chosen, 1):
            reader = members[int(lead[col])]
            why = replace(self.model.explain(reader, self.prepared, [col])[0], reader=reader)
            names = tuple(m for m in members if col in suits[m])
            picks.append(Pick(self.candidates[col], rank, float(mean[col]), why, names))
        return ReaderDigest(audience, self.day, tuple(picks))

    def _suits(self, members: list[str], scores: np.ndarray) -> dict[str, set[int]]:
        out = {}
        for row, member in enumerate(members):
            size = self.profiles.get(member).digest_size
            allowed = self._allowed(member, self.profiles.get(member).muted, scores[row])
            order = [c for c in np.argsort(-scores[row], kind="stable") if allowed[c]]
            out[member] = {int(c) for c in order[:size]}
        return out

    def _member_scores(self, members: list[str]) -> np.ndarray:
        """The members' score rows: those ranked already reused, the rest scored now."""
        missing = [m for m in dict.fromkeys(members) if m not in self._rows]
        if missing:
            self._rows.update(zip(missing, self._scores(missing), strict=True))
        return np.vstack([self._rows[m] for m in members])

    def _scores(self, readers: list[str]) -> np.ndarray:
        if not self.candidates:
            return np.zeros((len(readers), 0), dtype=np.float32)
        return self.model.score(readers, [], prepared=self.prepared).blended

    def _allowed(self, audience: str, muted: Sequence[str], scores: np.ndarray) -> np.ndarray:
        seen = self.exclude.get(audience, ())
        mask = np.ones(len(self.candidates), dtype=bool)
        if len(seen) < len(self.candidates):
            mask[[self._column[i] for i in seen if i in self._column]] = False
        else:
            mask[[c for c, item in enumerate(self.candidates) if item.id in seen]] = False
        for phrase in muted:
            for col in self._muted_hits.get(phrase, ()):
                mask[col] = False
        if self.min_score is not None:
            mask &= scores >= self.min_score
        return mask

    def _select(self, scores: np.ndarray, allowed: np.ndarray, size: int) -> list[int]:
        if self.similarity is None:
            return []
        return mmr(scores, self.similarity, allowed, size, self.diversity)

    def _digest(
        self, audience: str, scores: np.ndarray, chosen: list[int], reasons: list[Explanation]
    ) -> ReaderDigest:
        picks = tuple(
            Pick(self.candidates[c], rank, float(scores[c]), why)
            for rank, (c, why) in enumerate(zip(chosen, reasons, strict=True), 1)
        )
        return ReaderDigest(audience, self.day, picks)


def rank(
    model: Recommender,
    readers: Sequence[str],
    candidates: Sequence[StoredItem],
    *,
    profiles: ProfileSet,
    exclude: dict[str, set[str]],
    day: date,
    top: int | None = None,
    diversity: float = DEFAULT_DIVERSITY,
    min_score: float | None = None,
) -> list[ReaderDigest]:
    """Rank `candidates` for each reader.

    Never offers an item in `exclude[reader]` (already sent or acted on), drops items
    matching a muted topic (stemmed, as search matches), and re-ranks for diversity.
    `top` defaults to each reader's profile digest size.
    """
    ranking = Ranking(
        model, candidates, profiles=profiles, exclude=exclude, day=day,
        diversity=diversity, min_score=min_score,
    )  # fmt: skip
    return list(ranking.readers(readers, top))


def mmr(
    scores: np.ndarray, similarity: np.ndarray, allowed: np.ndarray, size: int, diversity: float
) -> list[int]:
    """Maximal marginal relevance: each pick trades score against likeness to earlier picks.

    `diversity` 0 is pure score order; higher values push near-copies of a topic down.
    Scores are standardised first so the trade-off means the same for every reader.
    Similarities are cosines (at most 1), so an item whose relevance trails the
    `size`-th best by more than the largest possible penalty can never be picked:
    such items are left out before the loop, which changes no pick and saves most of
    the work on a day with many candidates.
    """
    pool = np.flatnonzero(allowed)
    if len(pool) == 0 or size <= 0:
        return []
    rel = scores[pool]
    rel = (rel - rel.mean()) / (rel.std() or 1.0)
    picks = min(size, len(pool))
    if diversity < 1 and len(pool) > picks:
        margin = 3.0 * diversity / (1 - diversity) * (1 + 1e-6)
        cut = np.partition(rel, len(rel) - picks)[len(rel) - picks] - margin
        keep = rel >= cut
        pool, rel = pool[keep], rel[keep]
    base = (1 - diversity) * rel
    weight = diversity * 3.0
    max_sim = np.zeros(len(pool), dtype=np.float32)
    chosen: list[int] = []
    for _ in range(picks):
        value = base - weight * max_sim
        best = int(np.argmax(value))
        chosen.append(int(pool[best]))
        base[best] = -np.inf
        np.maximum(max_sim, similarity[pool[best], pool], out=max_sim)
    return chosen
