"""Offline evaluation: item cold-start and new-reader protocols, with baselines.

Everything is computed in one run on one split, so the model and its baselines are
compared on exactly the same held-out items and readers.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.svm import LinearSVC

from digest import embed, tuning
from digest.errors import DigestError
from digest.features import ItemDoc, ReaderInfo, make_vectorizer
from digest.model import DEFAULT_WEIGHTS, Interaction, Recommender
from digest.paths import atomic_write
from digest.sysinfo import machine

CUTOFFS = (50, 100, 300)
SVM = "tfidf svm (arxiv-sanity)"


@dataclass
class Dataset:
    """Items and (reader, item) positives, as the import formats describe them."""

    items: list[ItemDoc]
    pairs: list[tuple[str, str]]


@dataclass
class Split:
    """Train/test partition of one protocol."""

    train_items: list[ItemDoc]
    test_items: list[ItemDoc]
    train: list[tuple[str, str]]
    test: dict[str, set[str]]


@dataclass
class Report:
    """Metrics per method for one protocol and seed."""

    protocol: str
    seed: int
    readers: int
    test_items: int
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: Learned-weight rows: what the search chose (`Tuning.as_dict()`).
    tunings: dict[str, dict] = field(default_factory=dict)
    fit_seconds: float = 0.0
    search_seconds: float = 0.0
    #: reader-history protocol: group -> method -> recall@100, and readers per group.
    groups: dict[str, dict[str, float]] = field(default_factory=dict)
    group_sizes: dict[str, int] = field(default_factory=dict)


# -- data ------------------------------------------------------------------------------


def read_citeulike(folder: str | Path) -> Dataset:
    """Read citeulike-a (users.dat, titles.txt, item-tag.dat, tags.dat): ids are line numbers."""
    root = Path(folder)
    try:
        titles = root.joinpath("titles.txt").read_text(encoding="utf-8").splitlines()
        tag_names = root.joinpath("tags.dat").read_text(encoding="utf-8").splitlines()
        item_tags = root.joinpath("item-tag.dat").read_text(encoding="utf-8").splitlines()
        users = root.joinpath("users.dat").read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DigestError(f"{folder}: cannot read citeulike-a files ({exc})") from None
    items = []
    for i, title in enumerate(titles):
        tags = (
            tuple(tag_names[int(t)] for t in item_tags[i].split()[1:]) if i < len(item_tags) else ()
        )
        items.append(ItemDoc(id=str(i), title=title.strip(), tags=tags))
    pairs = [(f"u{u}", item) for u, line in enumerate(users) for item in line.split()[1:]]
    return Dataset(items, pairs)


def write_dataset(data: Dataset, out: str | Path) -> tuple[Path, Path]:
    """Write items.jsonl and interactions.csv (the generic import formats), each atomically."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    items_path, pairs_path = folder / "items.jsonl", folder / "interactions.csv"
    rows = (
        {"id": doc.id, "title": doc.title, "abstract": doc.abstract, "tags": list(doc.tags)}
        for doc in data.items
    )
    atomic_write(items_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    pairs = io.StringIO(newline="")
    writer = csv.writer(pairs)
    writer.writerow(["user", "item", "event"])
    writer.writerows((u, i, "click") for u, i in data.pairs)
    atomic_write(pairs_path, pairs.getvalue())
    return items_path, pairs_path


def read_dataset(items_path: str | Path, pairs_path: str | Path) -> Dataset:
    """Read items JSONL and an interactions CSV (`user,item,event`; positives only)."""
    from digest.feedback import read_feedback
    from digest.parsers.jsonitems import parse_json_items

    text = Path(items_path).read_text(encoding="utf-8")
    records = parse_json_items(text, path=str(items_path)).items
    items = [
        ItemDoc(id=r.external_id or str(n), title=r.title, abstract=r.abstract, tags=r.tags)
        for n, r in enumerate(records)
    ]
    rows, problems = read_feedback(str(pairs_path))
    if problems:
        line, message = problems[0]
        raise DigestError(f"{pairs_path}:{line}: {message}")
    positives = {"click", "like", "tag"}
    return Dataset(items, [(r.user, r.item) for r in rows if r.event in positives])


# -- protocols -------------------------------------------------------------------------


def item_cold_start(
    data: Dataset, seed: int, fraction: float = 0.2, *, train_tags: bool = False
) -> Split:
    """Hold out a seeded 20% of items; all their pairs are test.

    Held-out items never keep their tags (readers wrote them: a leak). Training items
    keep theirs only with `train_tags`: a feature that every new item lacks teaches
    LightFM to lean on it, and on citeulike-a that costs cold-start recall (see
    docs/evaluation.md). Publication metadata such as arXiv categories is different:
    new items have it too, so the product keeps item tags.
    """
    order = np.random.RandomState(seed).permutation(len(data.items))
    held = set(order[: round(fraction * len(data.items))].tolist())
    test_items = [_without_tags(d) for i, d in enumerate(data.items) if i in held]
    train_items = [
        d if train_tags else _without_tags(d) for i, d in enumerate(data.items) if i not in held
    ]
    test_ids = {d.id for d in test_items}
    test: dict[str, set[str]] = defaultdict(set)
    train = []
    for user, item in data.pairs:
        if item in test_ids:
            test[user].add(item)
        else:
            train.append((user, item))
    return Split(train_items, test_items, train, dict(test))


def new_readers(split: Split, seed: int, fraction: float = 0.2, keep: int = 3) -> Split:
    """Same items; a seeded fifth of the test readers keep at most `keep` training clicks."""
    rng = np.random.RandomState(seed + 1000)
    readers = sorted(split.test)
    chosen = set(rng.choice(readers, round(fraction * len(readers)), replace=False).tolist())
    by_reader: dict[str, list[str]] = defaultdict(list)
    for user, item in split.train:
        by_reader[user].append(item)
    train = []
    for user, items in by_reader.items():
        if user in chosen and len(items) > keep:
            items = [items[i] for i in sorted(rng.choice(len(items), keep, replace=False))]
        train.extend((user, item) for item in items)
    test = {u: split.test[u] for u in chosen}
    return Split(split.train_items, split.test_items, train, test)


#: Training clicks kept per group of the reader-history protocol (0: profile only).
HISTORY_SIZES = (0, 1, 3, 10)
#: Readers in that protocol have at least this many training clicks; one group keeps all.
MIN_HISTORY = 50
#: Interests a profile-only reader states: their library's most frequent tags.
PROFILE_INTERESTS = 5
#: A tag on more than this share of all items says nothing about a reader.
_COMMON_TAG = 0.02


def reader_history(
    data: Dataset, split: Split, seed: int
) -> tuple[Split, dict[str, str], dict[str, ReaderInfo]]:
    """Readers with 50+ clicks in seeded groups cut to 0, 1, 3 or 10 clicks, or kept whole.

    The groups come from one population, so their recall shows what history is worth.
    A reader cut to 0 clicks keeps a profile: their library's most frequent tags as
    interests, as a new reader would state them. Readers outside the groups (not
    evaluated) keep such a profile too, so the model has seen interests at work.
    """
    by_reader: dict[str, list[str]] = defaultdict(list)
    for user, item in split.train:
        by_reader[user].append(item)
    eligible = sorted(u for u in split.test if len(by_reader[u]) >= MIN_HISTORY)
    rng = np.random.RandomState(seed + 2000)
    names = [str(n) for n in HISTORY_SIZES] + [f"{MIN_HISTORY}+"]
    groups = {u: names[n % len(names)] for n, u in enumerate(rng.permutation(eligible))}
    interests = _tag_interests(data, by_reader)
    train, infos = [], {}
    for user, items in by_reader.items():
        group = groups.get(user)
        if group in (None, f"{MIN_HISTORY}+"):
            keep = items
        else:
            picked = rng.choice(len(items), int(group), replace=False)
            keep = [items[i] for i in sorted(picked)]
        if group in (None, "0") and interests.get(user):
            infos[user] = ReaderInfo(user, interests[user])
        train.extend((user, item) for item in keep)
    test = {u: split.test[u] for u in groups}
    return Split(split.train_items, split.test_items, train, test), groups, infos


def _tag_interests(data: Dataset, libraries: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    tags = {d.id: d.tags for d in data.items}
    counts: dict[str, int] = defaultdict(int)
    for doc in data.items:
        for tag in set(doc.tags):
            counts[tag] += 1
    common = _COMMON_TAG * len(data.items)
    out = {}
    for user, items in libraries.items():
        mine: dict[str, int] = defaultdict(int)
        for item in items:
            for tag in tags.get(item, ()):
                if counts[tag] <= common:
                    mine[tag] += 1
        top = sorted(mine, key=lambda t: (-mine[t], t))[:PROFILE_INTERESTS]
        out[user] = tuple(t.replace("-", " ").replace("_", " ") for t in top)
    return out


def _without_tags(doc: ItemDoc) -> ItemDoc:
    # Held-out items' tags were written by the readers who saved them: a leak.
    return ItemDoc(doc.id, doc.title, doc.abstract, (), doc.source)


# -- metrics ---------------------------------------------------------------------------


def evaluate_scores(
    scores: np.ndarray, readers: list[str], items: list[str], test: dict[str, set[str]]
) -> dict[str, float]:
    """Recall@K, nDCG@100, mean AUC and catalogue coverage (share of items in any top-100)."""
    index = {item: i for i, item in enumerate(items)}
    recalls = {k: [] for k in CUTOFFS}
    ndcgs, aucs = [], []
    covered = np.zeros(len(items), dtype=bool)
    discounts = 1.0 / np.log2(np.arange(2, 102))
    top = min(100, len(items))
    for row, reader in enumerate(readers):
        relevant = np.array(sorted(index[i] for i in test[reader] if i in index))
        values = scores[row]
        covered[_top_columns(values, top)] = True
        hit_ranks = np.sort(_ranks(values, relevant))
        for k in CUTOFFS:
            recalls[k].append(float((hit_ranks < k).sum()) / len(relevant))
        gains = discounts[hit_ranks[hit_ranks < 100]].sum()
        ideal = discounts[: min(len(relevant), 100)].sum()
        ndcgs.append(gains / ideal)
        n_neg = len(items) - len(relevant)
        if n_neg:
            # AUC from ranks: the share of (positive, negative) pairs ordered correctly.
            below = (len(items) - 1 - hit_ranks) - (len(relevant) - 1 - np.arange(len(relevant)))
            aucs.append(float(below.sum()) / (len(relevant) * n_neg))
    out = {f"recall@{k}": float(np.mean(v)) for k, v in recalls.items()}
    out.update(
        {
            "ndcg@100": float(np.mean(ndcgs)),
            "auc": float(np.mean(aucs)),
            "coverage": float(covered.mean()),
        }
    )
    return out


def _ranks(values: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """0-based positions of `columns` in a stable descending sort of `values`.

    Counting beats sorting: only a reader's few relevant items need a rank. Ties
    go to the lower column, as a stable sort would order them.
    """
    mine = values[columns][:, None]
    higher = (values[None, :] > mine).sum(axis=1)
    earlier = np.array([(values[:c] == values[c]).sum() for c in columns])
    return higher + earlier


def _top_columns(values: np.ndarray, k: int) -> np.ndarray:
    """The k best columns (ties broken by position, as in a stable sort)."""
    threshold = np.partition(values, len(values) - k)[len(values) - k]
    above = np.flatnonzero(values > threshold)
    tied = np.flatnonzero(values == threshold)[: k - len(above)]
    return np.concatenate([above, tied])


# -- methods ---------------------------------------------------------------------------

Scorer = Callable[[Split, list[str], "Context"], np.ndarray]


@dataclass
class Context:
    """Work shared by methods within one split (text vectors, embeddings)."""

    tfidf_train: sp.csr_matrix
    tfidf_test: sp.csr_matrix
    train_index: dict[str, int]
    history: dict[str, list[int]]
    vectors: dict[str, np.ndarray] | None
    seed: int


def make_context(split: Split, seed: int, vectors: dict[str, np.ndarray] | None) -> Context:
    vectorizer = make_vectorizer()
    tfidf_train = vectorizer.fit_transform([d.text for d in split.train_items])
    tfidf_test = vectorizer.transform([d.text for d in split.test_items])
    train_index = {d.id: i for i, d in enumerate(split.train_items)}
    history: dict[str, list[int]] = defaultdict(list)
    for user, item in split.train:
        history[user].append(train_index[item])
    return Context(tfidf_train, tfidf_test, train_index, dict(history), vectors, seed)


def score_random(split: Split, readers: list[str], ctx: Context) -> np.ndarray:
    rng = np.random.RandomState(ctx.seed)
    return rng.random_sample((len(readers), len(split.test_items)))


def score_popularity(split: Split, readers: list[str], ctx: Context) -> np.ndarray:
    """Predicted popularity: a new item scores the mean saves of its 20 nearest train items.

    Held-out items have no saves of their own, so raw popularity cannot rank them; this
    is the non-personalised baseline that still uses only what is known at publication.
    """
    saves = np.zeros(len(split.train_items), dtype=np.float32)
    for _, item in split.train:
        saves[ctx.train_index[item]] += 1
    sims = (ctx.tfidf_test @ ctx.tfidf_train.T).toarray()
    top = np.argpartition(-sims, 20, axis=1)[:, :20]
    predicted = saves[top].mean(axis=1)
    return np.tile(predicted, (len(readers), 1))


def score_tfidf_centroid(split: Split, readers: list[str], ctx: Context) -> np.ndarray:
    from sklearn.preprocessing import normalize

    rows = [ctx.tfidf_train[ctx.history.get(r, [])].sum(axis=0) for r in readers]
    centroid = normalize(np.asarray(np.vstack(rows)))
    return np.asarray(sp.csr_matrix(centroid) @ ctx.tfidf_test.T.toarray())


def score_svm(split: Split, readers: list[str], ctx: Context) -> np.ndarray:
    """arxiv-sanity-lite style: a LinearSVC per reader, balanced classes, C=0.1.

    The 2,000 sampled negatives follow the dataset's reference numbers. Input checks
    are skipped (the matrices are ours) because they cost twice the fitting itself.
    """
    rng = np.random.RandomState(ctx.seed)
    n_train = ctx.tfidf_train.shape[0]
    weights = np.zeros((len(readers), ctx.tfidf_train.shape[1]), dtype=np.float32)
    bias = np.zeros(len(readers), dtype=np.float32)
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        for row, reader in enumerate(readers):
            positives = sorted(set(ctx.history.get(reader, [])))
            if not positives:
                continue
            sample = rng.choice(n_train, min(2000, n_train), replace=False)
            negatives = np.setdiff1d(sample, positives)
            x = ctx.tfidf_train[np.concatenate([positives, negatives])]
            y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
            clf = LinearSVC(C=0.1, class_weight="balanced", max_iter=2000, tol=1e-5)
            clf.fit(x, y)
            weights[row], bias[row] = clf.coef_[0], clf.intercept_[0]
    return np.asarray(ctx.tfidf_test @ weights.T).T + bias[:, None]


#: Report rows for digest, each a blend of one fitted model's scorers.
FIXED_NO_EMBED = "digest (no embeddings, fixed weights)"
LEARNED_NO_EMBED = "digest (no embeddings, learned weights)"
FIXED_EMBED = "digest (with embeddings, fixed weights)"
LEARNED_EMBED = "digest (with embeddings, learned weights)"
#: Ablations: the two scorers of the earlier release, and the fixed light blend with the
#: per-reader SVM added as one more member (does its boundary add what the blend lacks?).
ABLATION_TWO = "ablation: text neighbours + lightfm"
ABLATION_SVM = "ablation: no embeddings, fixed, + per-reader SVM"
#: What the evaluation's "digest" is: it ranks all held-out items at once and reports
#: recall@100, so the weight search optimises the top 100 too.
EVAL_DIGEST_SIZE = 100


def light_scorers(weights: dict[str, float]) -> list[str]:
    """The scorers of the light install (no `embed` extra): no embedding scorer."""
    return [name for name in weights if not name.startswith("embed")]


def ablation_rows(weights: dict[str, float], with_embeddings: bool) -> dict[str, dict]:
    """Rows computed from one fitted model under its fixed (default) weights.

    "LightFM alone" and the ablation run on exactly the same training as digest
    itself; "no embeddings" is what the light install ranks by.
    """
    rows = {
        "lightfm alone": {"lightfm": 1.0},
        "digest: text neighbours only": {"neighbours": 1.0},
        ABLATION_TWO: {"neighbours": 1.0, "lightfm": 1.0},
        FIXED_NO_EMBED: {k: (0.0 if k.startswith("embed") else w) for k, w in weights.items()},
    }
    if with_embeddings:
        rows[FIXED_EMBED] = dict(weights)
    return rows


@dataclass
class ModelRows:
    """digest's rows for one split: scores per row, the search's choices and its cost."""

    scores: dict[str, np.ndarray]
    tunings: dict[str, dict]
    fit_seconds: float
    search_seconds: float


def score_model(
    split: Split,
    readers: list[str],
    ctx: Context,
    infos: dict[str, ReaderInfo] | None = None,
    **params,
) -> ModelRows:
    """Fit digest once, score the fixed-weight rows, then the learned-weight rows.

    The learned weights come from `digest.tuning` run on the split's training data
    alone (its newest items held out), never on the test items.
    """
    params = {"random_state": ctx.seed, "embeddings": "off" if ctx.vectors is None else "on",
              **params}  # fmt: skip
    interactions = [Interaction(u, i, 1.0) for u, i in split.train]
    started = time.perf_counter()
    model = Recommender(**params).fit(
        split.train_items, interactions, infos, item_vectors=ctx.vectors
    )
    prepared = model.prepare(split.test_items, ctx.vectors, k=max(tuning.K_GRID))
    raw = model.raw_scores(readers, prepared)
    scores = {
        row: model.blend(raw, weights)
        for row, weights in ablation_rows(model.weights, ctx.vectors is not None).items()
    }
    fitted = time.perf_counter() - started
    started = time.perf_counter()
    search = tuning.validation(
        split.train_items, interactions, infos, params, EVAL_DIGEST_SIZE, vectors=ctx.vectors
    )
    searches = {LEARNED_NO_EMBED: light_scorers(model.weights)}
    if ctx.vectors is not None:
        searches[LEARNED_EMBED] = None
    tunings = {}
    for row, scorers in searches.items():
        chosen = tuning.defaults(search, params) if isinstance(search, str) else search.run(scorers)
        model.apply_tuning(chosen)
        scores[row] = model.score(readers, [], prepared=prepared).blended
        tunings[row] = chosen.as_dict()
    return ModelRows(scores, tunings, fitted, time.perf_counter() - started)


def baselines() -> dict[str, Scorer]:
    """The baselines in the report, computed on the same split as the model."""
    return {
        "random": score_random,
        "popularity (text-predicted)": score_popularity,
        "tfidf centroid": score_tfidf_centroid,
        "tfidf svm (arxiv-sanity)": score_svm,
    }


def run_protocol(
    name: str,
    split: Split,
    seed: int,
    vectors: dict[str, np.ndarray] | None,
    *,
    groups: dict[str, str] | None = None,
    infos: dict[str, ReaderInfo] | None = None,
) -> Report:
    """Score every baseline and the model on one split and collect the metrics.

    With `groups` (reader -> group name), recall@100 is also reported per group.
    `infos` gives readers profile interests.
    """
    readers = sorted(split.test)
    item_ids = [d.id for d in split.test_items]
    report = Report(name, seed, len(readers), len(item_ids))
    if not readers:  # e.g. no reader has enough history for the reader-history groups
        return report
    ctx = make_context(split, seed, vectors)
    baseline_scores = {}
    for method, scorer in baselines().items():
        started = time.perf_counter()
        baseline_scores[method] = scores = scorer(split, readers, ctx)
        report.seconds[method] = time.perf_counter() - started
        _collect(report, method, scores, readers, item_ids, split.test, groups)
    rows = score_model(split, readers, ctx, infos)
    # One more member with one member's share: the fixed blend sums `members` unit scorers.
    members = sum(1 for w in ablation_rows(DEFAULT_WEIGHTS, False)[FIXED_NO_EMBED].values() if w)
    blend, svm = _standardised(rows.scores[FIXED_NO_EMBED]), _standardised(baseline_scores[SVM])
    rows.scores[ABLATION_SVM] = blend + svm / members
    for method, scores in rows.scores.items():
        _collect(report, method, scores, readers, item_ids, split.test, groups)
        learned = method in rows.tunings
        report.seconds[method] = rows.fit_seconds + (rows.search_seconds if learned else 0)
    report.tunings = rows.tunings
    report.search_seconds = rows.search_seconds
    report.fit_seconds = rows.fit_seconds
    return report


def _standardised(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() or 1.0)


def _collect(
    report: Report,
    method: str,
    scores: np.ndarray,
    readers: list[str],
    item_ids: list[str],
    test: dict[str, set[str]],
    groups: dict[str, str] | None,
) -> None:
    report.metrics[method] = evaluate_scores(scores, readers, item_ids, test)
    for group in sorted(set((groups or {}).values()), key=_group_order):
        rows = [n for n, reader in enumerate(readers) if groups[reader] == group]
        members = [readers[n] for n in rows]
        metrics = evaluate_scores(scores[rows], members, item_ids, test)
        report.groups.setdefault(group, {})[method] = metrics["recall@100"]
        report.group_sizes[group] = len(rows)


def _group_order(name: str) -> int:
    return int(name.rstrip("+"))


PROTOCOLS = {
    "item-cold-start": (
        "a seeded 20% of items is held out with all their clicks; every reader with a "
        "held-out item gets all held-out items ranked (the daily situation: nobody has "
        "clicked today's papers)."
    ),
    "new-readers": (
        "the same held-out items, ranked for a seeded fifth of those readers after cutting "
        "their training history to at most 3 clicks."
    ),
    "reader-history": (
        f"the same held-out items, ranked for the readers with at least {MIN_HISTORY} "
        "training clicks, split at random into groups whose history is cut to 0 clicks "
        "(a profile only: their library's most frequent tags as interests), 1, 3 or 10 "
        f"clicks, or kept whole ({MIN_HISTORY}+)."
    ),
}


def embed_all(items: list[ItemDoc]) -> dict[str, np.ndarray] | None:
    """Embeddings of every item once, shared by every seed (None without the extra)."""
    if not embed.available():
        return None
    vectors = embed.encode_items([(d.title, d.abstract) for d in items])
    return {d.id: v for d, v in zip(items, vectors, strict=True)}


def evaluate(
    data: Dataset,
    seeds: list[int],
    *,
    protocols: tuple[str, ...] = tuple(PROTOCOLS),
    progress: Callable[[str], None] | None = None,
    workers: int = 2,
    train_tags: bool = False,
) -> list[Report]:
    """Run the protocols for each seed; embeddings (if installed) are computed once.

    Each (seed, protocol) job is independent and single-threaded, so `workers`
    processes run them side by side (spawned, not forked: the parent has already
    started torch's and OpenMP's thread pools).
    """
    vectors = embed_all(data.items)
    if progress:
        progress("embeddings: " + ("computed" if vectors is not None else "not installed"))
    # Longest jobs first (item cold-start scores every reader) keeps both workers busy.
    jobs = [(protocol, seed) for protocol in sorted(protocols) for seed in seeds]
    if workers <= 1 or len(jobs) == 1:
        reports = [_job(data, p, s, vectors, train_tags) for p, s in jobs]
        for report in reports:
            _announce(report, progress)
        return reports
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_job, data, p, s, vectors, train_tags) for p, s in jobs]
        for future in as_completed(futures):
            _announce(future.result(), progress)
        return [f.result() for f in futures]


def _job(data: Dataset, protocol: str, seed: int, vectors: dict | None, train_tags: bool) -> Report:
    split = item_cold_start(data, seed, train_tags=train_tags)
    if protocol == "new-readers":
        split = new_readers(split, seed)
    if protocol == "reader-history":
        split, groups, infos = reader_history(data, split, seed)
        return run_protocol(protocol, split, seed, vectors, groups=groups, infos=infos)
    return run_protocol(protocol, split, seed, vectors)


def _announce(report: Report, progress: Callable[[str], None] | None) -> None:
    if progress:
        summary = ", ".join(f"{m} {v['recall@100']:.3f}" for m, v in report.metrics.items())
        progress(f"{report.protocol} seed {report.seed}: recall@100 {summary}")


def render_markdown(reports: list[Report], command: str, seconds: float) -> str:
    """The evaluation report for docs/evaluation.md: a summary, then every table."""
    lines = [
        "# Evaluation",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine()}",
        f"- Wall time: {seconds:.0f} s for everything below, embeddings included.",
        "",
        "Protocols:",
        "",
        *[f"- **{name}**: {text}" for name, text in PROTOCOLS.items()],
        "",
        "Held-out items never carry tags (readers wrote them). Rows marked digest come",
        "from one fitted model per split; each is a blend of its scorers, so",
        '"lightfm alone" and "text neighbours only" are ablations of the same training.',
        '"Fixed weights" are the defaults in `digest/model.py`; "learned weights" are',
        "chosen by `digest.tuning` inside each split's training data (its newest 20% of",
        "training items held out), never on the test items.",
        "",
    ]
    lines += _summary(reports)
    lines += _history_summary(reports)
    lines += _tuning_table(reports)
    for report in reports:
        lines += _protocol_table(report)
    return "\n".join(lines)


def _history_summary(reports: list[Report]) -> list[str]:
    mine = [r for r in reports if r.groups]
    if not mine:
        return []
    groups = sorted(mine[0].groups, key=_group_order)
    methods = list(mine[0].groups[groups[0]])
    sizes = " / ".join(str(int(np.mean([r.group_sizes[g] for r in mine]))) for g in groups)
    lines = [
        "## Recall@100 by reader history (reader-history protocol)",
        "",
        f"Mean over seeds {', '.join(str(r.seed) for r in mine)}; readers per group: {sizes}. "
        "The 0-click group ranks from profile interests alone (the SVM has nothing to "
        "learn from there).",
        "",
        "| method | " + " | ".join(f"{g} clicks" for g in groups) + " |",
        "|---" * (len(groups) + 1) + "|",
    ]
    for method in methods:
        cells = [np.mean([r.groups[g][method] for r in mine]) for g in groups]
        lines.append(f"| {method} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return [*lines, ""]


def _tuning_table(reports: list[Report]) -> list[str]:
    rows = [(r, name, t) for r in reports for name, t in r.tunings.items()]
    if not rows:
        return []
    lines = [
        "## What the weight search chose",
        "",
        "Per split: the held-out slice of the training data, its validation score with the",
        "fixed and the learned settings, the settings chosen (neighbours per item, co-click",
        "expansion, ridge for the LightFM and embedding spaces) and the weights. Search",
        "seconds are the validation fit plus the search, against the final fit's seconds.",
        "",
        "| protocol | seed | row | held out | validation (fixed -> learned) | k, expansion, "
        "ridges | weights | search s / fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for report, name, t in rows:
        lines.append(_tuning_row(report, name, t))
    return [*lines, ""]


def _tuning_row(report: Report, name: str, t: dict) -> str:
    row = "no embeddings" if name == LEARNED_NO_EMBED else "with embeddings"
    if t["method"] != "learned":
        return (
            f"| {report.protocol} | {report.seed} | {row} | fixed defaults: {t['reason']} | | | | |"
        )
    held, scores = t["held_out"], t["scores"]
    before = scores["default"]["recall"] + scores["default"]["ndcg"]
    after = scores["learned"]["recall"] + scores["learned"]["ndcg"]
    weights = ", ".join(f"{n} {w:g}" for n, w in t["weights"].items() if w)
    return (
        f"| {report.protocol} | {report.seed} | {row} | {held['items']} items, "
        f"{held['clicks']} clicks | {before:.3f} -> {after:.3f} | {t['neighbours_k']}, "
        f"{t['expansion']:g}, {t['ridge']:g}, {t['ridge_embed']:g} | {weights} | "
        f"{report.search_seconds:.0f} / {report.fit_seconds:.0f} |"
    )


def _summary(reports: list[Report]) -> list[str]:
    seeds = sorted({r.seed for r in reports})
    lines = ["## Summary: recall@100", ""]
    for protocol in PROTOCOLS:
        mine = {r.seed: r for r in reports if r.protocol == protocol}
        if not mine:
            continue
        methods = list(next(iter(mine.values())).metrics)
        header = " | ".join(f"seed {s}" for s in seeds if s in mine)
        if protocol == "reader-history":
            continue  # its summary is by group (below)
        lines += [f"### {protocol}", "", f"| method | {header} | mean | vs SVM |"]
        lines.append("|---" * (len(mine) + 3) + "|")
        for method in methods:
            values = [mine[s].metrics[method]["recall@100"] for s in seeds if s in mine]
            svm = [mine[s].metrics[SVM]["recall@100"] for s in seeds if s in mine]
            ratio = np.mean(values) / np.mean(svm) if SVM in methods else float("nan")
            cells = " | ".join(f"{v:.3f}" for v in values)
            lines.append(f"| {method} | {cells} | {np.mean(values):.3f} | {ratio:.2f}x |")
        lines.append("")
    return lines


def _protocol_table(report: Report) -> list[str]:
    lines = [
        f"## {report.protocol}, seed {report.seed}",
        "",
        f"{report.readers} readers, {report.test_items} held-out items. "
        "Seconds for digest rows are one shared fit and score.",
        "",
        "| method | recall@50 | recall@100 | recall@300 | nDCG@100 | AUC | coverage | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, m in report.metrics.items():
        lines.append(
            f"| {method} | {m['recall@50']:.3f} | {m['recall@100']:.3f} | "
            f"{m['recall@300']:.3f} | {m['ndcg@100']:.3f} | {m['auc']:.3f} | "
            f"{m['coverage']:.3f} | {report.seconds[method]:.0f} |"
        )
    lines.append("")
    return lines
