"""What the weight search adds to a full `digest train`, on citeulike-a sized data.

citeulike-a (16,980 papers, 5,551 readers, 204,986 saves) is imported as a team
would import it (items as a JSON list, saves as a feedback file), then trained from
scratch with the search (`tune=True`, the default) and without it, each with
sentence embeddings off and on. With embeddings, a first train stores every item's
vector, so both timed trains reuse them and the comparison is of the training alone.
Target: the search adds at most 50% to a full train.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, write_section

from digest import embed
from digest.evaluate import read_citeulike
from digest.feedback import import_feedback
from digest.ingest import ingest
from digest.profiles import ProfileSet
from digest.store import Store
from digest.training import train

ROOT = Path(__file__).resolve().parent.parent
URL = "https://citeulike.example/item/"


def write_team(data, root: Path) -> tuple[Path, Path]:
    """Items as a JSON list with their URLs, and saves as feedback rows naming the URLs."""
    items, pairs = root / "items.jsonl", root / "feedback.csv"
    with items.open("w", encoding="utf-8") as handle:
        for doc in data.items:
            row = {"id": doc.id, "title": doc.title, "url": f"{URL}{doc.id}"}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    with pairs.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "item", "event"])
        writer.writerows((user, f"{URL}{item}", "click") for user, item in data.pairs)
    return items, pairs


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--citeulike", type=Path, default=ROOT.parent / "shared" / "datasets" / "citeulike-a"
    )
    parser.add_argument("--repeat", type=int, default=3, help="trains of each kind")
    parser.add_argument("--write", help="markdown file to record the result in")
    args = parser.parse_args()
    data = read_citeulike(args.citeulike)
    modes = ["off", "on"] if embed.available() else ["off"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        items, pairs = write_team(data, root)
        with Store.open(root / "digest.db") as store:
            ingest(store, [str(items)])
            report = import_feedback(store, str(pairs))
            # Papers that dedup merges (one title saved under two ids) make some saves repeat.
            assert not report.problems, report.problems[:3]
            for mode in modes:
                if mode == "on":
                    train(store, ProfileSet(), None, embeddings="on", tune=False)  # store vectors
                # This machine's speed drifts by a third within minutes: the two kinds of
                # train take turns, and each is the median of its runs.
                plains, tuneds, searches = [], [], []
                for _ in range(args.repeat):
                    plain, _ = timed(
                        lambda m=mode: train(store, ProfileSet(), None, embeddings=m, tune=False)
                    )
                    tuned, model = timed(
                        lambda m=mode: train(store, ProfileSet(), None, embeddings=m, tune=True)
                    )
                    plains.append(plain)
                    tuneds.append(tuned)
                    searches.append(model.tuning)
                    print(mode, f"{plain:.1f}", f"{tuned:.1f}", model.tuning.get("method"),
                          model.tuning.get("reason") or "finished", flush=True)  # fmt: skip
                rows.append((mode, plains, tuneds, searches))
    lines = [
        f"- Command: `make bench` (`python bench/bench_tune.py --repeat {args.repeat}`)",
        f"- Machine: {machine()}",
        f"- Data: citeulike-a imported as a team would ({len(data.items):,} papers, "
        f"{len({u for u, _ in data.pairs}):,} readers, {len(data.pairs):,} saves); "
        "a full `train` from the store",
        f"- Each train {args.repeat} times, the two kinds taking turns; medians, then each "
        "run's figures",
        "",
        "| embeddings | train, fixed weights | train with the search | added | runs: added | "
        "weights; the search |",
        "|---|---|---|---|---|---|",
    ]
    for mode, plains, tuneds, searches in rows:
        plain, tuned = statistics.median(plains), statistics.median(tuneds)
        runs = ", ".join(f"{t / p - 1:+.0%}" for p, t in zip(plains, tuneds, strict=True))
        how = "; ".join(f"{r.get('method')}, {r.get('reason') or 'finished'}" for r in searches)
        lines.append(
            f"| {mode} | {plain:.1f} s | {tuned:.1f} s | **{tuned / plain - 1:+.0%}** (target "
            f"<= +50%) | {runs} | {how} |"
        )
    lines.append(f"\n- Peak RSS (this process): {peak_rss_mb():.0f} MB")
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, "Weight search cost", text)


if __name__ == "__main__":
    main()
