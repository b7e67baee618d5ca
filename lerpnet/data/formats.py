"""Reading and writing voxel grids in the formats 3D-shape research data ships in.

Every reader returns a cubic bool grid in the file's own orientation (binvox readers' xyz order,
ShapeNetVox32 is therefore y-up, 3D ShapeNets `.mat` is z-up); datasets, not readers, rotate.
Anything malformed raises `VoxelFormatError` naming the file and the problem, so a bad file in a
10,000-file download is found by name instead of surfacing as a numpy traceback or as garbage.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import pathlib
import re
import zipfile

import numpy as np
import scipy.io

from lerpnet.data.meshes import MESH_SUFFIXES, decode_mesh
from lerpnet.data.reading import MAX_GRID_SIDE, VoxelFormatError, check_array_size, read_file
from lerpnet.files import write_bytes

SUFFIXES = (".binvox", ".mat", ".npy", ".npz") + MESH_SUFFIXES
MAT_KEY = "instance"
_BINVOX_MAGIC = b"#binvox 1"
_MAX_RUN = 255  # a binvox run length is one byte
# Header numbers as binvox writes them; Python's int()/float() would also take "3_2", " 1", "nan".
_INT = re.compile(rb"[0-9]{1,9}")
_FLOAT = re.compile(rb"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")
_MASK_KINDS = "biuf"  # bool, signed and unsigned integers, floats: anything else is not a mask
_MAT_ITEMSIZE = {"logical": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
                 "int64": 8, "uint64": 8, "single": 4, "double": 8}


@dataclasses.dataclass(frozen=True)
class BinvoxHeader:
    """Binvox metadata: grid dims and the placement of the grid in the original model's space."""

    dims: tuple[int, int, int]
    translate: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0


def fit_to_resolution(voxels: np.ndarray, resolution: int) -> np.ndarray:
    """Bring a cubic bool grid of side n to side `resolution`, keeping every occupied voxel.

    Rule: with k = ceil(n / resolution), the grid is centred and zero-padded to a multiple of k, then
    pooled in k^3 blocks where a cell is full if ANY source voxel in it is full (thin legs survive,
    unlike mean pooling or nearest sampling); the result (side <= resolution) is then centred and
    zero-padded to `resolution`, with any odd leftover cell going after the shape. So 64 -> 32 and
    128 -> 32 are exact 2x / 4x any-pooling, and a 30^3 `.mat` grid gets one empty layer per side.
    """
    n = voxels.shape[0]
    k = -(-n // resolution)
    if k > 1:
        voxels = _pad_centred(voxels, -(-n // k) * k)
        m = voxels.shape[0] // k
        voxels = voxels.reshape(m, k, m, k, m, k).any(axis=(1, 3, 5))
    return _pad_centred(voxels, resolution)


def _pad_centred(voxels: np.ndarray, size: int) -> np.ndarray:
    before = (size - voxels.shape[0]) // 2
    after = size - voxels.shape[0] - before
    return np.pad(voxels, [(before, after)] * 3)


def load_binvox(path: str | os.PathLike) -> tuple[np.ndarray, BinvoxHeader]:
    """Read a binvox v1 file at its own resolution, with its translate/scale header.

    `load_voxels` drops the header; use this when the voxels must be placed back in model space.
    """
    return decode_binvox(read_file(path), path)


def decode_binvox(data: bytes, source: str | os.PathLike) -> tuple[np.ndarray, BinvoxHeader]:
    """Decode binvox bytes: header lines up to `data`, then (value, count) byte pairs in x-z-y order.

    The array is transposed to x-y-z as binvox-rw and the `binvox` package do, so ShapeNetVox32
    comes out y-up. Strict: the runs must cover the grid exactly, with values 0/1 and counts >= 1.
    """
    stream = io.BytesIO(data)
    if stream.readline().rstrip(b"\r\n") != _BINVOX_MAGIC:
        raise VoxelFormatError(source, f"not a binvox v1 file (first line must be {_BINVOX_MAGIC!r})")
    fields: dict[bytes, list[bytes]] = {}
    while True:
        line = stream.readline()
        if not line:
            raise VoxelFormatError(source, "binvox header ends before the 'data' line")
        words = line.split()
        if words == [b"data"]:
            break
        if not words or words[0] not in (b"dim", b"translate", b"scale") or words[0] in fields:
            raise VoxelFormatError(source, f"unexpected binvox header line {line[:40]!r}")
        fields[words[0]] = words[1:]
    header = _parse_binvox_header(fields, source)
    runs = np.frombuffer(stream.read(), dtype=np.uint8)
    n = header.dims[0]
    if runs.size % 2:
        raise VoxelFormatError(source, "run-length data has an odd number of bytes (truncated?)")
    values, counts = runs[0::2], runs[1::2].astype(np.int64)
    if np.any(values > 1):
        raise VoxelFormatError(source, f"run-length value byte {int(values.max())} is not 0 or 1 (corrupt data)")
    if np.any(counts == 0):
        raise VoxelFormatError(source, "run-length data has a zero-length run (corrupt data)")
    total = int(counts.sum())
    if total != n**3:
        raise VoxelFormatError(
            source, f"run-length data covers {total} voxels but dims {n}x{n}x{n} need {n**3} (truncated or corrupt)"
        )
    xzy = np.repeat(values.astype(bool), counts).reshape(n, n, n)
    return np.ascontiguousarray(xzy.transpose(0, 2, 1)), header


def _parse_binvox_header(fields: dict[bytes, list[bytes]], source) -> BinvoxHeader:
    if b"dim" not in fields:
        raise VoxelFormatError(source, "binvox header has no 'dim' line")
    translate = fields.get(b"translate", [b"0", b"0", b"0"])
    scale = fields.get(b"scale", [b"1"])
    if not all(_INT.fullmatch(w) for w in fields[b"dim"]) or not all(
        _FLOAT.fullmatch(w) for w in translate + scale
    ) or len(translate) != 3 or len(scale) != 1:
        raise VoxelFormatError(source, "binvox header has a malformed dim/translate/scale line "
                                       "(need 'dim n n n', 'translate x y z', 'scale s' with plain decimals)")
    dims = tuple(int(w) for w in fields[b"dim"])
    if len(dims) != 3 or len(set(dims)) != 1:
        raise VoxelFormatError(source, f"binvox dims {dims} are not cubic (need 'dim n n n')")
    if not 1 <= dims[0] <= MAX_GRID_SIDE:
        raise VoxelFormatError(source, f"binvox dim {dims[0]} is outside 1..{MAX_GRID_SIDE}")
    header = BinvoxHeader(dims=dims, translate=tuple(float(w) for w in translate), scale=float(scale[0]))
    if not all(math.isfinite(v) for v in (*header.translate, header.scale)):
        raise VoxelFormatError(source, "binvox translate/scale must be three finite numbers and one")
    return header


def save_binvox(
    path: str | os.PathLike,
    voxels: np.ndarray,
    translate: tuple[float, float, float] = (0.0, 0.0, 0.0),
    scale: float = 1.0,
) -> None:
    """Write a cubic 0/1 grid (x-y-z order, as `load_binvox` returns it) as a binvox v1 file.

    Refuses what `load_binvox` would refuse (sides over MAX_GRID_SIDE, non-finite translate or
    scale); numbers are written in full precision (shortest round-trip repr), so they read back equal.
    """
    voxels = as_mask(np.asarray(voxels), path)
    n = voxels.shape[0]
    if n > MAX_GRID_SIDE:
        raise VoxelFormatError(path, f"binvox dim {n} is outside 1..{MAX_GRID_SIDE}")
    try:
        numbers = [float(t) for t in translate] + [float(scale)]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != 4 or not all(math.isfinite(v) for v in numbers):
        raise VoxelFormatError(path, f"binvox translate/scale must be three finite numbers and one, got "
                                     f"{translate!r}, {scale!r}")
    flat = voxels.transpose(0, 2, 1).ravel()
    # Runs of equal values, each split into pieces of at most 255 (one count byte).
    starts = np.flatnonzero(np.concatenate(([True], flat[1:] != flat[:-1])))
    lengths = np.diff(np.append(starts, flat.size))
    pieces = -(-lengths // _MAX_RUN)
    values = np.repeat(flat[starts], pieces).astype(np.uint8)
    counts = np.full(values.size, _MAX_RUN, dtype=np.int64)
    last = np.cumsum(pieces) - 1
    counts[last] = lengths - (pieces - 1) * _MAX_RUN
    header = (
        f"#binvox 1\ndim {n} {n} {n}\ntranslate {' '.join(repr(t) for t in numbers[:3])}\n"
        f"scale {numbers[3]!r}\ndata\n"
    )
    body = np.stack([values, counts.astype(np.uint8)], axis=1).tobytes()
    write_bytes(path, header.encode("ascii") + body)


def as_mask(array: np.ndarray, source: str | os.PathLike) -> np.ndarray:
    """Check that an array is a cubic 3-D grid of 0/1 values and return it as bool.

    Values other than 0 and 1 (NaN, 0.5, 255) are refused rather than thresholded: they usually
    mean the file holds something other than an occupancy mask (an SDF, a probability map), and so
    are dtypes other than bool, integers and floats (timedeltas, complex numbers, strings).
    """
    if array.ndim != 3 or len(set(array.shape)) != 1 or array.shape[0] == 0:
        raise VoxelFormatError(source, f"expected a cubic 3-D voxel grid, got shape {array.shape}")
    _check_mask_dtype(array.dtype, source)
    if array.dtype == bool:
        return array
    if array.dtype.kind == "f" and np.isnan(array).any():
        raise VoxelFormatError(source, "voxel mask contains NaN")
    full = array == 1
    if not np.all(full | (array == 0)):
        odd = np.unique(array[~full & (array != 0)])[:5]
        raise VoxelFormatError(source, f"voxel mask has values other than 0 and 1: {odd.tolist()}")
    return full


def _check_mask_dtype(dtype: np.dtype, source) -> None:
    if dtype.kind not in _MASK_KINDS:
        raise VoxelFormatError(source, f"expected a 0/1 voxel mask (bool, integer or float), got dtype {dtype}")


def decode_mat(data: bytes, source: str | os.PathLike) -> np.ndarray:
    """Decode a 3D ShapeNets `.mat` (MATLAB v5, key `instance`, 30^3 int8 0/1, z-up).

    The variable's declared shape and class are checked before its data is decompressed.
    """
    try:
        declared = {name: (shape, kind) for name, shape, kind in scipy.io.whosmat(io.BytesIO(data))}
    except Exception as err:  # scipy raises a zoo of types (ValueError, TypeError, zlib.error...) on bad input
        raise VoxelFormatError(source, f"not a readable MATLAB v5 .mat file ({type(err).__name__}: {err})") from None
    if MAT_KEY not in declared:
        raise VoxelFormatError(source, f".mat file has no {MAT_KEY!r} variable (3D ShapeNets layout expected)")
    shape, kind = declared[MAT_KEY]
    if kind not in _MAT_ITEMSIZE:
        raise VoxelFormatError(source, f".mat variable {MAT_KEY!r} is a MATLAB {kind}, not a numeric array")
    check_array_size(source, shape, _MAT_ITEMSIZE[kind])
    try:
        array = scipy.io.loadmat(io.BytesIO(data), variable_names=[MAT_KEY])[MAT_KEY]
    except Exception as err:
        raise VoxelFormatError(source, f"not a readable MATLAB v5 .mat file ({type(err).__name__}: {err})") from None
    return as_mask(np.asarray(array), source)


def decode_numpy(data: bytes, source: str | os.PathLike, suffix: str) -> np.ndarray:
    """Decode `.npy`, or a `.npz` holding exactly one array; shape and dtype are checked from the
    header before the data is read or decompressed (pickles are never loaded)."""
    try:
        if suffix == ".npy":
            return as_mask(_read_npy(io.BytesIO(data), source), source)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if len(members) != 1:
                raise VoxelFormatError(source, f".npz must hold exactly one array, found {len(members)}")
            with archive.open(members[0]) as member:
                return as_mask(_read_npy(member, source), source)
    except VoxelFormatError:
        raise
    except Exception as err:  # zipfile, zlib and numpy's header parser raise many types on bad bytes
        raise VoxelFormatError(source, f"not a readable {suffix} array ({type(err).__name__}: {err})") from None


def _read_npy(stream, source) -> np.ndarray:
    """One `.npy` array from a stream, refused by its header if it is not a mask within the caps."""
    version = np.lib.format.read_magic(stream)
    if version not in ((1, 0), (2, 0)):
        raise VoxelFormatError(source, f".npy format version {version} is not supported")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(stream)
    _check_mask_dtype(dtype, source)
    check_array_size(source, shape, dtype.itemsize)
    size = math.prod(shape) * dtype.itemsize
    raw = stream.read(size)
    if len(raw) != size:
        raise VoxelFormatError(source, f".npy data is {len(raw)} bytes, its header declares {size} (truncated?)")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def decode_voxels(data: bytes, source: str | os.PathLike, resolution: int = 32, span: int | None = None) -> np.ndarray:
    """Decode the bytes of a voxel or mesh file (format chosen by `source`'s suffix).

    Shared by `load_voxels` and the dataset readers, which also read members of a `.tar.gz`.
    `span` applies to meshes only (see `meshes.voxelize_mesh`).
    """
    suffix = pathlib.PurePath(str(source)).suffix.lower()
    if suffix == ".binvox":
        voxels = decode_binvox(data, source)[0]
    elif suffix == ".mat":
        voxels = decode_mat(data, source)
    elif suffix in (".npy", ".npz"):
        voxels = decode_numpy(data, source, suffix)
    elif suffix in MESH_SUFFIXES:
        return decode_mesh(data, source, suffix, resolution, span)
    else:
        raise VoxelFormatError(source, f"unknown voxel file type {suffix!r} (supported: {', '.join(SUFFIXES)})")
    return fit_to_resolution(voxels, resolution)


def load_voxels(path: str | os.PathLike, resolution: int = 32) -> np.ndarray:
    """Load a voxel or mesh file as a bool (resolution,)*3 grid in the file's own orientation.

    Formats: `.binvox` (v1), 3D ShapeNets `.mat`, `.npy`, single-array `.npz`, and meshes
    (`.off`, `.obj`, `.stl`, `.ply`; filled where they enclose volume, see `lerpnet.data.meshes`).
    Grids of another size follow `fit_to_resolution`: larger ones are any-pooled, smaller ones
    centred and zero-padded. Only regular files are opened and sizes are capped (`reading`).
    Raises `VoxelFormatError` (a ValueError) naming the file for anything malformed or unreadable.
    """
    return decode_voxels(read_file(path), path, resolution)
