"""Ranking benchmark: 10,000 readers, 1,000 new items, 500,000 past interactions.

Measures the time to train the model, and to score every reader and select each
one's deduplicated, diversified top 20 (with explanations), with sentence embeddings
on (the default install) unless `--embeddings off`. Targets on a 2-core machine:
train < 120 s, score and select < 15 s, peak memory < 4 GB.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, write_section

from digest import embed
from digest.features import ItemDoc, ReaderInfo
from digest.model import Interaction, Recommender
from digest.profiles import ProfileSet
from digest.rank import Ranking
from digest.records import StoredItem

DAY = date(2026, 3, 11)


def synthetic(readers: int, past: int, new: int, interactions: int, seed: int = 0):
    """Topic-structured items and readers, so the model has real signal to learn."""
    rnd = random.Random(seed)
    vocab = [f"w{i}" for i in range(20_000)]
    topics = [rnd.sample(vocab, 200) for _ in range(100)]

    def doc(i: int, prefix: str) -> ItemDoc:
        topic = topics[i % len(topics)]
        words = rnd.choices(topic, k=120) + rnd.choices(vocab, k=40)
        return ItemDoc(f"{prefix}{i}", " ".join(words[:10]), " ".join(words[10:]))

    old = [doc(i, "old") for i in range(past)]
    fresh = [doc(i, "new") for i in range(new)]
    by_topic: dict[int, list[str]] = {}
    for i, d in enumerate(old):
        by_topic.setdefault(i % len(topics), []).append(d.id)
    events = []
    per_reader = interactions // readers
    for r in range(readers):
        liked = rnd.sample(range(len(topics)), 3)
        for _ in range(per_reader):
            events.append(Interaction(f"r{r}", rnd.choice(by_topic[rnd.choice(liked)]), 1.0))
    infos = {f"r{r}": ReaderInfo(f"r{r}") for r in range(readers)}
    return old, fresh, events, infos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--past-items", type=int, default=20_000)
    parser.add_argument("--new-items", type=int, default=1_000)
    parser.add_argument("--interactions", type=int, default=500_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--embeddings", default="on", choices=["off", "on"])
    parser.add_argument("--write", help="markdown file to record the result in")
    args = parser.parse_args()
    old, fresh, events, infos = synthetic(
        args.readers, args.past_items, args.new_items, args.interactions
    )
    vectors, encode_s = None, 0.0
    if args.embeddings == "on":
        # What the store holds after ingest: each item embedded once, in its life.
        started = time.perf_counter()
        docs = old + fresh
        encoded = embed.encode_items([(d.title, d.abstract) for d in docs])
        vectors = {d.id: v for d, v in zip(docs, encoded, strict=True)}
        encode_s = time.perf_counter() - started
    started = time.perf_counter()
    model = Recommender(epochs=args.epochs, embeddings=args.embeddings)
    model.fit(old, events, infos, item_vectors=vectors)
    train_s = time.perf_counter() - started
    readers = sorted(infos)
    candidates = [StoredItem(d.id, d.title, d.abstract) for d in fresh]
    exclude = {r: {fresh[i % len(fresh)].id} for i, r in enumerate(readers)}
    started = time.perf_counter()
    ranking = Ranking(
        model, candidates, profiles=ProfileSet(), exclude=exclude, day=DAY, vectors=vectors
    )
    digests = list(ranking.readers(readers, top=20))
    rank_s = time.perf_counter() - started
    assert len(digests) == args.readers and all(len(d.picks) == 20 for d in digests)
    assert all(exclude[d.audience].isdisjoint(p.item.id for p in d.picks) for d in digests)
    embedded = (
        f"- Embeddings: on (MiniLM, {embed.DEFAULT_RECIPE}); encoding all "
        f"{len(old) + len(fresh):,} items once took {encode_s:.1f} s (stored, never repeated: "
        "not part of train or rank)\n"
        if vectors
        else "- Embeddings: off (the light install)\n"
    )
    result = (
        f"- Command: `make bench` (`python bench/bench_rank.py --readers {args.readers} "
        f"--past-items {args.past_items} --new-items {args.new_items} "
        f"--interactions {args.interactions} --epochs {args.epochs} "
        f"--embeddings {args.embeddings}`)\n"
        f"- Machine: {machine()}\n"
        f"{embedded}"
        f"- Train (LightFM WARP, {args.epochs} epochs, 1 thread, every scorer, no weight "
        f"search): **{train_s:.1f} s** (target < 120 s)\n"
        f"- Rank: score every reader and select a diversified top 20 with explanations: "
        f"**{rank_s:.1f} s** (target < 15 s)\n"
        f"- Peak RSS: **{peak_rss_mb():.0f} MB** (target < 4,096 MB)\n"
    )
    print(result)
    if args.write:
        write_section(args.write, "Ranking", result)


if __name__ == "__main__":
    main()
