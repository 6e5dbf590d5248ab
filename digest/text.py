"""Text normalisation shared by dedup (comparison keys) and features (tokens)."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import unicodedata
from collections.abc import Iterable

_TEX_COMMAND = re.compile(r"\\[a-zA-Z]+\*?")
_TEX_MARKS = re.compile(r"[$^{}]|_(?=\w)")
_HAS_MARKUP = re.compile(r"[\\$^{}_]")
_ASCII_WORD = re.compile(r"[a-z0-9]+")
_NON_WORD = re.compile(r"[^\w]+|_")
# arXiv re-posts append a revision marker ("Title [v2]"): it names a version, not a paper.
_REPOST_MARK = re.compile(r"\s*\[v\d+\]\s*$", re.IGNORECASE)
# Control and invisible format characters (C0/C1 controls, zero-width and bidi marks).
_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]"
)


def clean_text(text: str) -> str:
    """Collapse whitespace and drop control characters; keeps case and punctuation."""
    text = text or ""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return " ".join(_CONTROL.sub("", text).split())


def normalize(text: str) -> str:
    """A comparison form: NFKC, case-folded, accents, TeX markup and punctuation removed.

    `$O(n^2)$`, `O(n²)` and `O(n^2)` compare equal; `H_2O` equals `H2O`. A trailing
    arXiv re-post marker is dropped (`Title [v2]` equals `Title`), here rather than in
    dedup alone, because the store rebuilds dedup candidates from raw titles with this
    function and both sides must agree.
    """
    text = text or ""
    if text.rstrip().endswith("]"):
        text = _REPOST_MARK.sub("", text)
    ascii_only = text.isascii()
    if ascii_only and not _HAS_MARKUP.search(text):
        # The common case, about 3x faster: plain ASCII words.
        return " ".join(_ASCII_WORD.findall(text.lower()))
    if not ascii_only:
        text = unicodedata.normalize("NFKC", text)
    if "\\" in text:
        text = _TEX_COMMAND.sub(" ", text)
    text = _TEX_MARKS.sub("", text).casefold()
    if not ascii_only:
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(_NON_WORD.sub(" ", text).split())


def digest_of(*parts: str) -> str:
    """A short stable hash of some text parts (used for ids and content hashes)."""
    h = hashlib.sha1()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()


_WORD = re.compile(r"[^\W_]+")


def phrase_matches(texts: list[str], phrases: Iterable[str]) -> dict[str, set[int]]:
    """For each phrase, the indexes of the texts that hold it, matched as search matches.

    Muting must agree with `digest items --search`: case-folded and stemmed, so a
    reader who mutes "language model" never gets "Large Language Models", and one
    who mutes "robot" never gets "Robotic Grasping". The texts go through the same
    SQLite FTS5 porter tokenizer as the store's search index (in memory, so nothing
    touches the database); a phrase of several words must appear as a phrase.
    """
    wanted = {p: _WORD.findall(p) for p in set(phrases)}
    wanted = {p: words for p, words in wanted.items() if words}
    if not wanted or not texts:
        return {p: set() for p in wanted}
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(body, tokenize='porter')")
        conn.executemany("INSERT INTO t (rowid, body) VALUES (?, ?)", enumerate(texts))
        return {
            phrase: {
                row[0]
                for row in conn.execute(
                    "SELECT rowid FROM t WHERE t MATCH ?", ('"' + " ".join(words) + '"',)
                )
            }
            for phrase, words in wanted.items()
        }
    finally:
        conn.close()
