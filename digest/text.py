"""Text normalisation shared by dedup (comparison keys) and features (tokens)."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_TEX_COMMAND = re.compile(r"\\[a-zA-Z]+\*?")
_NON_WORD = re.compile(r"[^\w]+|_")
_SPACES = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Collapse whitespace and drop control characters; keeps case and punctuation."""
    text = unicodedata.normalize("NFC", text or "")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return _SPACES.sub(" ", text).strip()


def normalize(text: str) -> str:
    """A comparison form: NFKC, case-folded, accents, TeX markup and punctuation removed.

    `$O(n^2)$`, `O(n²)` and `O(n^2)` compare equal; `H_2O` equals `H2O`.
    """
    text = unicodedata.normalize("NFKC", text or "")
    text = _TEX_COMMAND.sub(" ", text)
    text = text.replace("$", "").replace("^", "").replace("{", "").replace("}", "")
    text = re.sub(r"_(?=\w)", "", text)
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(_NON_WORD.sub(" ", text).split())


def digest_of(*parts: str) -> str:
    """A short stable hash of some text parts (used for ids and content hashes)."""
    h = hashlib.sha1()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()
