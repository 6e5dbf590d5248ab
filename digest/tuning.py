"""Blend weights and neighbour settings learned from the team's own recent clicks.

Fixed weights chosen on one data set do not carry to the next team, so `digest train`
asks the team's own history which blend ranks best. It holds out the newest slice of
items (whole days, as they arrived) with every click on them: that slice looks like a
real next day, papers nobody had clicked at training time. A model fitted on
everything older ranks the slice for the readers who clicked in it; the search keeps
the neighbour settings, ridge strengths and blend weights under which those clicks
rank highest (recall at the digest size plus nDCG at the same cut). The final model
is then fitted on everything and takes the chosen settings.

A team too small to split (too few clicks or readers in the newest slice) keeps the
fixed defaults, and says so. The search itself is cheap next to fitting (blending
precomputed score matrices); the validation fit runs in a second process beside the
final fit (`in_background`), so on two cores it adds little to the wall time of a
train. Its cost is bounded by design, not by luck: the search reports its best
settings so far after each step, and a train waits for it at most `SEARCH_BUDGET`
of its final fit's time, or until `SEARCH_MIN_TIME` seconds from its start if that is
later (`Background`). A search still running then is stopped, and its best settings
so far are used (the defaults, if it had not yet chosen any); the model says so.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import Connection

import numpy as np

from digest.children import die_with_parent
from digest.features import ItemDoc, ReaderInfo
from digest.model import NEIGHBOUR_SCORERS, Interaction, Recommender

#: Share of the newest items held out (extended back to a whole day).
HOLDOUT = 0.2
#: Below these the held-out slice says too little to choose by: defaults are kept.
MIN_CLICKS = 30
MIN_READERS = 5
MIN_ITEMS = 20
#: Validation readers scored (a seeded sample beyond this): bounds the search's cost.
MAX_READERS = 600
#: The settings tried. Neighbour counts and co-click expansion apply to every
#: neighbour scorer; ridge strengths to the linear scorers over each item space.
K_GRID = (25, 50, 100)
EXPANSION_GRID = (0.1, 0.3, 1.0)
RIDGE_GRID = (1.0, 10.0, 100.0)
RIDGE_EMBED_GRID = (10.0, 100.0, 1000.0)
WEIGHT_GRID = (0.0, 0.1, 0.3, 0.6, 1.0, 1.5, 2.0, 3.0, 5.0)
#: A change must beat the current best by this share to be taken: smaller gains are
#: within the noise of one held-out slice, and chasing them overfits it.
MIN_GAIN = 0.001
ROUNDS = 2
#: How long a train waits for its search after the final fit, as a share of that
#: fit's time: the search may add at most this much to a train (applying what it
#: chose takes a little more).
SEARCH_BUDGET = 0.3
#: ... but the search always has this many seconds from its start: starting its
#: process alone takes a few, which a small team's fit of a second would not cover.
SEARCH_MIN_TIME = 15.0
#: How much the search process yields to the final fit (`os.nice`): the train's time is
#: the fit's, and the search only has to finish its best choice so far by the deadline.
_SEARCH_NICENESS = 10
_STATIC = ("lightfm", "tfidf", "interest", "embed")


@dataclass(frozen=True)
class Tuning:
    """What the search chose, and the evidence, as stored in the model file."""

    method: str  # "learned" or "default"
    reason: str
    weights: dict[str, float]
    neighbours_k: int
    expansion: float
    ridge: float
    ridge_embed: float
    metric: str = ""
    #: Validation scores: "default" and "learned", each {"recall": r, "ndcg": n}.
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    held_out: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def describe(record: dict | None) -> str:
    """One line saying how a model's blend weights were chosen (from its stored record)."""
    if not record:
        return "blend weights: fixed (chosen before weight search existed, or given)"
    if record.get("method") != "learned":
        return f"blend weights: fixed defaults ({record.get('reason', '')})"
    held, scores, k = record["held_out"], record["scores"], record["metric"]
    learned, default = scores["learned"], scores["default"]
    cut = f"; the search {record['reason']}" if record.get("reason") else ""
    return (
        f"blend weights: learned on the newest {held['items']} items "
        f"({held['clicks']} clicks by {held['readers']} readers); validation "
        f"{k.split(' ')[0]} {learned['recall']:.3f}, nDCG {learned['ndcg']:.3f} "
        f"(fixed defaults: {default['recall']:.3f}, {default['ndcg']:.3f}){cut}"
    )


def defaults(reason: str, params: dict | None = None) -> Tuning:
    """The fixed settings, with the reason they were kept."""
    model = Recommender(**(params or {}))
    return Tuning(
        "default", reason, dict(model.weights), model.neighbours_k, model.expansion,
        model.ridge, model.ridge_embed,
    )  # fmt: skip


# -- the held-out slice ------------------------------------------------------------------


@dataclass
class Holdout:
    """The newest items with their clicks, and everything older to fit on."""

    train_items: list[ItemDoc]
    valid_items: list[ItemDoc]
    train: list[Interaction]
    truth: dict[str, set[str]]


def recent_holdout(
    items: Sequence[ItemDoc],
    interactions: Sequence[Interaction],
    days: Sequence[str] | None = None,
    fraction: float = HOLDOUT,
) -> Holdout | str:
    """Split off the newest `fraction` of items (whole days), or say why it cannot.

    `items` are oldest first; `days` (one per item, e.g. first-seen dates) keeps a day
    from being split, unless that day holds most of the items. Clicks on held-out items
    are the truth; other signals on them (dislikes, ignored sends) are dropped, as a
    next day has none yet.
    """
    cut = len(items) - round(fraction * len(items))
    if days is not None:
        whole_day = cut
        while 0 < whole_day < len(items) and days[whole_day - 1] == days[whole_day]:
            whole_day -= 1
        # A day holding most of the history (one big import, say) cannot be held out
        # whole: then the arrival order alone marks the newest items.
        if whole_day >= len(items) // 2:
            cut = whole_day
    held = {d.id for d in items[cut:]}
    truth: dict[str, set[str]] = {}
    for event in interactions:
        if event.item_id in held and event.weight > 0:
            truth.setdefault(event.reader, set()).add(event.item_id)
    clicks = sum(len(v) for v in truth.values())
    if cut < MIN_ITEMS or len(held) < MIN_ITEMS:
        return f"{len(items)} items: at least {2 * MIN_ITEMS} are needed to hold some out"
    if clicks < MIN_CLICKS or len(truth) < MIN_READERS:
        return (
            f"{clicks} clicks by {len(truth)} readers on the newest {len(held)} items: "
            f"at least {MIN_CLICKS} clicks by {MIN_READERS} readers are needed"
        )
    train = [e for e in interactions if e.item_id not in held]
    return Holdout(list(items[:cut]), list(items[cut:]), train, truth)


# -- the search --------------------------------------------------------------------------


def tune(
    items: Sequence[ItemDoc],
    interactions: Sequence[Interaction],
    readers: dict[str, ReaderInfo] | None,
    params: dict,
    *,
    digest_size: int,
    days: Sequence[str] | None = None,
    vectors: dict[str, np.ndarray] | None = None,
    scorers: Sequence[str] | None = None,
    report: Callable[[Tuning], None] | None = None,
) -> Tuning:
    """Choose settings and weights on the newest slice; defaults when it is too small.

    `scorers` limits the blend searched (the light install has no embedding scorers);
    `report` gets the best choice so far after each step (see `Search.run`).
    """
    search = validation(items, interactions, readers, params, digest_size, days, vectors)
    if isinstance(search, str):
        return defaults(search, params)
    return search.run(scorers, report)


def validation(
    items: Sequence[ItemDoc],
    interactions: Sequence[Interaction],
    readers: dict[str, ReaderInfo] | None,
    params: dict,
    digest_size: int,
    days: Sequence[str] | None = None,
    vectors: dict[str, np.ndarray] | None = None,
) -> Search | str:
    """A search over the newest slice, or the reason there cannot be one."""
    holdout = recent_holdout(items, interactions, days)
    if isinstance(holdout, str):
        return holdout
    model = Recommender(**params).fit(
        holdout.train_items, holdout.train, readers, item_vectors=vectors
    )
    return Search(model, holdout, vectors, digest_size)


class Search:
    """Score matrices of one validation model, blended under candidate settings."""

    def __init__(
        self,
        model: Recommender,
        holdout: Holdout,
        vectors: dict[str, np.ndarray] | None,
        digest_size: int,
    ):
        self.model = model
        readers = sorted(holdout.truth)
        if len(readers) > MAX_READERS:
            rng = np.random.RandomState(model.random_state)
            readers = sorted(rng.choice(readers, MAX_READERS, replace=False).tolist())
        self.readers = readers
        self.items = holdout.valid_items
        self.k = max(1, min(digest_size, len(self.items)))
        column = {d.id: n for n, d in enumerate(self.items)}
        self.truth = np.zeros((len(readers), len(self.items)), dtype=bool)
        for row, reader in enumerate(readers):
            self.truth[row, [column[i] for i in holdout.truth[reader]]] = True
        self.clicks = int(self.truth.sum())
        self.prepared = model.prepare(self.items, vectors, k=max(K_GRID))
        self.available = set(model.raw_scores(self.readers[:1], self.prepared))
        self.active: list[str] = []
        self.default: dict[str, float] = {}
        self.judge_by(self.truth, self.k)

    def judge_by(self, truth: np.ndarray, k: int) -> None:
        """Score blends against `truth` (readers x items, True for a click) at cut `k`.

        What every evaluation of a blend shares (discounts, each reader's ideal gain) is
        computed here once: the search evaluates over a hundred blends.
        """
        self.truth, self.k = truth, k
        self._discounts = 1.0 / np.log2(np.arange(2, k + 2))
        self._relevant = truth.sum(axis=1)
        ideal = np.cumsum(self._discounts)
        self._ideal_of_reader = ideal[np.minimum(self._relevant, k) - 1]

    def run(
        self,
        scorers: Sequence[str] | None = None,
        report: Callable[[Tuning], None] | None = None,
    ) -> Tuning:
        """The best settings and weights for a blend of `scorers` (default: all the model has).

        `report`, when given, gets the best so far after the settings and after each
        scorer's weight is searched (its `reason` says how far the search got), so a
        caller that cannot wait for the end still has a choice (`Background`).
        """
        model = self.model
        names = scorers if scorers is not None else list(model.weights)
        # A scorer that says the same of every pair (no reader here has interests, say)
        # cannot help, and searching its weight would only distort the rescaling.
        static = self._part(("static",), _STATIC)
        silent = {n for n, values in static.items() if not values.any()}
        self.active = [n for n in names if n in self.available and n not in silent]
        self.default = {n: model.weights.get(n, 0.0) for n in self.active}
        setting = (model.neighbours_k, model.expansion, model.ridge, model.ridge_embed)
        start = self.objective(self._raw(*setting), self.default)
        default = self.metrics(self._raw(*setting), self.default)
        best, weights = self._settings(setting, start)
        raw = self._raw(*best)

        def chosen(weights: dict[str, float], progress: str = "") -> Tuning:
            rescaled = self._rescaled(weights)
            return Tuning(
                "learned", progress, self._full(names, rescaled),
                best[0], best[1], best[2], best[3],
                metric=f"recall@{self.k} + nDCG@{self.k}",
                scores={"learned": self.metrics(raw, rescaled), "default": default},
                held_out={"items": len(self.items), "clicks": self.clicks,
                          "readers": len(self.readers)},
            )  # fmt: skip

        if report is not None:
            report(chosen(weights, "settings chosen, weights not yet searched"))
        step = None if report is None else (lambda w, done: report(chosen(w, done)))
        weights, _score = self._weights(raw, weights, step)
        return chosen(weights)

    # -- settings, then weights --

    def _settings(
        self, setting: tuple[int, float, float, float], start: float
    ) -> tuple[tuple[int, float, float, float], dict[str, float]]:
        """Neighbour count, then expansion, then each ridge, under default weights."""
        best, best_score = setting, start
        for k in K_GRID:
            candidate = (k, best[1], best[2], best[3])
            score = self.objective(self._raw(*candidate), self.default)
            if score > best_score * (1 + MIN_GAIN):
                best, best_score = candidate, score
        for expansion in EXPANSION_GRID:
            candidate = (best[0], expansion, best[2], best[3])
            score = self.objective(self._raw(*candidate), self.default)
            if score > best_score * (1 + MIN_GAIN):
                best, best_score = candidate, score
        for ridge in RIDGE_GRID:
            candidate = (best[0], best[1], ridge, best[3])
            score = self.objective(self._raw(*candidate), self.default)
            if score > best_score * (1 + MIN_GAIN):
                best, best_score = candidate, score
        if "embed_linear" in self.active:
            for ridge in RIDGE_EMBED_GRID:
                candidate = (best[0], best[1], best[2], ridge)
                score = self.objective(self._raw(*candidate), self.default)
                if score > best_score * (1 + MIN_GAIN):
                    best, best_score = candidate, score
        return best, dict(self.default)

    def _weights(
        self,
        raw: dict[str, np.ndarray],
        weights: dict[str, float],
        step: Callable[[dict[str, float], str], None] | None = None,
    ) -> tuple[dict[str, float], float]:
        """Coordinate ascent: each scorer's weight over the grid, the rest held.

        `step` gets the weights after each scorer, and how far the search got.
        """
        best = self.objective(raw, weights)
        order = self._strongest_first(raw)
        for round_ in range(ROUNDS):
            changed = False
            for n, name in enumerate(order):
                # The other scorers' blend is the same for every value tried: made once.
                rest = self._blend(raw, {**weights, name: 0.0})
                for value in WEIGHT_GRID:
                    if value == weights[name]:
                        continue
                    trial = {**weights, name: value}
                    if not any(trial.values()):
                        continue
                    blended = rest + np.float32(value) * raw[name] if value else rest
                    score = self._objective_of(blended)
                    if score > best * (1 + MIN_GAIN):
                        weights, best, changed = trial, score, True
                if step is not None:
                    step(weights, f"weights of {n + 1} of {len(self.active)} scorers searched "
                         f"in round {round_ + 1} of {ROUNDS}")  # fmt: skip
            if not changed:
                break
        return weights, best

    def _strongest_first(self, raw: dict[str, np.ndarray]) -> list[str]:
        """The active scorers, the best alone on the slice first.

        A search stopped at its time budget (`Background`) has then tuned the scorers
        that matter most: the strongest scorer's weight is the one most worth moving.
        """
        alone = {name: self._objective_of(raw[name]) for name in self.active}
        return sorted(self.active, key=lambda name: -alone[name])

    def _full(self, names: Sequence[str], learned: dict[str, float]) -> dict[str, float]:
        """Every scorer's weight: learned ones, defaults for silent ones, 0 outside `names`."""
        return {
            name: learned.get(name, weight) if name in names else 0.0
            for name, weight in self.model.weights.items()
        }

    def _rescaled(self, weights: dict[str, float]) -> dict[str, float]:
        """Same ranking, on the defaults' scale: a `--min-score` keeps its meaning."""
        total, reference = sum(weights.values()), sum(self.default.values())
        if total <= 0 or reference <= 0:
            return weights
        return {n: round(w * reference / total, 4) for n, w in weights.items()}

    # -- scoring --

    def _raw(self, k: int, expansion: float, ridge: float, ridge_embed: float) -> dict:
        """Standardised scores under one setting; each part is computed once and reused.

        Neighbour scorers depend on (k, expansion), each linear scorer on its ridge, the
        rest on nothing searched.
        """
        parts = (
            self._part(("static",), _STATIC),
            self._part(("neighbours", k, expansion), NEIGHBOUR_SCORERS, k=k, expansion=expansion),
            self._part(("lightfm_linear", ridge), ("lightfm_linear",), ridge=ridge),
            self._part(("embed_linear", ridge_embed), ("embed_linear",), ridge_embed=ridge_embed),
        )
        return {name: values for part in parts for name, values in part.items()}

    def _part(self, key: tuple, names: tuple[str, ...], **setting) -> dict[str, np.ndarray]:
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            wanted = frozenset(n for n in names if n in self.available)
            raw = (
                self.model.raw_scores(self.readers, self.prepared, only=wanted, **setting)
                if wanted
                else {}
            )
            cache[key] = {n: _standardised(v) for n, v in raw.items()}
        return cache[key]

    def objective(self, raw: dict[str, np.ndarray], weights: dict[str, float]) -> float:
        return self._objective_of(self._blend(raw, weights))

    def _objective_of(self, blended: np.ndarray) -> float:
        metrics = self._metrics_of(blended)
        return metrics["recall"] + metrics["ndcg"]

    def metrics(self, raw: dict[str, np.ndarray], weights: dict[str, float]) -> dict:
        """Mean recall and nDCG at the digest size over the validation readers."""
        return self._metrics_of(self._blend(raw, weights))

    def _blend(self, raw: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
        blended = np.zeros(self.truth.shape, dtype=np.float32)
        for name, weight in weights.items():
            if weight and name in raw:
                blended += np.float32(weight) * raw[name]
        return blended

    def _metrics_of(self, blended: np.ndarray) -> dict:
        k = self.k
        top = np.argpartition(-blended, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(blended, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        hits = np.take_along_axis(self.truth, top, axis=1)
        recall = hits.sum(axis=1) / self._relevant
        ndcg = (hits * self._discounts).sum(axis=1) / self._ideal_of_reader
        return {"recall": float(recall.mean()), "ndcg": float(ndcg.mean())}


def _standardised(values: np.ndarray) -> np.ndarray:
    std = float(values.std())
    return (values - values.mean()) / (std if std > 1e-9 else 1.0)


# -- running beside the final fit ----------------------------------------------------------


class Background:
    """A weight search running in a second process, reporting its best choice as it goes."""

    def __init__(
        self,
        process: multiprocessing.process.BaseProcess,
        conn: Connection,
        sender: threading.Thread,
    ):
        self._process, self._conn, self._sender = process, conn, sender
        self._latest: Tuning | None = None

    def result(self, deadline: float | None = None) -> Tuning | None:
        """The search's choice; at `deadline` (a `time.monotonic()` value), its best so far.

        None when the deadline came before the search chose anything. A search that
        failed raises RuntimeError. The search process is gone when this returns.
        """
        try:
            while True:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not self._conn.poll(wait):
                    return _stopped(self._latest)
                kind, value = self._conn.recv()
                if kind == "error":
                    raise RuntimeError(value)
                self._latest = Tuning(**value)
                if kind == "done":
                    return self._latest
        except EOFError:
            raise RuntimeError("the search process ended without an answer") from None
        finally:
            self.stop()

    def stop(self) -> None:
        """End the search process, whatever it is doing."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._sender.join()  # its write fails at once if the search is gone
        self._conn.close()


def _stopped(latest: Tuning | None) -> Tuning | None:
    if latest is None:
        return None
    return replace(latest, reason=f"stopped at its time budget ({latest.reason})")


def in_background(**kwargs) -> Background:
    """Start `tune(**kwargs)` in a second process; the caller fits the final model meanwhile.

    Spawned rather than forked: the caller may already run torch's or OpenMP's threads.
    """
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(
        target=_search_main, args=(theirs, os.getpid()), name="digest-weight-search"
    )
    process.start()
    theirs.close()  # the child holds its own end: EOF here once it is gone
    # The inputs (every item and click) go over in a thread: pickling and writing them
    # while the child starts up took seconds the final fit can use.
    sender = threading.Thread(target=_send, args=(ours, kwargs), daemon=True)
    sender.start()
    return Background(process, ours, sender)


def _send(conn: Connection, kwargs: dict) -> None:
    with contextlib.suppress(OSError, ValueError):  # the search was stopped meanwhile
        conn.send(kwargs)


def _search_main(conn: Connection, parent: int) -> None:
    """The search process: each better choice goes to the parent as soon as it is made."""
    _search_worker(parent)
    try:
        kwargs = conn.recv()

        def report(tuning: Tuning) -> None:
            conn.send(("progress", tuning.as_dict()))

        conn.send(("done", tune(**kwargs, report=report).as_dict()))
    except Exception as exc:  # the parent decides what a failed search means
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _search_worker(parent: int) -> None:
    """The search shares the machine with the final fit: one BLAS thread, not all cores,
    and a lower priority, so that the fit `digest train` waits for slows down less.
    (On Linux a niceness is a thread's: the search runs in this one, and its one BLAS
    thread computes here too.)

    It also ends with `digest train`: killed, a train must not leave a search behind.
    """
    from threadpoolctl import threadpool_limits

    die_with_parent(parent)

    threadpool_limits(1)
    with contextlib.suppress(AttributeError, OSError):  # no os.nice on some systems
        os.nice(_SEARCH_NICENESS)
