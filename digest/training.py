"""From the database to the model: items, readers and weighted interactions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from digest import embed
from digest.features import ItemDoc, ReaderInfo, doc_of
from digest.feedback import EVENT_WEIGHTS
from digest.model import EMBED_RECIPE, Interaction, Recommender, embed_text
from digest.profiles import ProfileSet, teams_of
from digest.store import Store

#: Sent on some channel but never clicked, liked or tagged: a weak negative.
IGNORED_WEIGHT = -0.25
#: Items encoded (and stored) per batch: progress is kept if a long first train stops.
_EMBED_BATCH = 256


def interactions_from_events(
    events: list[tuple[str, str, str, str, str]],
    sends: list[tuple[str, str, str]] = (),
    *,
    before: str | None = None,
) -> list[Interaction]:
    """Weighted signals: likes and tags count double, dislikes and ignored sends negative.

    `sends` is the ledger's (audience, item id, digest date): an item sent and never
    engaged with is a weak negative. Only sends dated before `before` count, so an
    item delivered today is not held against a reader who has not opened it yet.
    Team audiences (`team:<name>`) are not readers and are left out.
    """
    engaged: dict[tuple[str, str], float] = defaultdict(float)
    for reader, item_id, event, _tag, _time in events:
        engaged[(reader, item_id)] += EVENT_WEIGHTS.get(event, 0.0)
    ignored = {
        (reader, item_id)
        for reader, item_id, day in sends
        if not reader.startswith("team:") and (before is None or day < before)
    }
    for key in ignored - set(engaged):
        engaged[key] = IGNORED_WEIGHT
    return [Interaction(r, i, w) for (r, i), w in sorted(engaged.items()) if w != 0]


def reader_infos(store: Store, profiles: ProfileSet) -> dict[str, ReaderInfo]:
    """Every reader (profile files and feedback-only readers) with interests and teams."""
    handles = set(store.reader_handles()) | set(profiles.readers)
    return {
        h: ReaderInfo(h, profiles.get(h).interests, teams_of(profiles, h)) for h in sorted(handles)
    }


def item_vectors(
    store: Store, docs: list[ItemDoc], progress: Callable[[int, int], None] | None = None
) -> dict[str, np.ndarray]:
    """Every doc's sentence embedding: stored ones reused, the rest encoded once and stored.

    Encoding is the slow part of training (tens of items per second on two cores),
    so an item is embedded once in its life, not on every train and rank.
    """
    key = f"{embed.MODEL_NAME}|{EMBED_RECIPE}"
    stored = store.embeddings([d.id for d in docs], key)
    out = {i: np.frombuffer(b, dtype=np.float32) for i, b in stored.items()}
    missing = [d for d in docs if d.id not in out or out[d.id].shape != (embed.DIMENSIONS,)]
    for start in range(0, len(missing), _EMBED_BATCH):
        batch = missing[start : start + _EMBED_BATCH]
        vectors = embed.encode([embed_text(d) for d in batch])
        store.save_embeddings(
            key, [(d.id, v.tobytes()) for d, v in zip(batch, vectors, strict=True)]
        )
        out.update((d.id, v) for d, v in zip(batch, vectors, strict=True))
        if progress:
            progress(start + len(batch), len(missing))
    return out


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
    **params,
) -> Recommender:
    """Fit (or, with `update`, incrementally update) the model and save it atomically.

    The update starts from the model at `source` (default: `path`); with `path`
    None nothing is saved (a dry run). `before` (a YYYY-MM-DD day) keeps sends from
    that day on out of the negatives: the daily run trains before it delivers, on
    what readers had time to open.
    """
    docs = [doc_of(item) for item in store.stored_items()]
    interactions = interactions_from_events(store.events(), store.sends(), before=before)
    readers = reader_infos(store, profiles)
    start = source or path
    if update and start and Path(start).exists():
        model = Recommender.load(start)
        vectors = item_vectors(store, docs) if model.use_embed else None
        model.fit_partial(docs, interactions, readers, epochs=update_epochs, item_vectors=vectors)
    else:
        wants = uses_embeddings(params.get("embeddings", "auto"))
        vectors = item_vectors(store, docs) if wants and docs else None
        model = Recommender(**params).fit(docs, interactions, readers, item_vectors=vectors)
    if path:
        model.save(path)
    return model
