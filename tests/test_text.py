"""Text normalisation: what readers see, what ingest keeps, comparison keys, hashes, muting."""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from digest.records import Explanation
from digest.text import (
    UNSEEN_CHARS,
    clean_text,
    digest_of,
    display_text,
    normalize,
    phrase_matches,
)

_UNSEEN = re.compile(f"[{UNSEEN_CHARS}]")
#: Any text, with the characters renderers must handle drawn often (st.text() alone
#: never draws a lone surrogate).
HOSTILE_TEXT = st.text(
    st.characters()
    | st.sampled_from("\ud800\udfff\u202e\u2067\u061c\ufeff\ufffe\uffff\x85\x0c\u2028\xa0\t\n")
)


def _xml_char(c: str) -> bool:
    """The XML 1.0 `Char` production."""
    n = ord(c)
    return c in "\t\n\r" or 0x20 <= n <= 0xD7FF or 0xE000 <= n <= 0xFFFD or 0x10000 <= n <= 0x10FFFF


# -- display_text -----------------------------------------------------------------------------


def test_display_text_of_nothing_is_empty() -> None:
    assert display_text(None) == ""
    assert display_text("") == ""
    assert display_text(" \t\n ") == ""


def test_display_text_turns_line_breaks_into_single_spaces() -> None:
    assert display_text("  one\ntwo\r\n\tthree  ") == "one two three"
    # Unicode line and paragraph separators and no-break spaces are whitespace too.
    assert display_text("one\u2028two\u2029three\u00a0four") == "one two three four"


def test_display_text_drops_what_would_reorder_or_hide_text() -> None:
    # U+202E would make "invoice<RLO>fdp.exe" read as "invoiceexe.pdf".
    assert display_text("invoice\u202efdp.exe") == "invoicefdp.exe"
    assert display_text("a\u2066b\u2069c\u200ed\u061ce") == "abcde"
    assert display_text("\ufeffBOM first") == "BOM first"
    assert display_text("a\x00b\x1b[31mc\x85d") == "ab[31mcd"
    assert display_text("broken \ud800 pair") == "broken pair"
    assert display_text("a\ufffeb\uffffc") == "abc"


def test_display_text_keeps_ordinary_unicode_as_written() -> None:
    text = "Schrödinger’s café — ∀x∈ℝ 👩\u200d🔬 تعلم"
    assert display_text(text) == text


@given(HOSTILE_TEXT)
def test_display_text_is_one_clean_line_of_xml_text(text: str) -> None:
    shown = display_text(text)
    assert not _UNSEEN.search(shown)
    assert all(_xml_char(c) for c in shown)
    assert shown == shown.strip()
    assert "  " not in shown
    assert all(c == " " or not c.isspace() for c in shown)
    assert display_text(shown) == shown  # renderers may apply it twice


@given(HOSTILE_TEXT | st.text(st.characters(categories=["L", "M", "N", "P", "S", "Zs"])))
def test_display_text_of_printable_text_only_folds_whitespace(text: str) -> None:
    """The fast path for printable text (every unseen character is unprintable) gives
    what dropping the unseen characters and folding whitespace gives."""
    assert display_text(text) == " ".join(_UNSEEN.sub("", text).split())


@given(st.text(alphabet=st.characters(categories=["L", "N", "P", "S"])))
def test_display_text_leaves_visible_text_alone(text: str) -> None:
    assert display_text(text) == text


# -- clean_text -------------------------------------------------------------------------------


def test_clean_text_keeps_case_and_punctuation_and_collapses_whitespace() -> None:
    assert clean_text("  LLM.int8():\n 8-bit   Matrix\tMultiplication ") == (
        "LLM.int8(): 8-bit Matrix Multiplication"
    )


def test_clean_text_drops_controls_zero_width_and_bidi_marks() -> None:
    assert clean_text("a\x00b\x07c\x7fd\x9fe") == "abcde"
    assert clean_text("zero\u200bwidth\u2060joiner\ufeff") == "zerowidthjoiner"
    assert clean_text("left\u200eright\u200fover\u202eride") == "leftrightoverride"


def test_clean_text_composes_accents() -> None:
    """Decomposed and composed accents must become the same stored text (NFC)."""
    assert clean_text("Schro\u0308dinger") == "Schrödinger" == clean_text("Schrödinger")
    assert len(clean_text("e\u0301")) == 1


@given(st.text())
def test_clean_text_is_idempotent(text: str) -> None:
    once = clean_text(text)
    assert clean_text(once) == once


# -- normalize --------------------------------------------------------------------------------


def test_normalize_folds_case_accents_and_punctuation_but_does_not_stem() -> None:
    assert normalize("Large Language Models!") == "large language models"
    assert normalize("ÉCOLE Naïve Straße") == normalize("ecole naive strasse")
    # Comparison keys are exact words: stemming is the muting matcher's job, not this one's.
    assert normalize("Robotic") != normalize("robot")


def test_normalize_drops_only_a_trailing_repost_marker() -> None:
    assert normalize("Mamba [v12]") == normalize("Mamba")
    assert normalize("[v2] Mamba") == "v2 mamba"  # a leading marker is part of the title


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_normalize_ascii_shortcut_agrees_with_the_general_path(text: str) -> None:
    # A no-break space sends the text down the Unicode path; it normalises to a separator.
    assert normalize(text) == normalize(text + "\u00a0")


@given(st.text())
def test_normalize_is_idempotent_and_yields_single_spaced_words(text: str) -> None:
    key = normalize(text)
    assert normalize(key) == key
    assert key == key.strip() and "  " not in key
    assert key == key.casefold()


# -- digest_of --------------------------------------------------------------------------------


def test_digest_of_is_a_stable_hex_sha1() -> None:
    value = digest_of("Attention Is All You Need", "We propose the Transformer.")
    assert re.fullmatch(r"[0-9a-f]{40}", value)
    assert value == digest_of("Attention Is All You Need", "We propose the Transformer.")


def test_digest_of_depends_on_order_and_on_where_parts_split() -> None:
    assert digest_of("a", "b") != digest_of("b", "a")
    assert digest_of("ab", "c") != digest_of("a", "bc")
    assert digest_of("ab") != digest_of("ab", "")
    assert digest_of() != digest_of("")


def test_digest_of_accepts_lone_surrogates() -> None:
    """Parsers may hand over a lone surrogate: hashing it must not raise, nor equal U+FFFD."""
    assert digest_of("broken \ud800") != digest_of("broken \ufffd")


@given(st.lists(st.text(), max_size=4), st.lists(st.text(), max_size=4))
def test_digest_of_differs_for_different_parts(a: list[str], b: list[str]) -> None:
    # Parts reach it cleaned (no control characters), so the separator cannot occur in them.
    a = [clean_text(p) for p in a]
    b = [clean_text(p) for p in b]
    assert (digest_of(*a) == digest_of(*b)) == (a == b)


# -- phrase_matches ---------------------------------------------------------------------------

TITLES = [
    "Robotic Grasping in Clutter",  # 0
    "ROBOTS everywhere",  # 1
    "A Survey of Robotics",  # 2
    "Rob Otis and the ribbon",  # 3
    "Large Language Models Are Few-Shot Learners",  # 4
    "A language for modelling proofs",  # 5
    "Language Modelling at Scale",  # 6
    "Naïve café tricks",  # 7
]


def test_phrase_matches_is_stemmed_and_case_folded() -> None:
    hits = phrase_matches(TITLES, ["robot", "Language Models", "cafe", "naive"])
    assert hits["robot"] == {0, 1, 2}
    # "language ... modelling" is no phrase; "Language Modelling" stems to one.
    assert hits["Language Models"] == {4, 6}
    assert hits["cafe"] == {7} and hits["naive"] == {7}


def test_phrase_matches_treats_query_syntax_as_words() -> None:
    """A muted topic is plain text: FTS5 operators and quotes neither fail nor widen a match."""
    hits = phrase_matches(TITLES, ['"robot', "robot*", "OR", "AND NOT", "NEAR(rob otis)"])
    assert hits['"robot'] == hits["robot*"] == {0, 1, 2}
    assert hits["OR"] == set() and hits["AND NOT"] == set()
    assert hits["NEAR(rob otis)"] == set()  # as an operator it would match title 3


def test_phrase_matches_skips_phrases_without_words_and_handles_no_texts() -> None:
    assert phrase_matches(TITLES, ["", "!!!", "  "]) == {}
    assert phrase_matches([], ["robot", "??"]) == {"robot": set()}
    assert phrase_matches(TITLES, []) == {}


_ASCII_WORDS = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8), min_size=1, max_size=3
)


@given(_ASCII_WORDS, st.sampled_from([str.lower, str.upper, str.title]))
def test_a_phrase_matches_its_own_text_in_any_case(
    words: list[str], case: Callable[[str], str]
) -> None:
    phrase = " ".join(words)
    assert phrase_matches([f"On {case(phrase)}, again."], [phrase]) == {phrase: {0}}


@given(st.lists(st.text(), max_size=4), st.lists(st.text(), max_size=4))
def test_phrase_matches_never_fails_and_answers_within_the_texts(
    texts: list[str], phrases: list[str]
) -> None:
    hits = phrase_matches(texts, phrases)
    assert set(hits) <= set(phrases)
    assert all(rows <= set(range(len(texts))) for rows in hits.values())


def test_clean_text_drops_every_bidi_control_display_text_drops() -> None:
    # Stored with an isolate inside a word, a title would read "Robotic" yet split into
    # "Ro" and "botic" for search and muting.
    for char in ("\u061c", "\u2066", "\u2067", "\u2068", "\u2069", "\u202e", "\u200f"):
        title = f"Ro{char}botic Grasping"
        assert clean_text(title) == display_text(title) == "Robotic Grasping"


def test_a_muted_word_matches_a_title_hiding_an_isolate_once_cleaned() -> None:
    texts = [clean_text("Ro\u2066botic Grasping in Clutter"), "Graph Networks"]
    assert phrase_matches(texts, ["robot"]) == {"robot": {0}}


@given(HOSTILE_TEXT, HOSTILE_TEXT)
def test_a_reason_is_shown_as_display_text_of_its_text(interest: str, title: str) -> None:
    """`Explanation.shown` is kept on the instance once made: the record still equals
    and hashes as one that never showed it, and pickles to one that shows the same."""
    why = Explanation(interest=interest, because_title=title, terms=("a", title))
    fresh = Explanation(interest=interest, because_title=title, terms=("a", title))
    assert why.shown() == display_text(why.text())
    assert why.shown() is why.shown()
    assert why == fresh and hash(why) == hash(fresh)
    assert pickle.loads(pickle.dumps(why)).shown() == fresh.shown()
