"""Email rendering benchmark: 2,000 readers, 20 realistic items each, tracked links.

Measures `render_email` (views, signed links, both bodies, the size cap) and the MIME
serialisation `as_bytes()` separately, after one warm-up email (which pays for any
per-process template compilation). Target: the daily run renders email, feed and wiki
for 10,000 readers at 500 readers/s on 2 cores, so an email should cost 1-2 ms.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_section

from digest.records import Explanation, Pick, ReaderDigest, Recipient, StoredItem
from digest.render.email import EmailSettings, render_email
from digest.render.links import Links
from digest.tokens import TokenSigner

DAY = date(2026, 3, 11)
NOW = datetime(2026, 3, 11, 7, 0, tzinfo=UTC)
BASE = "https://digest.example.org"
SETTINGS = EmailSettings(
    sender="digest <digest@example.org>",
    list_id="digest.example.org",
    links=Links(BASE, TokenSigner("x" * 32), "unsubscribe@digest.example.org"),
)
WORDS = (
    "attention", "sparse", "efficient", "transformer", "long", "context", "retrieval",
    "augmented", "language", "model", "quantization", "pruning", "mixture", "experts",
    "routing", "diffusion", "policy", "reinforcement", "learning", "graph", "neural",
    "network", "calibration", "uncertainty", "benchmark", "evaluation", "scaling", "laws",
    "tokenizer", "byte", "latent", "inference", "memory", "cache", "distillation",
    "alignment", "preference", "optimisation",
)  # fmt: skip
NAMES = (
    "Mira Okafor", "Jonas Lindqvist", "Priya Raman", "Wei Zhang", "Lena Fischer",
    "Tomás Ortega", "Ana Ortiz", "Kenji Watanabe", "Amara Diallo", "Hannah Berg",
)  # fmt: skip


def paper(rnd: random.Random, n: int) -> StoredItem:
    """A paper the size of a real arXiv entry: ~10-word title, ~180-word abstract."""
    title = " ".join(rnd.choices(WORDS, k=rnd.randint(6, 14))).capitalize()
    abstract = " ".join(rnd.choices(WORDS, k=rnd.randint(120, 240))).capitalize() + "."
    return StoredItem(
        id=f"2603.{n:05d}",
        title=title,
        abstract=abstract,
        url=f"https://arxiv.org/abs/2603.{n:05d}",
        authors=tuple(rnd.sample(NAMES, rnd.randint(1, 8))),
        code_url=f"https://github.com/lab-{n}/code" if n % 3 == 0 else None,
        project_urls=(f"https://lab-{n}.github.io/project",) if n % 5 == 0 else (),
    )


def digests(readers: int, items: int, seed: int = 0) -> list[tuple[ReaderDigest, Recipient]]:
    """Each reader's own top `items` out of a day's 1,000 papers, with reasons."""
    rnd = random.Random(seed)
    pool = [paper(rnd, n) for n in range(1_000)]
    out = []
    for r in range(readers):
        chosen = rnd.sample(pool, items)
        picks = tuple(
            Pick(
                it,
                rank,
                1.0 / rank,
                Explanation(
                    interest=rnd.choice(WORDS) if rank % 2 else None,
                    because_title=pool[(r + rank) % len(pool)].title if rank % 3 == 0 else None,
                    terms=tuple(rnd.sample(WORDS, 3)),
                ),
            )
            for rank, it in enumerate(chosen, 1)
        )
        reader = Recipient(f"reader{r}", f"Reader {r}", f"reader{r}@example.org", teams=("nlp",))
        out.append((ReaderDigest(reader.audience, DAY, picks), reader))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emails", type=int, default=2_000)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument(
        "--untracked", action="store_true", help="plain links: no signed click/feedback URLs"
    )
    parser.add_argument("--write", help="markdown file to record the result in")
    args = parser.parse_args()
    settings = replace(SETTINGS, links=Links()) if args.untracked else SETTINGS
    work = digests(args.emails, args.items)
    feed = f"{BASE}/feeds/token.atom"
    started = time.perf_counter()
    render_email(*work[0], settings, now=NOW, feed_url=feed).as_bytes()
    first_ms = (time.perf_counter() - started) * 1000
    rendered, render_s, mime_s, size = 0, 0.0, 0.0, 0
    cpu = time.process_time()
    for digest, reader in work:
        started = time.perf_counter()
        mail = render_email(digest, reader, settings, now=NOW, feed_url=feed)
        middle = time.perf_counter()
        raw = mail.as_bytes()
        render_s += middle - started
        mime_s += time.perf_counter() - middle
        rendered += mail.shown
        size += len(raw)
    cpu = time.process_time() - cpu
    assert rendered == args.emails * args.items, "the size cap cut a realistic digest"
    total = render_s + mime_s
    n = args.emails
    result = (
        f"- Command: `python bench/bench_email.py --emails {n} --items {args.items}"
        f"{' --untracked' if args.untracked else ''}`\n"
        f"- Machine: {machine()}\n"
        f"- First email (includes per-process template compilation): {first_ms:.0f} ms\n"
        f"- `render_email`: {render_s / n * 1000:.2f} ms/email\n"
        f"- `as_bytes()` (MIME, quoted-printable): {mime_s / n * 1000:.2f} ms/email\n"
        f"- Both, one process: **{n / total:,.0f} emails/s, {total / n * 1000:.2f} ms/email** "
        f"(mean message {size / n / 1024:.0f} KiB)\n"
        f"- CPU time of this process: {cpu / n * 1000:.2f} ms/email (wall time suffers when "
        "other processes share the cores)\n"
    )
    print(result)
    if args.write:
        write_section(args.write, "Email rendering", result)


if __name__ == "__main__":
    main()
