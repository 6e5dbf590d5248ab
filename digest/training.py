"""From the database to the model: items, readers and weighted interactions."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from digest.features import ItemDoc, ReaderInfo
from digest.feedback import EVENT_WEIGHTS
from digest.model import Interaction, Recommender
from digest.profiles import ProfileSet, teams_of
from digest.store import Store

#: Sent on some channel but never clicked, liked or tagged: a weak negative.
IGNORED_WEIGHT = -0.25
DEFAULT_MODEL = "digest.model"
ENV_MODEL = "DIGEST_MODEL"


def item_docs(rows: list[dict]) -> list[ItemDoc]:
    """Model inputs from item rows (as `Store.items` returns them)."""
    return [
        ItemDoc(
            id=r["id"],
            title=r["title"],
            abstract=r.get("abstract") or "",
            tags=tuple(r["tags"] if isinstance(r["tags"], list) else json.loads(r["tags"])),
            source=str(r.get("source_id") or ""),
        )
        for r in rows
    ]


def interactions_from_events(events: list[tuple[str, str, str, str, str]]) -> list[Interaction]:
    """Weighted signals: likes and tags count double, dislikes and ignored sends negative."""
    engaged: dict[tuple[str, str], float] = defaultdict(float)
    sent: set[tuple[str, str]] = set()
    for reader, item_id, event, _tag, _time in events:
        if event == "sent":
            sent.add((reader, item_id))
        else:
            engaged[(reader, item_id)] += EVENT_WEIGHTS[event]
    for key in sent - set(engaged):
        engaged[key] = IGNORED_WEIGHT
    return [Interaction(r, i, w) for (r, i), w in sorted(engaged.items()) if w != 0]


def reader_infos(store: Store, profiles: ProfileSet) -> dict[str, ReaderInfo]:
    """Every reader (profile files and feedback-only readers) with interests and teams."""
    handles = set(store.reader_handles()) | set(profiles.readers)
    return {
        h: ReaderInfo(h, profiles.get(h).interests, teams_of(profiles, h)) for h in sorted(handles)
    }


def train(
    store: Store, profiles: ProfileSet, path: str | Path, *, update: bool = False, **params
) -> Recommender:
    """Fit (or, with `update`, incrementally update) the model and save it atomically."""
    for handle, profile in profiles.readers.items():
        store.ensure_reader(handle, origin="profile", name=profile.name, email=profile.email)
    docs = item_docs(store.items())
    interactions = interactions_from_events(store.events())
    readers = reader_infos(store, profiles)
    if update and Path(path).exists():
        model = Recommender.load(path)
        model.fit_partial(docs, interactions, readers)
    else:
        model = Recommender(**params).fit(docs, interactions, readers)
    model.save(path)
    return model
