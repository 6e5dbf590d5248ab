"""Render all three formats (email, Atom + RSS, wiki post) for 10,000 readers x 20 items.

The daily run's render stage alone: `digest.render.bundle.render_all` with the run's
worker processes, tracked links on (every item's links signed). Target on this
2-core machine: at least 500 readers/s, peak memory under 1 GB (this process plus
its workers).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Only light imports here: the render workers are spawned and import this module again.
from common import CpuSteal, loop_seconds, machine, peak_rss_mb, vocabulary, write_section

from digest.records import Explanation, Pick, ReaderDigest, Recipient, StoredItem
from digest.render.bundle import POOL_THRESHOLD, RenderContext, RenderJob, _workers, render_all

DAY = date(2026, 3, 11)


def items(rnd: random.Random, vocab: list[str], n: int) -> list[StoredItem]:
    """Papers with real-looking lengths: 10-word titles, 180-word abstracts, code links."""
    out = []
    for i in range(n):
        words = rnd.choices(vocab, k=190)
        out.append(
            StoredItem(
                id=f"p{i:06d}", title=" ".join(words[:10]).capitalize(),
                abstract=" ".join(words[10:]) + ".", url=f"https://arxiv.org/abs/2603.{i:05d}",
                authors=tuple(f"Author {rnd.randrange(999)}" for _ in range(rnd.randint(2, 9))),
                first_seen=DAY.isoformat(), code_url=f"https://github.com/lab/p{i}",
            )
        )  # fmt: skip
    return out


def reason(
    rnd: random.Random, mine: list[str], history: list[int], past: list[str], vocab: list[str]
) -> Explanation:
    """A reason as a run gives one: maybe an interest, a paper read before, shared terms."""
    read = rnd.choice(history)
    return Explanation(
        interest=rnd.choice(mine) if mine and rnd.random() < 0.5 else None,
        because_title=past[read], because_id=f"past{read}",
        terms=tuple(rnd.sample(vocab, rnd.randint(1, 3))),
    )  # fmt: skip


def jobs(readers: int, per_reader: int, pool: list[StoredItem], rnd: random.Random):
    """Each reader's digest, with reasons as varied as a real run's.

    A real pick's reason names the reader's own closest past paper and the terms the
    pick shares with the reader's history, so hardly two picks share one; reasons
    shared by every pick would let the renderers' per-reason caches flatter the result.
    """
    vocab = vocabulary()
    interests = [" ".join(rnd.choices(vocab, k=2)) for _ in range(300)]
    past = [" ".join(rnd.choices(vocab, k=10)).capitalize() for _ in range(20_000)]
    out = []
    for r in range(readers):
        chosen = rnd.sample(pool, per_reader)
        mine = rnd.sample(interests, rnd.randint(0, 3))
        history = rnd.sample(range(len(past)), 40)
        picks = tuple(
            Pick(item, n + 1, 1.0 - n / 50, reason(rnd, mine, history, past, vocab))
            for n, item in enumerate(chosen)
        )
        digest = ReaderDigest(f"r{r}", DAY, picks)
        recipient = Recipient(f"r{r}", f"Reader {r}", f"r{r}@example.org",
                              ("email", "feed", "wiki"))  # fmt: skip
        urls = {k: f"https://digest.example.org/feeds/t{r}.{k}" for k in ("atom", "rss")}
        out.append(RenderJob(digest, recipient, ("email", "feed", "wiki"), (digest,), urls))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="runs; the median is reported")
    parser.add_argument("--write", help="markdown file to record the result in")
    args = parser.parse_args()
    rnd = random.Random(0)
    work = jobs(args.readers, args.items, items(rnd, vocabulary(), 1000), rnd)
    ctx = RenderContext(
        sender="digest <digest@example.org>", list_id="digest.example.org",
        now=datetime(2026, 3, 11, 7, tzinfo=UTC), base_url="https://digest.example.org",
        secret="bench-secret-0123456789abcdef", unsubscribe_mailbox="u@example.org",
        authority="digest.example.org",
    )  # fmt: skip
    load = os.getloadavg()[0]
    gauge = loop_seconds()
    runs, stolen = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        total = 0
        with CpuSteal() as steal:
            for rendered in render_all(work, ctx):
                total += len(rendered.email or b"") + sum(map(len, rendered.feeds.values()))
                total += len(rendered.post.text) if rendered.post else 0
        runs.append(time.perf_counter() - started)
        stolen.append(steal.share)
    seconds = statistics.median(runs)
    spread = ", ".join(f"{args.readers / s:.0f}" for s in runs)
    steals = ", ".join("?" if share is None else f"{share:.0%}" for share in stolen)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    workers = _workers() if len(work) >= POOL_THRESHOLD else 0
    cpu = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = sum(r.ru_utime + r.ru_stime for r in cpu)
    result = (
        f"- Command: `make bench` (`python bench/bench_render.py --readers {args.readers} "
        f"--items {args.items}`)\n"
        f"- Machine: {machine()}; load average {load:.2f} when the run started (other "
        "work on the machine takes its share of the two cores)\n"
        f"- {args.readers:,} readers x {args.items} items, tracked links, email + Atom + RSS "
        f"+ wiki each: {seconds:.1f} s, **{args.readers / seconds:.0f} readers/s** "
        f"(target >= 500; median of {args.repeat} runs: {spread} readers/s), "
        f"{total / 2**20:.0f} MiB rendered; {workers} render workers; "
        f"CPU {cpu_s / args.readers / args.repeat * 1000:.1f} ms per reader (all processes, "
        "setup included)\n"
        f"- CPU time the hypervisor gave to other guests during each run (/proc/stat steal): "
        f"{steals}; ten million Python additions took {gauge:.2f} s before the runs "
        "(this machine's speed varies from hour to hour)\n"
        f"- Peak RSS: this process {peak_rss_mb():.0f} MB, largest worker {children:.0f} MB, "
        f"at most {peak_rss_mb() + workers * children:.0f} MB together (target < 1 GB)\n"
    )
    print(result)
    if args.write:
        write_section(args.write, "Rendering", result)


if __name__ == "__main__":
    main()
