"""Shared benchmark helpers: machine description, peak memory, results file sections."""

from __future__ import annotations

import re
import resource
from pathlib import Path

from digest.sysinfo import machine

__all__ = ["machine", "peak_rss_mb", "vocabulary"]

SEEDS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "seeds"


def vocabulary() -> list[str]:
    """Real words from the bundled Daily Papers dumps, so texts tokenize like real ones."""
    words: set[str] = set()
    for path in SEEDS.glob("*.txt"):
        words.update(w.strip(".,:;()").lower() for w in path.read_text().split())
    return sorted(w for w in words if w.isalpha() and 3 <= len(w) <= 14)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_section(path: str, name: str, body: str) -> None:
    """Replace (or append) the `## name` section of a markdown results file."""
    file = Path(path)
    text = file.read_text(encoding="utf-8") if file.exists() else "# Benchmarks\n"
    section = f"## {name}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text + "\n" + section
    file.write_text(text.rstrip() + "\n", encoding="utf-8")
