"""Training twice over the same data, with sentence embeddings on (the default install).

The first `digest train` embeds every item (the slow part on a CPU) and stores the
vectors. The second, over the same data into the same model file, finds the model
trained on exactly these inputs and keeps it. A third, forced (`--force`), trains
from scratch again and reuses every stored vector. Target: the second at least 5x
faster than the first. Measured for titles (the default) and for title + abstract,
whose encoding costs about ten times more.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import make_items, vocabulary, write_json
from common import machine, peak_rss_mb, write_section

from digest import embed
from digest.ingest import ingest
from digest.profiles import ProfileSet
from digest.store import Store
from digest.training import train

DAY = date(2026, 3, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--readers", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--write", help="markdown file to record the result in")
    args = parser.parse_args()
    if not embed.available():
        raise SystemExit("the embed extra is not installed: this benchmark measures it")
    rnd = random.Random(0)
    vocab = vocabulary()
    topics = [rnd.sample(vocab, 120) for _ in range(100)]
    papers = make_items(rnd, vocab, topics, args.items, "p")
    rows = []
    for recipe in ("title", "title+abstract:256"):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            write_json(root / "items.jsonl", papers, DAY)
            with Store.open(root / "digest.db") as store:
                ingest(store, [str(root / "items.jsonl")], given=DAY - timedelta(days=1))
                add_events(store, args.readers, args.events, topics, papers, rnd)
                runs = [timed_train(store, root / "m", recipe, force) for force in (0, 0, 1)]
        rows.append((recipe, runs))
    lines = [
        f"- Command: `make bench` (`python bench/bench_train.py --items {args.items} "
        f"--readers {args.readers} --events {args.events}`)",
        f"- Machine: {machine()}",
        f"- Load average at the end: {os.getloadavg()[0]:.2f}",
        "- Three `digest train` runs over the same data into the same model file (weight",
        "  search included), for the default embedding text (titles) and for title +",
        "  abstract (256 tokens): the first, the second (which keeps the model trained on",
        "  exactly these inputs), and a forced full refit (`--force`)",
        "",
        "| embeddings read | first train | items encoded | second train | speed-up | "
        "forced refit | items encoded | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for recipe, ((first, n1), (second, _), (forced, n3)) in rows:
        lines.append(
            f"| {recipe} | {first:.1f} s | {n1:,} | {second:.1f} s | **{first / second:.0f}x** "
            f"| {forced:.1f} s | {n3:,} | {first / forced:.1f}x |"
        )
    lines += [
        "",
        "The second train reads the data, finds the saved model was trained on exactly",
        "these items, clicks, profiles and settings, and keeps it. The forced refit trains",
        "from scratch and encodes nothing: every vector comes from the store. What is left",
        "of it is the fit itself (TF-IDF, LightFM, the scorers and the weight search).",
        f"- Peak RSS: {peak_rss_mb():.0f} MB",
    ]
    result = "\n".join(lines)
    print(result)
    if args.write:
        write_section(args.write, "Training with embeddings", result)


def timed_train(store: Store, path: Path, recipe: str, force: bool) -> tuple[float, int]:
    """Seconds for one full train, and how many items it had to encode."""
    counted = Counted()
    started = time.perf_counter()
    model = train(store, ProfileSet(), path, embeddings="on", embed_recipe=recipe,
                  embed_progress=counted, force=force)  # fmt: skip
    seconds = time.perf_counter() - started
    assert model.kept == (not force and path.exists() and counted.total == 0)
    return seconds, counted.total


class Counted:
    """An embedding progress callback that remembers how many items were encoded."""

    def __init__(self) -> None:
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.total = total


def add_events(store: Store, readers: int, n: int, topics, papers, rnd: random.Random) -> None:
    ids = {row["title"]: row["id"] for row in store.items()}
    by_topic: dict[int, list[str]] = {}
    for _ident, topic, title, _abstract in papers:
        by_topic.setdefault(topic, []).append(ids[title])
    rows = []
    for r in range(readers):
        likes = rnd.sample(sorted(by_topic), 3)
        for k in range(n // readers):
            item = rnd.choice(by_topic[likes[k % 3]])
            rows.append((f"r{r}", item, "click", "", f"2026-02-01T08:{k % 60:02d}:{r % 60:02d}"))
    with store.transaction():
        store.conn.executemany(
            "INSERT OR IGNORE INTO readers (handle, origin, created_at) VALUES (?, 'feedback', '')",
            [(f"r{r}",) for r in range(readers)],
        )
        store.conn.executemany(
            "INSERT OR IGNORE INTO events (reader, item_id, event, tag, time, origin) "
            "VALUES (?, ?, ?, ?, ?, 'import')",
            rows,
        )


if __name__ == "__main__":
    main()
