"""Shared benchmark helpers: machine description, peak memory, results file sections."""

from __future__ import annotations

import re
import resource
import time
from pathlib import Path

from digest.sysinfo import machine

__all__ = ["CpuSteal", "loop_seconds", "machine", "peak_rss_mb", "vocabulary"]

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


class CpuSteal:
    """The share of this machine's CPU time its hypervisor gave to other guests.

    On a shared virtual machine the same work can take a third longer from one hour to
    the next; /proc/stat's `steal` column says how much of that was time taken away. Read
    it around a timed run: `with CpuSteal() as steal: ...`, then `steal.share`. None where
    /proc/stat is missing or has no steal column.
    """

    def __enter__(self) -> CpuSteal:
        self._start = _cpu_ticks()
        self.share: float | None = None
        return self

    def __exit__(self, *_exc: object) -> None:
        end = _cpu_ticks()
        if self._start and end:
            spent = [b - a for a, b in zip(self._start, end, strict=True)]
            total = sum(spent[:8])  # user nice system idle iowait irq softirq steal
            self.share = spent[7] / total if total else None


def loop_seconds() -> float:
    """Seconds this machine takes for ten million Python additions: a gauge of its speed.

    The same code's time varies by up to half from hour to hour on a shared 2-core
    machine; a run's result reads better beside this figure.
    """
    started = time.perf_counter()
    total = 0
    for n in range(10_000_000):
        total += n
    return time.perf_counter() - started


def _cpu_ticks() -> list[int] | None:
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    return [int(f) for f in fields] if len(fields) >= 8 else None


def write_section(path: str, name: str, body: str) -> None:
    """Replace (or append) the `## name` section of a markdown results file."""
    file = Path(path)
    text = file.read_text(encoding="utf-8") if file.exists() else "# Benchmarks\n"
    section = f"## {name}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text + "\n" + section
    file.write_text(text.rstrip() + "\n", encoding="utf-8")
