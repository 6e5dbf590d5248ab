"""Text normalisation shared by dedup (comparison keys) and features (tokens)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

_TEX_COMMAND = re.compile(r"\\[a-zA-Z]+\*?")
_TEX_MARKS = re.compile(r"[$^{}]|_(?=\w)")
_HAS_MARKUP = re.compile(r"[\\$^{}_]")
_ASCII_WORD = re.compile(r"[a-z0-9]+")
_NON_WORD = re.compile(r"[^\w]+|_")
# arXiv re-posts append a revision marker ("Title [v2]"): it names a version, not a paper.
_REPOST_MARK = re.compile(r"\s*\[v\d+\]\s*$", re.IGNORECASE)
#: What no reader ever sees, the one rule every renderer (email, feeds, wiki) applies:
#: C0 and C1 controls but the line breaks and tabs that whitespace collapsing turns
#: into spaces, lone surrogates (not encodable, and not XML), bidi embeddings,
#: overrides, isolates and marks, which reorder what a reader sees (U+202E makes
#: "gpj.exe" read as "exe.jpg"), a BOM, and the noncharacters U+FFFE and U+FFFF.
#: What is left is valid XML 1.0 character data.
UNSEEN_CHARS = (
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff"
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff"
)
_UNSEEN = re.compile(f"[{UNSEEN_CHARS}]")
# What ingest drops (`clean_text`): controls, zero-width characters and every bidi
# control `display_text` drops (marks, embeddings, overrides, isolates). A character a
# reader never sees must not split a word for search, muting or dedup either: stored
# as "Ro<U+2066>botic", a title displayed as "Robotic" escaped a mute on "robot". Lone
# surrogates are left to the parsers, which turn them into U+FFFD.
_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


def display_text(text: str | None) -> str:
    """One line of text as a reader is shown it: `UNSEEN_CHARS` dropped, whitespace collapsed.

    Tabs, line breaks (U+2028 and U+2029 too) and other runs of whitespace become
    single spaces and the ends are trimmed; everything else is kept as written.
    """
    if not text:
        return ""
    if text.isprintable():
        # Every unseen character is a control, format, surrogate or noncharacter code
        # point, none of which str.isprintable allows: only whitespace is left to fold.
        return " ".join(text.split())
    # str.split() also splits on U+2028, U+2029 and other Unicode spaces.
    return " ".join(_UNSEEN.sub("", text).split())


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
    import sqlite3  # here: renderers import this module and must not load SQLite

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
