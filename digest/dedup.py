"""Recognising the same paper across days and sources.

Every record gets *exact* keys (arXiv id, DOI, normalised URL, normalised title,
normalised abstract) and *blocking* keys (the first and last words of the title and
of the abstract). Exact keys decide on their own; blocking keys only find candidates,
which must then pass a fuzzy comparison. The caller supplies the key lookup, so this
module never touches the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rapidfuzz import fuzz

from digest.links import normalize_url
from digest.records import ItemRecord
from digest.text import digest_of, normalize

#: Titles this similar (0-100, rapidfuzz ratio on the normalised form) are one paper.
TITLE_SIMILARITY = 90.0
#: Abstracts this similar are one paper even if the title changed.
ABSTRACT_SIMILARITY = 90.0
#: Abstracts shorter than this (normalised characters) are too generic to match on.
MIN_ABSTRACT = 120
#: With near titles, abstracts must still share this much vocabulary (token-set ratio).
ABSTRACT_AGREEMENT = 60.0
_BLOCK_WORDS = 4
_ABSTRACT_BLOCK_WORDS = 12


@dataclass(frozen=True)
class Fingerprint:
    """The comparison form of one record."""

    title: str
    abstract: str
    arxiv_id: str | None
    doi: str | None
    exact: tuple[str, ...]
    blocking: tuple[str, ...]
    #: Hash of the normalised title and abstract (computed here, in the parsing worker).
    content_hash: str = ""

    @property
    def canonical_key(self) -> str:
        """The strongest exact key: arXiv id, then DOI, then URL, then title."""
        return self.exact[0]


@dataclass(frozen=True)
class Candidate:
    """What the store knows of an existing item, for a fuzzy comparison."""

    item_id: str
    title: str
    abstract: str
    arxiv_id: str | None
    doi: str | None


@dataclass(frozen=True)
class Match:
    """An existing item a record duplicates, and why."""

    item_id: str
    reason: str
    score: float = 100.0


def fingerprint(record: ItemRecord) -> Fingerprint:
    """Compute the comparison keys of a record."""
    title = normalize(record.title)
    abstract = normalize(record.abstract)
    exact: list[str] = []
    if record.arxiv_id:
        exact.append(f"arxiv:{record.arxiv_id}")
    if record.doi:
        exact.append(f"doi:{record.doi}")
    url = normalize_url(record.url)
    if url and not url.startswith("arxiv.org/abs/"):
        exact.append(f"url:{url}")
    exact.append(f"title:{_short(title)}")
    if len(abstract) >= MIN_ABSTRACT:
        exact.append(f"abstract:{_short(abstract)}")
    return Fingerprint(
        title=title,
        abstract=abstract,
        arxiv_id=record.arxiv_id,
        doi=record.doi,
        exact=tuple(exact),
        blocking=_blocking_keys(title, abstract),
        content_hash=digest_of(title, abstract),
    )


def _short(text: str) -> str:
    """A 64-bit hash: keys stay small, collisions stay negligible below billions."""
    return digest_of(text)[:16]


def _blocking_keys(title: str, abstract: str) -> tuple[str, ...]:
    keys = []
    words = title.split()
    if len(words) > _BLOCK_WORDS:
        keys.append("tb:" + _short(" ".join(words[:_BLOCK_WORDS])))
        keys.append("te:" + _short(" ".join(words[-_BLOCK_WORDS:])))
    awords = abstract.split()
    if len(abstract) >= MIN_ABSTRACT and len(awords) >= _ABSTRACT_BLOCK_WORDS + 4:
        keys.append("ab:" + _short(" ".join(awords[:_ABSTRACT_BLOCK_WORDS])))
        keys.append("ae:" + _short(" ".join(awords[-_ABSTRACT_BLOCK_WORDS:])))
    return tuple(keys)


def _conflicting_ids(fp: Fingerprint, other: Candidate) -> bool:
    """Two records carrying different arXiv ids or DOIs are different papers."""
    if fp.arxiv_id and other.arxiv_id and fp.arxiv_id != other.arxiv_id:
        return True
    return bool(fp.doi and other.doi and fp.doi != other.doi)


def find_match(
    fp: Fingerprint,
    lookup: Callable[[Iterable[str]], dict[str, str]],
    load: Callable[[Iterable[str]], list[Candidate]],
) -> Match | None:
    """Find the existing item that `fp` duplicates, if any.

    `lookup(keys)` maps known keys to item ids; `load(ids)` returns candidates.
    """
    known = lookup(fp.exact + fp.blocking)
    if not known:
        return None
    ids = sorted(set(known.values()))
    candidates = {c.item_id: c for c in load(ids)}
    for key in fp.exact:
        item_id = known.get(key)
        cand = candidates.get(item_id) if item_id else None
        if cand and not _conflicting_ids(fp, cand):
            return Match(item_id, "exact " + key.split(":", 1)[0])
    return _near_match(fp, [candidates[i] for i in ids if i in candidates])


def _near_match(fp: Fingerprint, candidates: list[Candidate]) -> Match | None:
    best: Match | None = None
    for cand in candidates:
        if not _conflicting_ids(fp, cand):
            match = _compare(fp, cand)
            if match and (best is None or match.score > best.score):
                best = match
    return best


def _compare(fp: Fingerprint, cand: Candidate) -> Match | None:
    both_abstracts = _comparable_abstracts(fp.abstract, cand.abstract)
    score = fuzz.ratio(fp.title, cand.title)
    if score >= TITLE_SIMILARITY:
        # A near-identical title over an unrelated abstract is a different paper
        # ("... for vision" vs "... for speech" with a one-word edit).
        if both_abstracts and fuzz.token_set_ratio(fp.abstract, cand.abstract) < ABSTRACT_AGREEMENT:
            return None
        return Match(cand.item_id, "near title", round(score, 1))
    if both_abstracts:
        score = fuzz.ratio(fp.abstract, cand.abstract)
        if score >= ABSTRACT_SIMILARITY:
            return Match(cand.item_id, "near abstract", round(score, 1))
    return None


def _comparable_abstracts(a: str, b: str) -> bool:
    return len(a) >= MIN_ABSTRACT and len(b) >= MIN_ABSTRACT


def item_id_for(fp: Fingerprint) -> str:
    """A stable item id derived from the canonical key of the first record seen."""
    return "p" + digest_of(fp.canonical_key)[:15]
