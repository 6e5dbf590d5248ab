"""Ingest benchmark: 100 synthetic daily dumps, 100,000 items, 10% cross-day repeats.

Target on a 2-core machine: at least 5,000 items/s, peak memory under 500 MB.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, write_section

from digest.ingest import ingest
from digest.store import Store

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def make_vocabulary(rnd: random.Random, size: int = 5000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rnd.choices(letters, k=rnd.randint(3, 10))) for _ in range(size)]


def make_paper(rnd: random.Random, vocab: list[str], n: int) -> tuple[str, str]:
    title = " ".join(rnd.choices(vocab, k=rnd.randint(6, 12))).title() + f" {n}"
    abstract = " ".join(rnd.choices(vocab, k=rnd.randint(120, 200))) + "."
    return title, abstract


def write_dumps(folder: Path, days: int, per_day: int, repeat: float, seed: int) -> int:
    """Write `days` dump files; return the number of distinct papers."""
    rnd = random.Random(seed)
    vocab = make_vocabulary(rnd)
    papers: list[tuple[str, str]] = []
    start = date(2025, 1, 1)
    for d in range(days):
        day = start + timedelta(days=d)
        repeats = int(per_day * repeat) if papers else 0
        todays = rnd.sample(papers, repeats)
        for _ in range(per_day - repeats):
            papers.append(make_paper(rnd, vocab, len(papers)))
            todays.append(papers[-1])
        body = "\n\n".join(f"{t}\n\n{a}" for t, a in todays)
        header = f"Daily Papers\n\n{_MONTHS[day.month - 1]} {day.day}\n\n"
        (folder / f"{d:03d}.txt").write_text(header + body + "\n", encoding="utf-8")
    return len(papers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--per-day", type=int, default=1000)
    parser.add_argument("--repeat", type=float, default=0.10)
    parser.add_argument("--write", help="markdown file to record the result in")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "dumps"
        folder.mkdir()
        distinct = write_dumps(folder, args.days, args.per_day, args.repeat, seed=0)
        store = Store.open(Path(tmp) / "bench.db")
        started = time.perf_counter()
        summary = ingest(store, [str(folder)], given=date(2025, 1, 1), today=date(2025, 12, 31))
        elapsed = time.perf_counter() - started
        store.close()
    assert summary.failed == 0, [f.error for f in summary.files if f.error]
    assert summary.new == distinct, (summary.new, distinct)
    rate = summary.entries / elapsed
    result = (
        f"- Command: `make bench` (`python bench/bench_ingest.py --days {args.days} "
        f"--per-day {args.per_day} --repeat {args.repeat}`)\n"
        f"- Machine: {machine()}\n"
        f"- Input: {args.days} daily dumps, {summary.entries:,} entries, "
        f"{summary.duplicates:,} cross-day repeats, {distinct:,} distinct papers\n"
        f"- Time: {elapsed:.1f} s, **{rate:,.0f} items/s** (target >= 5,000)\n"
        f"- Peak RSS: **{peak_rss_mb():.0f} MB** (target < 500 MB)\n"
        f"- Every repeat was recognised: new = distinct = {summary.new:,}\n"
    )
    print(result)
    if args.write:
        write_section(args.write, "Ingest", result)


if __name__ == "__main__":
    main()
