"""Voxel datasets in the layouts people download, de-duplicated, split by id, cached, z-up.

Sources (config field `source`):
- "procedural": `procedural_chairs(num_shapes or 1000, seed)`; needs no files.
- "modelnet": 3D ShapeNets `volumetric_data/<category>/30/{train,test}/<category>_<id>_<rot>.mat`,
  read from the released `.tar.gz` directly or from the unpacked tree; rotation `_1` is the
  canonical pose, `rotations="all"` adds the other 11 azimuths to the training split only.
  Files named after another category are skipped (the chair folder holds one night stand).
- "shapenet_vox32": `ShapeNetVox32/<synset>/<model_id>/model.binvox` (`path` may be the
  ShapeNetVox32 folder, its parent, or the synset folder).
- "folder": every voxel or mesh file directly in `path` (see `formats.SUFFIXES`), id = file name.

Axis convention: lerpnet is z-up (array axis 2). ModelNet/3D ShapeNets, procedural chairs and
folders default to z-up; ShapeNet is y-up and is turned by `to_z_up` (a proper rotation).
Decoding thousands of small files is slow, so each file source is decoded once into a `.npz`
cache whose name hashes the source's bytes: edit a file and the cache is rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import re
import tarfile
import tempfile

import ml_collections
import numpy as np
from tqdm import tqdm

from lerpnet.data.formats import SUFFIXES, VoxelFormatError, decode_voxels
from lerpnet.data.procedural import procedural_chairs

RESOLUTION = 32
PROCEDURAL_DEFAULT_COUNT = 1000
SOURCES = ("procedural", "modelnet", "shapenet_vox32", "folder")
DEFAULT_UP_AXIS = {"procedural": "z", "modelnet": "z", "shapenet_vox32": "y", "folder": "z"}
SHAPENET_SYNSETS = {
    "airplane": "02691156",
    "bench": "02828884",
    "car": "02958343",
    "chair": "03001627",
    "lamp": "03636649",
    "sofa": "04256520",
    "table": "04379243",
}
_CACHE_VERSION = "2"  # bump when decoding changes, so old caches are not reused


def dataset_config(**overrides) -> ml_collections.ConfigDict:
    """The dataset part of an experiment config; unknown override keys raise KeyError."""
    cfg = ml_collections.ConfigDict(
        {
            "source": "procedural",  # one of SOURCES
            "path": "",  # file or folder of the source (modelnet: the .tar.gz or the unpacked root)
            "category": "chair",
            "num_shapes": 0,  # procedural: how many (0 = 1000); other sources: a cap after de-dup (0 = all)
            "seed": 0,  # procedural generation and the order the split and cap draw from
            "val_fraction": 0.1,
            "rotations": "canonical",  # "canonical" | "all" (modelnet's 12 azimuths, train split only)
            "dedup": True,
            "cache_dir": "",  # "" = ~/.cache/lerpnet
            "up_axis": "",  # "" = the source's convention (DEFAULT_UP_AXIS); "y" or "z"
        }
    )
    unknown = set(overrides) - set(cfg.keys())
    if unknown:
        raise KeyError(f"dataset_config: unknown fields {sorted(unknown)} (known: {sorted(cfg.keys())})")
    cfg.update(overrides)
    return cfg


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A split dataset: bool (N, 32, 32, 32) z-up grids with one id per grid."""

    train_voxels: np.ndarray
    train_ids: tuple[str, ...]
    val_voxels: np.ndarray
    val_ids: tuple[str, ...]


def to_z_up(voxels: np.ndarray, up_axis: str) -> np.ndarray:
    """Rotate grids (..., R, R, R) whose up direction is array axis `up_axis` to lerpnet's z-up.

    "y" (ShapeNet) maps (x, y, z) -> (-x, z, y): a 180-degree turn about (0, 1, 1), a proper
    rotation (no mirror) that also turns ShapeNet chairs' backs to +x, where ModelNet's are.
    """
    if up_axis == "z":
        return voxels
    if up_axis == "y":
        return np.ascontiguousarray(np.flip(voxels, axis=-3).swapaxes(-1, -2))
    raise ValueError(f"unknown up_axis {up_axis!r}: expected 'y' or 'z'")


@dataclasses.dataclass(frozen=True)
class _Records:
    """Decoded shapes before de-dup and split: model id and rotation index (1 = canonical) each."""

    voxels: np.ndarray
    ids: np.ndarray
    rotations: np.ndarray


def load_dataset(cfg: ml_collections.ConfigDict) -> Dataset:
    """Load, rotate to z-up, de-duplicate, cap and split a dataset described by `dataset_config`.

    The split is by model id after de-duplication (so no shape is in both splits, and all rotations
    of a model stay in its split): ids are ordered by a hash of (seed, id), the first
    round(val_fraction * n) go to validation (a cap `num_shapes` keeps the first n of that order).
    """
    if cfg.source not in SOURCES:
        raise ValueError(f"unknown dataset source {cfg.source!r}: expected one of {SOURCES}")
    if cfg.rotations not in ("canonical", "all"):
        raise ValueError(f"rotations must be 'canonical' or 'all', got {cfg.rotations!r}")
    if cfg.rotations == "all" and cfg.source != "modelnet":
        raise ValueError("rotations='all' needs source='modelnet' (the only source with pre-rotated copies)")
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {cfg.val_fraction}")
    records = _load_records(cfg)
    canonical = records.rotations == 1
    keep_ids = sorted(set(records.ids[canonical].tolist()))
    if cfg.dedup:
        keep_ids = _distinct_ids(records.voxels[canonical], records.ids[canonical])
    order = sorted(keep_ids, key=lambda i: hashlib.sha256(f"{cfg.seed}:{i}".encode()).digest())
    if cfg.source != "procedural" and cfg.num_shapes > 0:
        order = order[: cfg.num_shapes]
    n_val = int(round(cfg.val_fraction * len(order)))
    val, train = set(order[:n_val]), set(order[n_val:])
    by_id = sorted(range(len(records.ids)), key=lambda k: (records.ids[k], records.rotations[k]))
    train_idx = [k for k in by_id if records.ids[k] in train]
    val_idx = [k for k in by_id if records.ids[k] in val and canonical[k]]
    with_rotation = cfg.rotations == "all"
    return Dataset(
        train_voxels=records.voxels[train_idx],
        train_ids=tuple(
            f"{records.ids[k]}_{records.rotations[k]}" if with_rotation else str(records.ids[k]) for k in train_idx
        ),
        val_voxels=records.voxels[val_idx],
        val_ids=tuple(str(records.ids[k]) for k in val_idx),
    )


def _distinct_ids(voxels: np.ndarray, ids: np.ndarray) -> list[str]:
    """Ids left when shapes with identical voxels are merged, keeping the smallest id of each group."""
    first_by_content: dict[bytes, str] = {}
    for k in sorted(range(len(ids)), key=lambda k: ids[k]):
        first_by_content.setdefault(np.packbits(voxels[k]).tobytes(), str(ids[k]))
    return sorted(first_by_content.values())


def _load_records(cfg) -> _Records:
    up = cfg.up_axis or DEFAULT_UP_AXIS[cfg.source]
    if cfg.source == "procedural":
        n = cfg.num_shapes or PROCEDURAL_DEFAULT_COUNT
        ids = np.array([f"procedural_{cfg.seed}_{i:05d}" for i in range(n)])
        return _Records(to_z_up(procedural_chairs(n, cfg.seed), up), ids, np.ones(n, dtype=np.int64))
    if not cfg.path:
        raise ValueError(f"dataset source {cfg.source!r} needs cfg.path")
    path = pathlib.Path(cfg.path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"dataset path {path} does not exist")
    key = hashlib.sha256(
        f"{_CACHE_VERSION}|{cfg.source}|{cfg.category}|{cfg.rotations}|{up}|{RESOLUTION}".encode()
    )
    archive = cfg.source == "modelnet" and path.is_file()
    if archive:  # hashing the archive is much cheaper than decompressing it
        key.update(hashlib.sha256(path.read_bytes()).digest())
    else:
        files = _list_files(cfg.source, path, cfg.category, cfg.rotations)
        for name, data in files:
            key.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    cache_dir = pathlib.Path(cfg.cache_dir or "~/.cache/lerpnet").expanduser()
    cache = cache_dir / f"{cfg.source}-{cfg.category}-{cfg.rotations}-{key.hexdigest()[:20]}.npz"
    if cache.exists():
        with np.load(cache) as z:
            voxels = np.unpackbits(z["voxels"], axis=-1, count=RESOLUTION).view(bool)
            return _Records(voxels, z["ids"], z["rotations"])
    if archive:
        files = _modelnet_archive_files(path, cfg.category, cfg.rotations)
    records = _decode_all(files, up, desc=f"decoding {cfg.source} {cfg.category} (cached after)")
    _write_cache(cache, records)
    return records


def _write_cache(cache: pathlib.Path, records: _Records) -> None:
    """Write atomically (temp file + rename) so an interrupted build never leaves a bad cache."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(
                f, voxels=np.packbits(records.voxels, axis=-1), ids=records.ids, rotations=records.rotations
            )
        os.replace(tmp, cache)
    except BaseException:
        os.unlink(tmp)
        raise


def _decode_all(files, up: str, desc: str) -> _Records:
    ids, rots = [], []
    voxels = np.zeros((len(files),) + (RESOLUTION,) * 3, dtype=bool)
    for k, (name, data) in enumerate(tqdm(files, desc=desc, unit="file", leave=False)):
        model_id, rotation = _model_id(name)
        voxels[k] = decode_voxels(data, name, RESOLUTION)
        ids.append(model_id)
        rots.append(rotation)
    return _Records(to_z_up(voxels, up), np.array(ids), np.array(rots, dtype=np.int64))


_MODELNET_FILE = re.compile(r"(?:^|/)(?P<cat>[^/]+)/30/(?:train|test)/(?P<id>[^/]+)_(?P<rot>\d+)\.mat$")


def _model_id(name: str) -> tuple[str, int]:
    """(model id, rotation) of a source file name: 3D ShapeNets names carry the rotation."""
    match = _MODELNET_FILE.search(name)
    if match:
        return match["id"], int(match["rot"])
    p = pathlib.PurePath(name)
    return (p.parent.name, 1) if p.name == "model.binvox" else (p.name, 1)


def _list_files(source: str, path: pathlib.Path, category: str, rotations: str) -> list[tuple[str, bytes]]:
    """(name, bytes) of every file of the source, in a stable order; the bytes key the cache."""
    if source == "modelnet":
        mats = sorted(path.rglob("*.mat"))
        files = [(f.as_posix(), f.read_bytes()) for f in mats if _is_wanted(f.as_posix(), category, rotations)]
        what = f"3D ShapeNets '{category}/30/{{train,test}}/*.mat' files"
    elif source == "shapenet_vox32":
        synset = SHAPENET_SYNSETS.get(category, category)
        candidates = (path, path / synset, path / "ShapeNetVox32" / synset)
        root = next((p for p in candidates if p.name == synset and p.is_dir()), path / synset)
        files = [(str(f), f.read_bytes()) for f in sorted(root.glob("*/model.binvox"))]
        what = f"'{synset}/<model_id>/model.binvox' files"
    else:
        if not path.is_dir():
            raise VoxelFormatError(path, "folder source needs a directory")
        files = [(str(f), f.read_bytes()) for f in sorted(path.iterdir()) if f.suffix.lower() in SUFFIXES]
        what = f"voxel files ({', '.join(SUFFIXES)})"
    if not files:
        raise VoxelFormatError(path, f"no {what} found")
    return files


def _is_wanted(name: str, category: str, rotations: str) -> bool:
    """Files of `category` (by folder AND file name: the released chair folder also holds a
    mislabelled `night_stand_000000112`) in the wanted rotations."""
    match = _MODELNET_FILE.search(name)
    return (
        bool(match)
        and match["cat"] == category
        and match["id"].startswith(f"{category}_")
        and (rotations == "all" or match["rot"] == "1")
    )


def _modelnet_archive_files(path: pathlib.Path, category: str, rotations: str) -> list[tuple[str, bytes]]:
    """The wanted `.mat` members of a 3D ShapeNets `.tar.gz`, read in one streaming pass."""
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {
                m.name: tar.extractfile(m).read() for m in tar if m.isfile() and _is_wanted(m.name, category, rotations)
            }
    except (tarfile.TarError, OSError, EOFError) as err:
        raise VoxelFormatError(path, f"not a readable tar archive ({err})") from None
    if not members:
        raise VoxelFormatError(path, f"archive has no '{category}/30/{{train,test}}/*.mat' members")
    return [(f"{path}:{name}", members[name]) for name in sorted(members)]
