"""What the sentence model should read of an item: the title, or title + abstract.

Two measurements, each per recipe (`digest.embed.RECIPES`):

- cost: seconds to embed 1,000 real Daily Papers entries (the bundled seed dumps,
  titles with their abstracts) on this machine;
- value: recall on held-out papers (item cold-start, as `digest evaluate`) for real
  readers whose papers have abstracts. citeulike-a ships titles only, so this needs
  a CiteULike sample with abstracts: `--abstracts DIR` names a folder holding
  `raw-data.csv` (doc.id, title, citeulike.id, raw.title, raw.abstract) and
  `users.dat` (one line per reader: count, then item ids), the layout of the
  citeulike-a release. Small samples are noisy: the report gives every seed.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_section

from digest import embed
from digest import evaluate as ev
from digest.features import ItemDoc
from digest.model import Interaction, Recommender
from digest.parsers import parse_location

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "tests" / "fixtures" / "seeds"
COLUMNS = (
    "embedding neighbours r@50",
    "embedding neighbours r@100",
    "digest (with embeddings) r@50",
    "digest (with embeddings) r@100",
)


def seed_entries() -> list[tuple[str, str]]:
    """(title, abstract) of every entry in the bundled Daily Papers dumps."""
    pairs = []
    for path in sorted(SEEDS.glob("*.txt")):
        result = parse_location(str(path), today=date(2026, 12, 1))
        pairs += [(r.title, r.abstract) for r in result.items]
    return pairs


def cost(pairs: list[tuple[str, str]], n: int = 1_000) -> dict[str, float]:
    """Seconds per `n` items for each recipe (entries cycled up to n)."""
    batch = [pairs[i % len(pairs)] for i in range(n)]
    embed.encode_items(batch[:32])  # load the model outside the timing
    out = {}
    for recipe in embed.RECIPES:
        started = time.perf_counter()
        embed.encode_items(batch, recipe)
        out[recipe] = time.perf_counter() - started
    return out


def read_sample(folder: Path) -> ev.Dataset:
    with (folder / "raw-data.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    items = [ItemDoc(r["doc.id"], r["raw.title"].strip(), r["raw.abstract"].strip()) for r in rows]
    lines = (folder / "users.dat").read_text(encoding="utf-8").splitlines()
    pairs = [(f"u{u}", item) for u, line in enumerate(lines) for item in line.split()[1:]]
    known = {d.id for d in items}
    return ev.Dataset(items, [(u, i) for u, i in pairs if i in known])


def value(data: ev.Dataset, seeds: list[int]) -> dict[str, list[dict[str, float]]]:
    """Per recipe and seed: recall@50 and @100 of the embedding neighbours and of digest."""
    out: dict[str, list[dict[str, float]]] = {}
    for recipe in embed.RECIPES:
        vectors = embed.encode_items([(d.title, d.abstract) for d in data.items], recipe)
        by_id = {d.id: v for d, v in zip(data.items, vectors, strict=True)}
        out[recipe] = [recall(data, seed, by_id) for seed in seeds]
    return out


def recall(data: ev.Dataset, seed: int, vectors: dict[str, np.ndarray]) -> dict[str, float]:
    split = ev.item_cold_start(data, seed)
    readers = sorted(split.test)
    items = [d.id for d in split.test_items]
    model = Recommender(random_state=seed, embeddings="on", epochs=10)
    model.fit(split.train_items, [Interaction(u, i) for u, i in split.train], item_vectors=vectors)
    raw = model.raw_scores(readers, model.prepare(split.test_items, vectors))
    rows = {
        "embedding neighbours": {"embed_neighbours": 1.0},
        "digest (with embeddings)": model.weights,
    }
    out = {}
    for name, weights in rows.items():
        metrics = ev.evaluate_scores(model.blend(raw, weights), readers, items, split.test)
        out[f"{name} r@50"] = metrics["recall@50"]
        out[f"{name} r@100"] = metrics["recall@100"]
    return out


def report(costs: dict[str, float], values: dict | None, args: argparse.Namespace) -> str:
    lines = [
        f"- Command: `python bench/bench_embed_text.py{' --abstracts DIR' if values else ''}`",
        f"- Machine: {machine()}",
        "- Cost: 1,000 real Daily Papers entries (the bundled seed dumps, cycled), MiniLM on "
        "the CPU",
        "",
        "| recipe | s per 1,000 items | items/s |",
        "|---|---|---|",
    ]
    for recipe, seconds in costs.items():
        lines.append(f"| {recipe} | {seconds:.1f} | {1000 / seconds:.0f} |")
    if values:
        seeds = ", ".join(map(str, args.seeds))
        lines += [
            "",
            f"- Value: item cold-start recall on a CiteULike sample with abstracts "
            f"({args.sample_size}), seeds {seeds}; mean (and per seed)",
            "",
            "| recipe | embedding neighbours r@50 | r@100 | digest r@50 | r@100 |",
            "|---|---|---|---|---|",
        ]
        for recipe, per_seed in values.items():
            cells = []
            for key in COLUMNS:
                got = [s[key] for s in per_seed]
                cells.append(f"{np.mean(got):.3f} ({', '.join(f'{g:.2f}' for g in got)})")
            lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(s) for s in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--abstracts", type=Path, help="CiteULike sample with abstracts")
    parser.add_argument("--seeds", type=_ints, default=[0, 1, 2, 3, 4])
    parser.add_argument("--write", help="markdown file to record the result in")
    args = parser.parse_args()
    if not embed.available():
        raise SystemExit("the embed extra is not installed: this benchmark measures it")
    costs = cost(seed_entries())
    values = None
    if args.abstracts:
        data = read_sample(args.abstracts)
        readers = len({u for u, _ in data.pairs})
        args.sample_size = (
            f"{len(data.items):,} papers, {readers} readers, {len(data.pairs):,} saves"
        )
        values = value(data, args.seeds)
    text = report(costs, values, args)
    print(text)
    if args.write:
        write_section(args.write, "Embedding text: title or title + abstract", text)


if __name__ == "__main__":
    main()
