"""The model file format: NumPy arrays plus a JSON header, in one `.npz` archive.

A model file may come from anywhere (a shared folder, a download, a colleague), so
reading it must never run code. Python's pickle does exactly that, so the model is
stored as plain data instead:

- `header.npy`: the UTF-8 bytes of a JSON object (uint8 array) holding the magic
  string, the format version, hyperparameters, vocabularies, ids and blend weights;
- every other member: a numeric array (`float32`, `int32`, `int64`, `uint32`, `bool`),
  loaded with `allow_pickle=False`, so an object array is refused by NumPy itself.
  A sparse matrix is four members: `<name>.data`, `.indices`, `.indptr`, `.shape`.

`read` turns every failure (missing, truncated, random bytes, a planted pickle, a
wrong version, a missing or mis-shaped array) into one `ModelError` naming the file.
The layout is documented in docs/architecture.md.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from digest.errors import ModelError

MAGIC = "digest-model"
#: Bumped whenever the header or the set of arrays changes meaning.
FORMAT = 3
_HEADER = "header"
_ALLOWED_KINDS = frozenset("fiub")  # float, signed int, unsigned int, bool


def write(path: str | os.PathLike[str], header: dict[str, Any], arrays: dict[str, Any]) -> None:
    """Write header and arrays atomically: a crash never leaves half a model file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    members = {_HEADER: _encode_header({"magic": MAGIC, "format": FORMAT, **header})}
    for name, value in arrays.items():
        members.update(_pack(name, value))
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".model-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, allow_pickle=False, **members)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and every array of a model file, or a ModelError saying why not."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ModelError(f"{path}: not a digest model file (a bare array)")
            arrays = {name: archive[name] for name in archive.files}
    except ModelError:
        raise
    except FileNotFoundError:
        raise ModelError(f"{path}: no model file; run 'digest train' first") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a directory, not a model file") from None
    except PermissionError:
        raise ModelError(f"{path}: permission denied") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as exc:
        # NumPy refuses pickled data with a ValueError; truncated or random files fail
        # as a bad zip, an OSError or an EOFError.
        raise ModelError(f"{path}: not a digest model file ({_reason(exc)})") from None
    header = _decode_header(path, arrays.pop(_HEADER, None))
    for name, value in arrays.items():
        if value.dtype.kind not in _ALLOWED_KINDS:
            raise ModelError(f"{path}: array {name!r} has unsupported type {value.dtype}")
    return header, arrays


def dense(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A required dense array, or a ModelError naming the missing member."""
    if name not in arrays:
        raise ModelError(f"{path}: corrupt model file (array {name!r} is missing)")
    return arrays[name]


def sparse(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], name: str) -> sp.csr_matrix:
    """A required sparse matrix rebuilt from its four members, checked for consistency."""
    data, indices, indptr, shape = (
        dense(path, arrays, f"{name}.{part}") for part in ("data", "indices", "indptr", "shape")
    )
    try:
        matrix = sp.csr_matrix((data, indices, indptr), shape=tuple(int(s) for s in shape))
        matrix.check_format(full_check=True)
    except (ValueError, TypeError, IndexError) as exc:
        raise ModelError(f"{path}: corrupt model file (matrix {name!r}: {_reason(exc)})") from None
    return matrix


def _pack(name: str, value: Any) -> dict[str, np.ndarray]:
    if sp.issparse(value):
        matrix = sp.csr_matrix(value)
        return {
            f"{name}.data": matrix.data,
            f"{name}.indices": matrix.indices,
            f"{name}.indptr": matrix.indptr,
            f"{name}.shape": np.asarray(matrix.shape, dtype=np.int64),
        }
    array = np.asarray(value)
    if array.dtype.kind not in _ALLOWED_KINDS:
        raise TypeError(f"array {name!r} of type {array.dtype} cannot be stored without pickle")
    return {name: array}


def _encode_header(header: dict[str, Any]) -> np.ndarray:
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _decode_header(path: str | os.PathLike[str], raw: np.ndarray | None) -> dict[str, Any]:
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelError(f"{path}: not a digest model file (no header)")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"{path}: corrupt model header ({_reason(exc)})") from None
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        raise ModelError(f"{path}: not a digest model file (wrong magic)")
    if header.get("format") != FORMAT:
        raise ModelError(
            f"{path}: model format {header.get('format')!r} is not {FORMAT}; "
            "retrain with 'digest train'"
        )
    return header


def field(path: str | os.PathLike[str], header: dict[str, Any], key: str, kind: type) -> Any:
    """A required header field of the given JSON type, or a ModelError naming it."""
    value = header.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ModelError(f"{path}: corrupt model header (field {key!r})")
    return value


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
