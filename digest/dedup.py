"""Recognising the same paper across days and sources.

Every record gets *exact* keys (arXiv id, DOI, normalised URL, normalised title, title
and abstract together, normalised abstract) and *blocking* keys (the first and last
words of the title and of the abstract). Blocking keys only find candidates, which must
then pass a fuzzy comparison. The caller supplies the key lookup, so this module never
touches the database.

Merging two different papers is worse than keeping a duplicate, so only an arXiv id or
a DOI decides alone. Any other key, and any fuzzy match, also needs the two records not
to contradict each other:

- the numbers, ordinals, versions and roman numerals of the titles agree ("Gemma 2" is
  not "Gemma 3", "Part I" is not "Part II");
- when both have an abstract, the abstracts agree (a generic title such as
  "Introduction" says nothing about which paper it is);
- the words that tell the titles apart do not also tell the abstracts apart (the same
  abstract template about another subject);
- an abstract that decides must mention what tells the two titles apart (boilerplate
  such as "This paper was presented at ..." does not).

A near title also needs abstracts long enough to vouch for it, or else to differ from the
other title only by respellings: "... for Vision" and "... for Speech" are two papers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher

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
#: Abstracts agree when this share of the shorter one's words recur, in order, in the other
#: (a typo, an added sentence or a truncated feed excerpt pass; unrelated ML abstracts
#: of the seed dumps share at most 0.35).
ABSTRACT_AGREEMENT = 0.8
#: ... and at most one word in this many was replaced by a different word (not a respelling):
#: a template about another subject ("... on robotics" / "... on healthcare") disagrees.
WORDS_PER_REPLACEMENT = 40
#: A changed span this similar (rapidfuzz ratio) is a respelling: typo, plural, hyphen.
RESPELLING = 75.0
#: An abstract is about a title when it mentions this share of the title's content words
#: (every seed paper mentions at least one in six; most mention more than half).
TITLE_SUPPORT = 1 / 3
_BLOCK_WORDS = 4
_ABSTRACT_BLOCK_WORDS = 12

#: Words that may appear or vanish in an edited title, and that never name a subject.
_FILLER = frozenset({
    "a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "of", "on", "or",
    "over", "the", "to", "toward", "towards", "under", "via", "with", "without", "using",
    "is", "are", "be", "can", "do", "does", "how", "what", "when", "why", "we", "you",
    "your", "all", "its", "it", "this", "that", "these", "those", "new"
})  # fmt: skip
#: A number and the one letter of a unit after it: "7b" (not "7m"), "4o" (not "4"); a longer
#: suffix is a word or an ordinal ("2bit" as "2 bit", "2nd" as "second").
_NUMBER = re.compile(r"(\d+)([a-z](?![a-z]))?")
#: A number alone, as an ordinal or as a version: "2", "2nd", "v2".
_PLAIN_NUMBER = re.compile(r"v?\d+(?:st|nd|rd|th)?")
_NUMBER_WORDS = {
    "one": "1", "first": "1", "two": "2", "second": "2", "three": "3", "third": "3",
    "four": "4", "fourth": "4", "five": "5", "fifth": "5", "six": "6", "sixth": "6",
    "seven": "7", "seventh": "7", "eight": "8", "eighth": "8", "nine": "9", "ninth": "9",
    "ten": "10", "tenth": "10", "eleven": "11", "eleventh": "11", "twelve": "12",
    "twelfth": "12",
}  # fmt: skip
#: Roman numerals of two letters or more are numerals wherever they stand.
_ROMAN = {
    "ii": "2", "iii": "3", "iv": "4", "vi": "6", "vii": "7", "viii": "8", "ix": "9",
    "xi": "11", "xii": "12", "xiii": "13", "xiv": "14", "xv": "15", "xvi": "16",
    "xvii": "17", "xviii": "18", "xix": "19", "xx": "20",
}  # fmt: skip
#: "I", "V" and "X" are also a pronoun and letters ("Can I ...", "X-ray"): numerals only
#: after a series word or closing a title of two words or more.
_SHORT_ROMAN = {"i": "1", "v": "5", "x": "10"}
_MARKER_WORDS = frozenset(_NUMBER_WORDS) | frozenset(_ROMAN)
#: Words after which a number or a letter names one of a series ("Part B", "Phase I").
_SERIES = frozenset({
    "part", "parts", "volume", "vol", "chapter", "book", "phase", "stage", "level", "tier",
    "series", "section", "appendix", "episode", "season", "round", "step", "type",
    "lecture", "lesson", "study", "experiment", "task", "track", "edition", "release",
    "version", "generation", "gen"
})  # fmt: skip


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
    """Compute the comparison keys of a record.

    The `text:` key (title and abstract together) lets a record reach its own item even
    when another paper with the same generic title owns the `title:` key.
    """
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
    if abstract:
        exact.append(f"text:{_short(title + chr(31) + abstract)}")
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


def find_match(
    fp: Fingerprint,
    lookup: Callable[[Iterable[str]], dict[str, str]],
    load: Callable[[Iterable[str]], list[Candidate]],
) -> Match | None:
    """Find the existing item that `fp` duplicates, if any.

    `lookup(keys)` maps known keys to item ids; `load(ids)` returns candidates. An exact
    key whose item contradicts `fp` does not decide; the next key, then the fuzzy
    comparison, still may.
    """
    known = lookup(fp.exact + fp.blocking)
    if not known:
        return None
    ids = sorted(set(known.values()))
    candidates = {c.item_id: c for c in load(ids)}
    for key in fp.exact:
        item_id = known.get(key)
        cand = candidates.get(item_id) if item_id else None
        kind = key.split(":", 1)[0]
        if cand and _exact_key_decides(kind, fp, cand):
            return Match(cand.item_id, "exact " + kind)
    return _near_match(fp, [candidates[i] for i in ids if i in candidates])


def _exact_key_decides(kind: str, fp: Fingerprint, cand: Candidate) -> bool:
    """Whether sharing an exact key of this kind with `cand` makes `fp` the same paper."""
    if _conflicting_ids(fp, cand):
        return False
    if kind in ("arxiv", "doi"):
        return True
    if _contradicts(fp, cand):
        return False
    return kind != "abstract" or _abstract_is_about_both(fp, cand)


def _near_match(fp: Fingerprint, candidates: list[Candidate]) -> Match | None:
    best: Match | None = None
    for cand in candidates:
        match = _compare(fp, cand)
        if match and (best is None or match.score > best.score):
            best = match
    return best


def _compare(fp: Fingerprint, cand: Candidate) -> Match | None:
    """The fuzzy decision: a near title, or a near abstract about both titles."""
    if _conflicting_ids(fp, cand) or _contradicts(fp, cand):
        return None
    score = fuzz.ratio(fp.title, cand.title)
    # Abstracts long enough to compare agree (else a contradiction), which vouches for a
    # one-word title change; without them, only a respelling of the title counts.
    vouched = _comparable_abstracts(fp.abstract, cand.abstract)
    if score >= TITLE_SIMILARITY and (vouched or _only_respelt(fp.title, cand.title)):
        return Match(cand.item_id, "near title", round(score, 1))
    if _comparable_abstracts(fp.abstract, cand.abstract) and _abstract_is_about_both(fp, cand):
        score = fuzz.ratio(fp.abstract, cand.abstract)
        if score >= ABSTRACT_SIMILARITY:
            return Match(cand.item_id, "near abstract", round(score, 1))
    return None


def _comparable_abstracts(a: str, b: str) -> bool:
    return len(a) >= MIN_ABSTRACT and len(b) >= MIN_ABSTRACT


# -- what keeps two records apart ---------------------------------------------------------


def _conflicting_ids(fp: Fingerprint, other: Candidate) -> bool:
    """Two records carrying different arXiv ids or DOIs are different papers."""
    if fp.arxiv_id and other.arxiv_id and fp.arxiv_id != other.arxiv_id:
        return True
    return bool(fp.doi and other.doi and fp.doi != other.doi)


def _contradicts(fp: Fingerprint, cand: Candidate) -> bool:
    """Evidence, short of an identifier, that two records are different papers."""
    if title_markers(fp.title) != title_markers(cand.title):
        return True
    if fp.abstract and cand.abstract and not abstracts_agree(fp.abstract, cand.abstract):
        return True
    return _swapped_subject(fp, cand)


def title_markers(title: str) -> tuple[str, ...]:
    """The numbers, ordinals, versions and series letters of a normalised title, sorted.

    "Gemma 2" gives ("2",), "Llama-2 7B" ("2", "7b"), "Part II", "Part 2" and "Second
    Part" all ("2",), "Part B" ("b",). Titles whose markers differ name different papers
    however close the rest is.
    """
    words = title.split()
    found: list[str] = []
    for i, word in enumerate(words):
        if len(word) > 1 and word.isalpha() and word not in _MARKER_WORDS:
            continue  # an ordinary word: the common case, kept cheap
        in_series = i > 0 and words[i - 1] in _SERIES
        found.extend(_word_markers(word, in_series, last=0 < i == len(words) - 1))
    return tuple(sorted(found))


def _word_markers(word: str, in_series: bool, last: bool) -> list[str]:
    if not word.isalpha():  # normalised words are letters and digits: "7b", "v2", "2nd"
        return [str(int(number)) + unit for number, unit in _NUMBER.findall(word)]
    marker = _NUMBER_WORDS.get(word) or _ROMAN.get(word)
    if marker:
        return [marker]
    if len(word) == 1 and (in_series or (last and word in _SHORT_ROMAN)):
        return [_SHORT_ROMAN.get(word, word)]
    return []


def abstracts_agree(a: str, b: str) -> bool:
    """Whether two normalised abstracts are one text up to edits.

    Typos, respellings, an added or dropped sentence and a truncated excerpt are edits;
    words replaced by other words are allowed only rarely, so one abstract template
    about two subjects does not agree with itself.
    """
    if a == b:
        return True
    wa, wb = a.split(), b.split()
    spans = _changed_spans(wa, wb)
    kept = len(wa) - sum(len(old) for old, _ in spans)  # words a shares with b, in order
    replaced = 0
    for old, new in spans:
        if _respelt(old, new) or _cut_word(old, new):
            kept += min(len(old), len(new))
        elif old and new:
            replaced += min(len(old), len(new))  # the rest were added or dropped
    # An excerpt agrees with the text it was cut from, but a sentence or two is too
    # little to tell: a short abstract must agree with the whole of the other.
    shorter, longer = sorted((len(wa), len(wb)))
    covered = shorter if min(len(a), len(b)) >= MIN_ABSTRACT else longer
    return kept >= ABSTRACT_AGREEMENT * covered and replaced <= shorter // WORDS_PER_REPLACEMENT


def _cut_word(old: list[str], new: list[str]) -> bool:
    """An excerpt cut inside a word: "... on langu" against "... on language modelling"."""
    if len(old) == 1 and new:
        return new[0].startswith(old[0])
    return len(new) == 1 and bool(old) and old[0].startswith(new[0])


def _swapped_subject(fp: Fingerprint, cand: Candidate) -> bool:
    """The words that tell the titles apart also tell the abstracts apart, on both sides.

    That is one template about two subjects ("CodeBench-Python" / "CodeBench-Java"); a
    title edit leaves the abstract alone, and a typo is in one title only.
    """
    if not (fp.abstract and cand.abstract) or fp.abstract == cand.abstract:
        return False  # (the common case of a repeat stops here)
    title_a, title_b = _subject_words(fp.title), _subject_words(cand.title)
    if title_a == title_b:
        return False
    text_a, text_b = set(fp.abstract.split()), set(cand.abstract.split())
    own_a = (title_a - title_b) & (text_a - text_b)
    own_b = (title_b - title_a) & (text_b - text_a)
    return bool(own_a and own_b)


def _subject_words(title: str) -> set[str]:
    """Words that can name a subject (numbers and versions are markers, checked apart)."""
    return {w for w in title.split() if len(w) >= 3 and w.isalpha() and w not in _FILLER}


def _abstract_is_about_both(fp: Fingerprint, cand: Candidate) -> bool:
    """An abstract decides only if it speaks of what tells the two titles apart.

    A renamed paper's abstract mentions the words of its old and new title alike;
    boilerplate ("This paper was presented at ...") mentions neither, even when both
    titles share a word with it ("Machine Learning for X" / "Machine Learning for Y").
    """
    words_a, words_b = _content_words(fp.title), _content_words(cand.title)
    return _is_about(fp.abstract, words_a - words_b) and _is_about(cand.abstract, words_b - words_a)


def _content_words(title: str) -> set[str]:
    return {w for w in title.split() if len(w) >= 3 and w not in _FILLER}


def _is_about(abstract: str, words: set[str]) -> bool:
    """Whether the abstract mentions enough of these words (a shared 5-letter stem counts)."""
    if not words:
        return True
    stems = {w[:k] for w in abstract.split() for k in (3, 4, 5)}
    mentioned = sum(1 for w in words if w[:5] in stems)
    return mentioned >= TITLE_SUPPORT * len(words)


def _only_respelt(a: str, b: str) -> bool:
    """Whether two titles differ only by respellings and filler words.

    Without abstracts to vouch, "... for Vision" and "... for Speech" are two papers,
    while "Capacity Factors" and "Capacity Factor" are one.
    """
    for old, new in _changed_spans(a.split(), b.split()):
        if not (_respelt(old, new) or _all_filler(old + new) or _renumbered(old, new)):
            return False
    return True


def _all_filler(words: list[str]) -> bool:
    return all(w in _FILLER for w in words)


def _renumbered(old: list[str], new: list[str]) -> bool:
    """A number spelt another way ("Second" / "2nd", "II" / "2"); the markers agree."""
    return bool(old and new) and all(_is_number_word(w) for w in old + new)


def _is_number_word(word: str) -> bool:
    return bool(_PLAIN_NUMBER.fullmatch(word)) or word in _MARKER_WORDS or word in _SHORT_ROMAN


def _respelt(old: list[str], new: list[str]) -> bool:
    """Whether a changed span is the same words respelt (typo, plural, hyphenation)."""
    if not (old and new):
        return False
    a, b = " ".join(old), " ".join(new)
    return a.replace(" ", "") == b.replace(" ", "") or fuzz.ratio(a, b) >= RESPELLING


def _changed_spans(a: list[str], b: list[str]) -> list[tuple[list[str], list[str]]]:
    """The spans where two word lists differ, as (words of a, words of b)."""
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    return [(a[i1:i2], b[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def item_id_for(fp: Fingerprint) -> str:
    """A stable item id derived from the canonical key of the first record seen."""
    return "p" + digest_of(fp.canonical_key)[:15]
