"""Feed benchmark: both feeds (Atom and RSS 2.0) of 2,000 readers, 20 picks a day.

Renders every reader's two feeds for a window of 1 day and of 14 days (a full
feed) and prints feeds/s. Target on a 2-core machine: both feeds of one reader
with one day of 20 picks in about 1 ms (2,000 feeds/s on one core), so that
email, feeds and wiki for 10,000 readers render at 500 readers/s.

Each reader picks 20 of the day's 1,000 new papers and gets fresh copies of
them, as the store returns them. Only rendering is timed, in CPU seconds of this
process (steadier than wall time on a shared machine; both are printed). With
`--links tracked` every pick carries three signed links (click, more, less).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, write_section

from digest.records import Explanation, Pick, ReaderDigest, StoredItem
from digest.render import feeds
from digest.render.links import Links
from digest.tokens import TokenSigner

TODAY = date(2026, 11, 22)
LINKS = {
    "plain": Links(),
    "tracked": Links(base_url="https://digest.example.org", signer=TokenSigner("s" * 32)),
}


def make_items(rnd: random.Random, vocab: list[str], day: int, count: int) -> list[StoredItem]:
    """One day's new papers, shaped like arXiv listings."""
    found = []
    for n in range(count):
        words = rnd.choices(vocab, k=rnd.randint(150, 250))
        found.append(
            StoredItem(
                id=f"d{day}i{n}",
                title=" ".join(words[:12]).title(),
                abstract=" ".join(words[12:]) + ".",
                url=f"https://arxiv.org/abs/2611.{day:02d}{n:03d}",
                authors=tuple(f"{a.title()} {b.title()}" for a, b in pairwise(words[:8])),
                tags=("cs.LG", "cs.CL", "stat.ML")[: rnd.randint(1, 3)],
                code_url=f"https://github.com/lab/{words[0]}" if n % 3 == 0 else None,
            )
        )
    return found


def fresh(item: StoredItem) -> StoredItem:
    """An equal copy with its own strings, like a row read back from the store."""
    return replace(item, title=item.title.join("  ").strip(), abstract=item.abstract + " ")


def windows(readers: int, days: int, per_day: int, seed: int) -> Iterator[list[ReaderDigest]]:
    """Each reader's `days` digests of `per_day` picks, from 1,000 new papers a day."""
    rnd = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rnd.choices(letters, k=rnd.randint(3, 10))) for _ in range(5000)]
    pools = [make_items(rnd, vocab, d, 1000) for d in range(days)]
    past = [" ".join(rnd.choices(vocab, k=8)).capitalize() for _ in range(5000)]

    def reason() -> Explanation:
        """As varied as a run's: each names one of the reader's past papers and its terms."""
        w = rnd.choice(vocab[:50])
        return Explanation(
            interest=w if rnd.random() < 0.5 else None, because_title=rnd.choice(past),
            terms=(w, rnd.choice(vocab)),
        )  # fmt: skip

    for r in range(readers):
        window = []
        for d, pool in enumerate(pools):
            chosen = rnd.sample(pool, per_day)
            picks = tuple(
                Pick(fresh(item), rank, 1.0 / rank, reason())
                for rank, item in enumerate(chosen, start=1)
            )
            window.append(ReaderDigest(f"reader{r}", TODAY - timedelta(days=d), picks))
        yield window


def settings_for(reader: str, links: Links) -> dict[str, feeds.FeedSettings]:
    """Both kinds' settings, as the dispatcher makes them (the self URL differs)."""
    return {
        kind: feeds.FeedSettings(
            title=f"digest for {reader}",
            self_url=f"https://digest.example.org/feeds/{reader}.{kind}",
            authority="digest.example.org",
            links=links,
            site_url="https://digest.example.org/",
        )
        for kind in feeds.KINDS
    }


def render(window: list[ReaderDigest], links: Links, path: str) -> int:
    """Both feeds of one reader; the bytes written."""
    by_kind = settings_for(window[0].audience, links)
    if path == "shared":
        return sum(len(body) for body in feeds.render_feeds(window, by_kind).values())
    return sum(len(feeds.render_feed(window, s, kind=k)) for k, s in by_kind.items())


def run(args: argparse.Namespace, days: int, links: str) -> str:
    cpu = wall = 0.0
    size = 0
    for window in windows(args.readers, days, args.per_day, seed=days):
        started, started_wall = time.process_time(), time.perf_counter()
        size += render(window, LINKS[links], args.path)
        cpu += time.process_time() - started
        wall += time.perf_counter() - started_wall
    count = len(feeds.KINDS) * args.readers
    return (
        f"- {days} day(s) x {args.per_day} picks, {links} links: "
        f"**{count / cpu:,.0f} feeds/s**, {1000 * cpu / args.readers:.2f} ms CPU per reader "
        f"(both feeds; wall {1000 * wall / args.readers:.2f} ms), "
        f"{size / count / 1024:.0f} KiB per feed"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readers", type=int, default=2000)
    parser.add_argument("--per-day", type=int, default=20)
    parser.add_argument("--days", type=int, nargs="+", default=[1, 14])
    parser.add_argument("--links", nargs="+", choices=sorted(LINKS), default=["tracked", "plain"])
    parser.add_argument(
        "--path",
        choices=["shared", "single"],
        default="shared" if hasattr(feeds, "render_feeds") else "single",
        help="render_feeds (both kinds at once) or render_feed once per kind",
    )
    parser.add_argument("--write", help="markdown file to record the result in")
    args = parser.parse_args()
    call = "render_feeds" if args.path == "shared" else "render_feed once per kind"
    lines = [
        f"- Command: `python bench/bench_feeds.py --readers {args.readers} "
        f"--days {' '.join(map(str, args.days))} --links {' '.join(args.links)} "
        f"--path {args.path}` ({call})",
        f"- Machine: {machine()}",
    ]
    lines += [run(args, days, links) for days in args.days for links in args.links]
    lines.append(f"- Peak RSS: {peak_rss_mb():.0f} MB (target, 1 day: 2,000 feeds/s per core)")
    result = "\n".join(lines) + "\n"
    print(result)
    if args.write:
        write_section(args.write, "Feeds", result)


if __name__ == "__main__":
    main()
