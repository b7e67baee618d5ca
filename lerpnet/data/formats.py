"""Reading and writing voxel grids in the formats 3D-shape research data ships in.

Every reader returns a cubic bool grid in the file's own orientation (binvox readers' xyz order,
ShapeNetVox32 is therefore y-up, 3D ShapeNets `.mat` is z-up); datasets, not readers, rotate.
Anything malformed raises `VoxelFormatError` naming the file and the problem, so a bad file in a
10,000-file download is found by name instead of surfacing as a numpy traceback or as garbage.
"""

from __future__ import annotations

import dataclasses
import io
import pathlib

import numpy as np
import scipy.io
import trimesh

MESH_SUFFIXES = (".off", ".obj", ".stl", ".ply")
SUFFIXES = (".binvox", ".mat", ".npy", ".npz") + MESH_SUFFIXES
MAT_KEY = "instance"
_BINVOX_MAGIC = b"#binvox 1"
_MAX_RUN = 255  # a binvox run length is one byte


class VoxelFormatError(ValueError):
    """A voxel file (or directory of them) that cannot be read as a binary voxel grid."""

    def __init__(self, source: str | pathlib.Path, problem: str):
        super().__init__(f"{source}: {problem}")
        self.source = str(source)
        self.problem = problem


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


def load_binvox(path: str | pathlib.Path) -> tuple[np.ndarray, BinvoxHeader]:
    """Read a binvox v1 file at its own resolution, with its translate/scale header.

    `load_voxels` drops the header; use this when the voxels must be placed back in model space.
    """
    path = pathlib.Path(path)
    return decode_binvox(path.read_bytes(), path)


def decode_binvox(data: bytes, source: str | pathlib.Path) -> tuple[np.ndarray, BinvoxHeader]:
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
    try:
        dims = tuple(int(w) for w in fields[b"dim"])
        translate = tuple(float(w) for w in fields.get(b"translate", [b"0", b"0", b"0"]))
        scale = float(fields.get(b"scale", [b"1"])[0])
    except KeyError:
        raise VoxelFormatError(source, "binvox header has no 'dim' line") from None
    except (ValueError, IndexError):
        raise VoxelFormatError(source, "binvox header has a malformed dim/translate/scale line") from None
    if len(dims) != 3 or len(set(dims)) != 1:
        raise VoxelFormatError(source, f"binvox dims {dims} are not cubic (need 'dim n n n')")
    if not 1 <= dims[0] <= 1024:
        raise VoxelFormatError(source, f"binvox dim {dims[0]} is outside 1..1024")
    if len(translate) != 3 or not np.all(np.isfinite(translate + (scale,))):
        raise VoxelFormatError(source, "binvox translate/scale must be three finite numbers and one")
    return BinvoxHeader(dims=dims, translate=translate, scale=scale)


def save_binvox(
    path: str | pathlib.Path,
    voxels: np.ndarray,
    translate: tuple[float, float, float] = (0.0, 0.0, 0.0),
    scale: float = 1.0,
) -> None:
    """Write a cubic 0/1 grid (x-y-z order, as `load_binvox` returns it) as a binvox v1 file."""
    path = pathlib.Path(path)
    voxels = as_mask(np.asarray(voxels), path)
    n = voxels.shape[0]
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
        f"#binvox 1\ndim {n} {n} {n}\ntranslate {' '.join(f'{t:g}' for t in translate)}\n"
        f"scale {scale:g}\ndata\n"
    )
    body = np.stack([values, counts.astype(np.uint8)], axis=1).tobytes()
    path.write_bytes(header.encode("ascii") + body)


def as_mask(array: np.ndarray, source: str | pathlib.Path) -> np.ndarray:
    """Check that an array is a cubic 3-D grid of 0/1 values and return it as bool.

    Values other than 0 and 1 (NaN, 0.5, 255) are refused rather than thresholded: they usually
    mean the file holds something other than an occupancy mask (an SDF, a probability map).
    """
    if array.ndim != 3 or len(set(array.shape)) != 1 or array.shape[0] == 0:
        raise VoxelFormatError(source, f"expected a cubic 3-D voxel grid, got shape {array.shape}")
    if array.dtype == bool:
        return array
    if not (np.issubdtype(array.dtype, np.number)) or np.iscomplexobj(array):
        raise VoxelFormatError(source, f"expected a 0/1 voxel mask, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating) and np.isnan(array).any():
        raise VoxelFormatError(source, "voxel mask contains NaN")
    full = array == 1
    if not np.all(full | (array == 0)):
        odd = np.unique(array[~full & (array != 0)])[:5]
        raise VoxelFormatError(source, f"voxel mask has values other than 0 and 1: {odd.tolist()}")
    return full


def decode_mat(data: bytes, source: str | pathlib.Path) -> np.ndarray:
    """Decode a 3D ShapeNets `.mat` (MATLAB v5, key `instance`, 30^3 int8 0/1, z-up)."""
    try:
        contents = scipy.io.loadmat(io.BytesIO(data), variable_names=[MAT_KEY])
    except Exception as err:  # scipy raises a zoo of types (ValueError, TypeError, zlib.error...) on bad input
        raise VoxelFormatError(source, f"not a readable MATLAB v5 .mat file ({type(err).__name__}: {err})") from None
    if MAT_KEY not in contents:
        raise VoxelFormatError(source, f".mat file has no {MAT_KEY!r} variable (3D ShapeNets layout expected)")
    return as_mask(np.asarray(contents[MAT_KEY]), source)


def decode_numpy(data: bytes, source: str | pathlib.Path, suffix: str) -> np.ndarray:
    """Decode `.npy`, or a `.npz` holding exactly one array (pickles refused)."""
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if suffix == ".npz":
            with loaded:
                arrays = [loaded[name] for name in loaded.files]
        else:
            arrays = [loaded]
    except Exception as err:  # numpy raises many types on bad bytes (zlib.error, TokenError, BadZipFile...)
        raise VoxelFormatError(source, f"not a readable {suffix} array ({type(err).__name__}: {err})") from None
    if len(arrays) != 1:
        raise VoxelFormatError(source, f"{suffix} must hold exactly one array, found {len(arrays)}")
    return as_mask(np.asarray(arrays[0]), source)


def voxelize_mesh(mesh: trimesh.Trimesh, resolution: int, source: str | pathlib.Path = "mesh") -> np.ndarray:
    """Voxelise a mesh as a solid: centred, scaled so its longest side spans the whole grid.

    The surface is voxelised at pitch 1 after scaling the longest side to `resolution - 1` (voxel
    centres 0..resolution-1), and the interior is filled, like the solid voxel sets are.
    """
    if mesh.is_empty or mesh.faces.size == 0:
        raise VoxelFormatError(source, "mesh has no faces")
    bounds = mesh.bounds
    extent = float((bounds[1] - bounds[0]).max())
    if not np.isfinite(extent) or extent <= 0:
        raise VoxelFormatError(source, "mesh has a degenerate or non-finite bounding box")
    scaled = mesh.copy()
    factor = (resolution - 1) / extent
    centre_shift = (resolution - 1) / 2 - (bounds[0] + bounds[1]) / 2 * factor
    scaled.apply_transform(trimesh.transformations.scale_and_translate(factor, centre_shift))
    filled = scaled.voxelized(pitch=1.0).fill()
    idx = np.round(filled.points).astype(np.int64)
    idx = idx[np.all((idx >= 0) & (idx < resolution), axis=1)]
    grid = np.zeros((resolution,) * 3, dtype=bool)
    grid[tuple(idx.T)] = True
    return grid


def decode_mesh(data: bytes, source: str | pathlib.Path, suffix: str, resolution: int) -> np.ndarray:
    """Load mesh bytes with trimesh (scenes are merged into one mesh) and voxelise them."""
    try:
        mesh = trimesh.load(io.BytesIO(data), file_type=suffix[1:], force="mesh")
    except Exception as err:  # trimesh's parsers raise many types on bad input
        raise VoxelFormatError(source, f"not a readable {suffix} mesh ({type(err).__name__}: {err})") from None
    if not isinstance(mesh, trimesh.Trimesh):
        raise VoxelFormatError(source, f"{suffix} file holds no triangle mesh")
    return voxelize_mesh(mesh, resolution, source)


def decode_voxels(data: bytes, source: str | pathlib.Path, resolution: int = 32) -> np.ndarray:
    """Decode the bytes of a voxel or mesh file (format chosen by `source`'s suffix).

    Shared by `load_voxels` and the dataset readers, which also read members of a `.tar.gz`.
    """
    suffix = pathlib.PurePath(str(source)).suffix.lower()
    if suffix == ".binvox":
        voxels = decode_binvox(data, source)[0]
    elif suffix == ".mat":
        voxels = decode_mat(data, source)
    elif suffix in (".npy", ".npz"):
        voxels = decode_numpy(data, source, suffix)
    elif suffix in MESH_SUFFIXES:
        return decode_mesh(data, source, suffix, resolution)
    else:
        raise VoxelFormatError(source, f"unknown voxel file type {suffix!r} (supported: {', '.join(SUFFIXES)})")
    return fit_to_resolution(voxels, resolution)


def load_voxels(path: str | pathlib.Path, resolution: int = 32) -> np.ndarray:
    """Load a voxel or mesh file as a bool (resolution,)*3 grid in the file's own orientation.

    Formats: `.binvox` (v1), 3D ShapeNets `.mat`, `.npy`, single-array `.npz`, and meshes
    (`.off`, `.obj`, `.stl`, `.ply`) voxelised as solids. Grids of another size follow
    `fit_to_resolution`: larger ones are any-pooled, smaller ones centred and zero-padded.
    Raises `VoxelFormatError` (a ValueError) naming the file for anything malformed.
    """
    path = pathlib.Path(path)
    return decode_voxels(path.read_bytes(), path, resolution)
