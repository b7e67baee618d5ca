"""The decoded-dataset cache: one `.npz` per source content, verified on read, optional on write.

Decoding thousands of small files (or voxelising meshes) takes seconds to minutes, so a source is
decoded once and kept as bit-packed grids (`packbits` along the last axis: (N, 32, 32, 4) uint8, the
form `cached` returns, so a reader unpacks only the grids it keeps). The cache is never trusted
blindly and never required:
- its name carries a hash of the source's bytes and the decoding settings (edit a file: new cache);
- it stores a checksum of its arrays; a cache that fails to load or to match is rebuilt, with a
  warning naming it;
- a cache that cannot be written (full disk, read-only folder) is a warning: the load continues
  with the decoded data, and the next run decodes again.
"""

from __future__ import annotations

import hashlib
import io
import pathlib
import warnings
from collections.abc import Callable

import numpy as np

from lerpnet.data.reading import read_file
from lerpnet.files import atomic_open

RESOLUTION = 32
_FIELDS = ("voxels", "ids", "rotations", "splits")


class CacheWarning(UserWarning):
    """The dataset cache was unreadable (rebuilt) or could not be written (skipped)."""


def _checksum(voxels: np.ndarray, ids: np.ndarray, rotations: np.ndarray, splits: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in (voxels, ids.astype(str), rotations.astype(np.int64), splits.astype(str)):
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def read_cache(path: pathlib.Path) -> dict[str, np.ndarray]:
    """The arrays of a cache file (voxels bit-packed), or ValueError/OSError if it is bad."""
    with np.load(io.BytesIO(read_file(path)), allow_pickle=False) as z:
        packed = {name: z[name] for name in _FIELDS}
        stored = str(z["checksum"])
    if stored != _checksum(**packed):
        raise ValueError("checksum mismatch")
    n = len(packed["ids"])
    if packed["voxels"].shape != (n, RESOLUTION, RESOLUTION, RESOLUTION // 8) or any(
        len(packed[name]) != n for name in _FIELDS
    ):
        raise ValueError("arrays of inconsistent shapes")
    return packed


def pack(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays with bool (N, 32, 32, 32) voxels bit-packed, as the cache holds them."""
    return {**arrays, "voxels": np.packbits(arrays["voxels"], axis=-1)}


def unpack(voxels: np.ndarray) -> np.ndarray:
    """Bit-packed grids (..., 32, 32, 4) back to bool (..., 32, 32, 32)."""
    return np.unpackbits(voxels, axis=-1, count=RESOLUTION).view(bool)


def write_cache(path: pathlib.Path, packed: dict[str, np.ndarray]) -> None:
    """Write the arrays (voxels bit-packed by `pack`) atomically; any OSError is the caller's to handle."""
    with atomic_open(path) as f:
        np.savez_compressed(f, checksum=np.array(_checksum(**packed)), **packed)


def cached(path: pathlib.Path, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays stored at `path`, or `build()`'s (bool voxels; then stored there), voxels bit-packed
    either way: see the module docstring."""
    if path.exists():
        try:
            return read_cache(path)
        except Exception as err:  # a torn, truncated or foreign file: any failure means rebuild
            warnings.warn(CacheWarning(f"dataset cache {path} is unreadable ({type(err).__name__}: {err}); "
                                       "rebuilding it"), stacklevel=2)
    arrays = pack(build())
    try:
        write_cache(path, arrays)
    except OSError as err:
        warnings.warn(CacheWarning(f"could not write the dataset cache {path} ({err.strerror or err}); "
                                   "continuing without it (the next run decodes again)"), stacklevel=2)
    return arrays
