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
wrong version, a missing or mis-shaped array, an array or archive declaring more
bytes than it holds, a header number out of range) into one `ModelError` naming
the file, checked before anything is allocated. Writing goes through
`digest.paths.atomic_file`.
The layout is documented in docs/architecture.md.
"""

from __future__ import annotations

import json
import lzma
import math
import os
import tokenize
import zipfile
import zlib
from typing import Any, BinaryIO

import numpy as np
import scipy.sparse as sp

from digest.errors import ModelError
from digest.paths import atomic_file

MAGIC = "digest-model"
#: Bumped whenever the header or the set of arrays changes meaning.
FORMAT = 3
#: Largest archive read, unpacked: far above any model digest writes (85 KB for the
#: examples, tens of MB for 25,000 items), and still a size that can be loaded.
MAX_BYTES = 4 * 1024**3
#: Largest matrix dimension (rows or columns) a sparse member may declare.
MAX_DIMENSION = 2**31 - 1
_HEADER = "header"
_ALLOWED_KINDS = frozenset("fiub")  # float, signed int, unsigned int, bool
_MAX_MEMBERS = 1000
#: Model files are written uncompressed (`numpy.savez`): an archive unpacking to a
#: hundred times its size on disk is a compression bomb.
_MAX_RATIO = 100
#: Header integers handed to C code (NumPy's random state, LightFM's Cython loops) as a
#: C int: every integer under these tables is in `_C_INT`, unless `_INT_RANGES` says
#: otherwise. Any other integer must fit in 64 bits.
_C_INT_TABLES = ("params", "lightfm", "rng")
_C_INT = (0, 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_INT_RANGES = {
    "rng.pos": (0, 624),
    "rng.has_gauss": (0, 1),
    "params.random_state": (0, 2**32 - 1),
}
#: What reading a damaged or hostile archive can raise, besides a bad zip. NumPy parses
#: an array's header as a Python literal, so a mangled one raises the tokenizer's errors.
_READ_ERRORS = (
    ValueError, OSError, EOFError, KeyError, RuntimeError, NotImplementedError,
    OverflowError, MemoryError, zlib.error, lzma.LZMAError, SyntaxError, tokenize.TokenError,
)  # fmt: skip


def write(path: str | os.PathLike[str], header: dict[str, Any], arrays: dict[str, Any]) -> None:
    """Write header and arrays atomically: a crash never leaves half a model file.

    A path that cannot be written (a folder, a file in the way, no permission, a full
    disk) is an `OutputError` naming it; `paths.check_output_file` says so up front.
    """
    members = {_HEADER: _encode_header({"magic": MAGIC, "format": FORMAT, **header})}
    for name, value in arrays.items():
        members.update(_pack(name, value))
    with atomic_file(path) as handle:
        np.savez(handle, allow_pickle=False, **members)


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and every array of a model file, or a ModelError saying why not.

    Sizes are checked before anything is loaded (see `MAX_BYTES`), and each member's
    declared shape and type against the bytes it holds, so a hostile file can make
    this neither run code nor allocate more memory than the file itself justifies.
    """
    try:
        with open(path, "rb") as handle:
            arrays = _read_archive(path, handle)
    except ModelError:
        raise
    except FileNotFoundError:
        raise ModelError(f"{path}: no model file; run 'digest train' first") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a directory, not a model file") from None
    except PermissionError:
        raise ModelError(f"{path}: permission denied") from None
    except zipfile.BadZipFile as exc:
        # Random bytes, a pickle, a bare .npy or a truncated archive; NumPy would
        # suggest loading such a file "unsafely", which is never the answer here.
        reason = "not an .npz archive" if "not a zip file" in str(exc) else _reason(exc)
        raise ModelError(f"{path}: not a digest model file ({reason})") from None
    except _READ_ERRORS as exc:
        raise ModelError(f"{path}: not a digest model file ({_reason(exc)})") from None
    header = _decode_header(path, arrays.pop(_HEADER, None))
    return header, arrays


def _read_archive(path: str | os.PathLike[str], handle: BinaryIO) -> dict[str, np.ndarray]:
    on_disk = os.fstat(handle.fileno()).st_size
    with zipfile.ZipFile(handle) as archive:
        infos = archive.infolist()
        _check_sizes(path, infos, on_disk)
        arrays: dict[str, np.ndarray] = {}
        for info in infos:
            name = info.filename.removesuffix(".npy")
            if name == info.filename or name in arrays:
                raise ModelError(
                    f"{path}: not a digest model file (unexpected member {info.filename[:80]!r})"
                )
            with archive.open(info) as member:
                arrays[name] = _read_member(path, name, info, member)
    return arrays


def _check_sizes(path: str | os.PathLike[str], infos: list[zipfile.ZipInfo], on_disk: int) -> None:
    """Refuse an archive too large to be a model, or one that inflates like a zip bomb."""
    if len(infos) > _MAX_MEMBERS:
        raise ModelError(f"{path}: not a digest model file ({len(infos)} members)")
    total = sum(info.file_size for info in infos)
    if total > MAX_BYTES:
        raise ModelError(
            f"{path}: not a digest model file (it unpacks to {total:,} bytes, "
            f"over the {MAX_BYTES:,}-byte limit)"
        )
    if total > _MAX_RATIO * max(on_disk, 1):
        raise ModelError(
            f"{path}: not a digest model file (it unpacks to {total:,} bytes from "
            f"{on_disk:,}: a compression bomb, not a model)"
        )


def _read_member(
    path: str | os.PathLike[str], name: str, info: zipfile.ZipInfo, member: BinaryIO
) -> np.ndarray:
    """One `.npy` member, its header checked against its size before any allocation."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise ModelError(f"{path}: corrupt model file (array {name!r}: .npy version {version})")
    if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype:
        raise ModelError(f"{path}: array {name!r} has unsupported type {dtype}")
    declared = math.prod(shape) * dtype.itemsize
    held = info.file_size - member.tell()
    if declared != held:
        raise ModelError(
            f"{path}: corrupt model file (array {name!r} of shape {_shown(shape)} needs "
            f"{declared:,} bytes; the file holds {held:,})"
        )
    raw = np.empty(declared, dtype=np.uint8)
    done = 0
    while done < declared:
        got = member.readinto(memoryview(raw)[done:])
        if not got:
            raise ModelError(f"{path}: corrupt model file (array {name!r} is truncated)")
        done += got
    return raw.view(dtype).reshape(shape, order="F" if fortran else "C")


def dense(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A required dense array, or a ModelError naming the missing member."""
    if name not in arrays:
        raise ModelError(f"{path}: corrupt model file (array {name!r} is missing)")
    return arrays[name]


def sparse(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], name: str) -> sp.csr_matrix:
    """A required sparse matrix rebuilt from its four members, checked for consistency.

    The shape must be two integers from 0 to `MAX_DIMENSION` (a float or a huge number
    would overflow inside SciPy) and the index arrays must be integer arrays.
    """
    data, indices, indptr, shape = (
        dense(path, arrays, f"{name}.{part}") for part in ("data", "indices", "indptr", "shape")
    )
    if shape.dtype.kind not in "iu" or shape.shape != (2,):
        raise ModelError(
            f"{path}: corrupt model file (matrix {name!r}: shape must be two integers, "
            f"not {shape.dtype} {_shown(shape.shape)})"
        )
    rows, cols = (int(s) for s in shape.tolist())
    if not (0 <= rows <= MAX_DIMENSION and 0 <= cols <= MAX_DIMENSION):
        raise ModelError(
            f"{path}: corrupt model file (matrix {name!r}: shape {_shown((rows, cols))} is "
            f"out of range)"
        )
    for part, value in (("indices", indices), ("indptr", indptr)):
        if value.dtype.kind not in "iu" or value.ndim != 1:
            raise ModelError(
                f"{path}: corrupt model file (matrix {name!r}: {part} is not integers)"
            )
    try:
        matrix = sp.csr_matrix((data, indices, indptr), shape=(rows, cols))
        matrix.check_format(full_check=True)
    except (ValueError, TypeError, IndexError, OverflowError) as exc:
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
        header = json.loads(raw.tobytes().decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"{path}: corrupt model header ({_reason(exc)})") from None
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        raise ModelError(f"{path}: not a digest model file (wrong magic)")
    if header.get("format") != FORMAT:
        raise ModelError(
            f"{path}: model format {header.get('format')!r} is not {FORMAT}; "
            "retrain with 'digest train'"
        )
    _check_integers(path, header)
    return header


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a model header holds")


def _check_integers(path: str | os.PathLike[str], header: dict[str, Any]) -> None:
    """Every integer in the header within its range (see `_INT_RANGES`), or a ModelError.

    Walked with a stack, not recursion: the header's nesting is only as deep as the
    JSON decoder allowed.
    """
    stack: list[tuple[str, Any]] = [(key, value) for key, value in header.items()]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{where}.{key}", item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}[{n}]", item) for n, item in enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            low, high = _int_range(where)
            if not low <= value <= high:
                raise ModelError(
                    f"{path}: corrupt model header (field {where!r}: {_shown(value)} is not "
                    f"between {low} and {high})"
                )


def _int_range(where: str) -> tuple[int, int]:
    if where in _INT_RANGES:
        return _INT_RANGES[where]
    if where.partition(".")[0] in _C_INT_TABLES:
        return _C_INT
    return _INT64


def field(path: str | os.PathLike[str], header: dict[str, Any], key: str, kind: type) -> Any:
    """A required header field of the given JSON type, or a ModelError naming it.

    Any header integer already fits in 64 bits (`read` checks).
    """
    value = header.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ModelError(f"{path}: corrupt model header (field {key!r})")
    return value


def _shown(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
