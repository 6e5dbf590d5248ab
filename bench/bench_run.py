"""The whole daily run at team scale: 10,000 readers, 1,000 new items, into the outbox.

Setup (not timed): 20,000 past items, 500,000 past events, 10,000 reader profiles
(each with email and feed; a tenth also with wiki) in 20 teams, the past items'
embeddings already stored (they were computed on earlier days), a trained model, and
then yesterday's clicks (a 27th of the past events), which the model has not seen.

Timed: one `digest run` for the new day, as cron would call it: ingest a file of
1,000 new items, update the model (embedding only the new items), rank every
reader and team, render email, feeds and wiki posts, write them and record the
ledger. Each stage's time comes from the run's own report (`RunReport.seconds`,
none counted twice). Target: under 90 s on this 2-core machine, aim for 60 s.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, vocabulary, write_section

# The model's libraries are imported where setup uses them: `digest run` spawns its
# render workers, which import this module again and should stay light.
from digest import daily, embed
from digest.ingest import ingest
from digest.settings import load_settings
from digest.store import Store

DAY = date(2026, 3, 2)
#: The daily run's stages, as its report times them: render is the wait for rendered
#: digests, deliver the writing of emails, feeds and posts and recording them.
STAGES = ("ingest", "model", "rank", "render", "deliver")


def make_items(rnd: random.Random, vocab: list[str], topics: list[list[str]], n: int, tag: str):
    """Items drawn from topics: (id, topic, title, abstract)."""
    out = []
    for i in range(n):
        topic = rnd.randrange(len(topics))
        words = rnd.choices(topics[topic], k=140) + rnd.choices(vocab, k=60)
        rnd.shuffle(words)
        title = " ".join(words[:10]).capitalize() + f" ({tag}{i})"
        out.append((f"{tag}{i}", topic, title, " ".join(words[10:]) + "."))
    return out


def write_json(path: Path, items, day: date) -> None:
    with path.open("w") as handle:
        for ident, _topic, title, abstract in items:
            row = {
                "id": ident,
                "title": title,
                "abstract": abstract,
                "url": f"https://example.org/papers/{ident}",
                "published": day.isoformat(),
            }
            handle.write(json.dumps(row) + "\n")  # fmt: skip


def write_profiles(folder: Path, readers: int, topics: list[list[str]], rnd: random.Random):
    (folder / "teams").mkdir(parents=True)
    liked = {}
    for r in range(readers):
        likes = rnd.sample(range(len(topics)), 3)
        liked[f"r{r}"] = likes
        interests = [f"{topics[likes[0]][0]} {topics[likes[0]][1]}"]
        channels = ["email", "feed", "wiki"] if r % 10 == 0 else ["email", "feed"]
        (folder / f"r{r}.toml").write_text(
            f'email = "r{r}@example.org"\ninterests = {json.dumps(interests)}\n'
            f"channels = {json.dumps(channels)}\ndigest_size = 20\n"
        )
    for t in range(20):
        members = [f"r{r}" for r in range(t, readers, 20)][:100]
        (folder / "teams" / f"team{t}.toml").write_text(f"members = {json.dumps(members)}\n")
    return liked


def setup(root: Path, args, rnd: random.Random) -> None:
    from digest.training import sync_readers, train

    vocab = vocabulary()
    topics = [rnd.sample(vocab, 120) for _ in range(100)]
    past = make_items(rnd, vocab, topics, args.past_items, "old")
    fresh = make_items(rnd, vocab, topics, args.new_items, "new")
    for d in range(20):
        chunk = past[d::20]
        write_json(root / f"past-{d:02d}.jsonl", chunk, DAY - timedelta(days=20 - d))
    (root / "sources").mkdir()
    write_json(root / "sources" / "new.jsonl", fresh, DAY)
    liked = write_profiles(root / "profiles", args.readers, topics, rnd)
    (root / "digest.toml").write_text(
        f'[store]\ndb = "digest.db"\nmodel = "digest.model"\n[readers]\nprofiles = "profiles"\n'
        f'[sources]\npaths = ["sources"]\n[model]\nembeddings = "{args.embeddings}"\n'
        f'epochs = {args.epochs}\n[output]\ndir = "out"\n'
        '[email]\nlist_id = "digest.example.org"\nunsubscribe_mailbox = "u@example.org"\n'
        '[links]\nbase_url = "https://digest.example.org"\nsecret_file = "link-secret"\n'
    )
    (root / "link-secret").write_text("bench-secret-0123456789abcdef\n")
    settings = load_settings(str(root / "digest.toml"))
    with Store.open(settings.store.db) as store:
        for d in range(20):
            ingest(store, [str(root / f"past-{d:02d}.jsonl")], given=DAY - timedelta(days=20 - d))
        ids = {row["title"].rsplit("(", 1)[1].rstrip(")"): row["id"] for row in store.items()}
        by_topic: dict[int, list[str]] = {}
        for ident, topic, _t, _a in past:
            by_topic.setdefault(topic, []).append(ids[ident])
        profiles = daily.open_workspace(settings).profiles
        sync_readers(store, profiles)
        add_events(store, liked, by_topic, args.events, rnd)
        if args.embeddings == "on":
            add_vectors(store, list(ids.values()), rnd)
        train(store, profiles, settings.store.model, epochs=args.epochs,
              embeddings=args.embeddings, before=DAY.isoformat())  # fmt: skip
        # Yesterday's clicks, which the model has not seen: what the daily update learns.
        add_events(store, liked, by_topic, args.events // DAYS_OF_CLICKS, rnd, day=DAY)


#: The past events span this many days; a day's new clicks are this share of them.
DAYS_OF_CLICKS = 27


def add_events(
    store: Store, liked, by_topic, n: int, rnd: random.Random, *, day: date | None = None
) -> None:
    """`n` clicks on the readers' liked topics: spread over February, or on the eve of `day`."""
    rows = []
    readers = list(liked.items())
    for k in range(n):
        reader, likes = readers[k % len(readers)]
        item = rnd.choice(by_topic[likes[(k // len(readers)) % 3]])
        when = (
            f"{day - timedelta(days=1)}T{8 + k % 12:02d}:{k % 60:02d}:00"
            if day
            else f"2026-02-{1 + (k // len(readers)) % DAYS_OF_CLICKS:02d}T08:{k % 60:02d}:00"
        )
        rows.append((reader, item, "click", "", when, "import"))
    with store.transaction():
        store.conn.executemany(
            "INSERT OR IGNORE INTO events (reader, item_id, event, tag, time, origin) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )


def add_vectors(store: Store, ids: list[str], rnd: random.Random) -> None:
    """Past items' vectors, as earlier days stored them (random here: setup, not timed)."""
    import numpy as np

    from digest.features import doc_of
    from digest.training import text_hash

    gen = np.random.default_rng(0)
    vecs = gen.normal(size=(len(ids), embed.DIMENSIONS)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    docs = {item.id: doc_of(item) for item in store.stored_items(ids=ids)}
    store.save_embeddings(
        embed.cache_key(),
        [(i, v.tobytes(), text_hash(docs[i])) for i, v in zip(ids, vecs, strict=True)],
    )


def prepared(root: Path, args) -> None:
    """Set up the day before at `root`: afresh, or copied from `--setup-dir` if it has one."""
    if not args.setup_dir:
        root.mkdir()
        setup(root, args, random.Random(0))
        return
    kept = Path(args.setup_dir)
    options = json.dumps({k: v for k, v in vars(args).items() if k not in ("write", "setup_dir")})
    if not (kept / "options.json").exists() or (kept / "options.json").read_text() != options:
        shutil.rmtree(kept, ignore_errors=True)
        kept.mkdir(parents=True)
        setup(kept, args, random.Random(0))
        (kept / "options.json").write_text(options)
    shutil.copytree(kept, root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--past-items", type=int, default=20_000)
    parser.add_argument("--new-items", type=int, default=1_000)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--embeddings", default="on" if embed.available() else "off",
                        choices=["on", "off"])  # fmt: skip
    parser.add_argument("--write", help="markdown file to record the result in")
    parser.add_argument(
        "--setup-dir",
        help="keep the (untimed) setup here and reuse it on later runs with the same options",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "run"
        started = time.perf_counter()
        prepared(root, args)
        setup_s = time.perf_counter() - started
        settings = load_settings(str(root / "digest.toml"))
        started = time.perf_counter()
        report = daily.run(settings, day=DAY)
        run_s = time.perf_counter() - started
        emails = len(list((root / "out" / "outbox").rglob("*.eml")))
    assert report.ok, report.failures
    # The run's own stage times (none counted twice); "other" is what no stage covers.
    seconds = {stage: report.seconds.get(stage, 0.0) for stage in STAGES}
    seconds["other"] = max(run_s - sum(seconds.values()), 0.0)
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
    result = (
        f"- Command: `make bench` (`python bench/bench_run.py --readers {args.readers} "
        f"--past-items {args.past_items} --new-items {args.new_items} --events {args.events} "
        f"--epochs {args.epochs} --embeddings {args.embeddings}`)\n"
        f"- Machine: {machine()}\n"
        f"- Setup (not timed): {setup_s:.0f} s"
        f"{' (copied from --setup-dir)' if args.setup_dir else ''}\n"
        f"- **Daily run: {run_s:.1f} s** (target < 90 s, aim 60 s): {stages}\n"
        f"- Delivered: {emails} emails; {report.delivered}\n"
        f"- Peak RSS: {peak_rss_mb():.0f} MB\n"
    )
    print(result)
    if args.write:
        write_section(args.write, "Daily run", result)


if __name__ == "__main__":
    main()
