"""Voxel datasets in the layouts people download, de-duplicated, split by id, cached, z-up.

Sources (config field `source`; the layouts and downloads are in `sources.LAYOUTS`):
- "procedural": `procedural_chairs(num_shapes or 1000, seed)`; needs no files.
- "modelnet": 3D ShapeNets `volumetric_data/<category>/30/{train,test}/<category>_<id>_<rot>.mat`,
  read from a `.tar.gz` of it directly or from the unpacked tree; rotation `_1` is the canonical
  pose, `rotations="all"` adds the other 11 azimuths to the training split only. Files named after
  another category are skipped (the chair folder holds one night stand).
- "modelnet_meshes": the ModelNet10 meshes, `ModelNet10/<category>/{train,test}/<category>_<id>.off`
  (`path` may be the ModelNet10 folder or the category folder), voxelised as 3D ShapeNets did:
  z-up, longest side over 24 of the 32 voxels, centred (see `meshes` for how open meshes are
  filled). The split is the release's: train/ trains, test/ validates (`val_fraction` unused).
- "shapenet_vox32": `ShapeNetVox32/<synset>/<model_id>/model.binvox` (`path` may be the
  ShapeNetVox32 folder, its parent, or the synset folder); ids are the model ids.
- "folder": every voxel or mesh file directly in `path` (see `formats.SUFFIXES`); ids are the
  file names (made safe, see `sources.file_ids`). Files do not say which way is up, so this source
  needs `up_axis` ("z", or "y" for ShapeNet-style binvox files): an error names the field if unset.

`path` = "" takes the source's usual download name inside the folder named by LERPNET_DATA
(`sources.resolve_path`). Axis convention: lerpnet is z-up (array axis 2); ShapeNet is y-up and is
turned by `to_z_up` (a proper rotation). Each file source is decoded once into a verified `.npz`
cache whose name hashes the source's bytes (see `cache`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib

import ml_collections
import numpy as np

from lerpnet.data import sources
from lerpnet.data.cache import cached, pack, unpack
from lerpnet.data.procedural import procedural_chairs
from lerpnet.data.reading import file_digest
from lerpnet.data.sources import LAYOUTS, RESOLUTION

PROCEDURAL_DEFAULT_COUNT = 1000
SOURCES = ("procedural",) + tuple(LAYOUTS)
_CACHE_VERSION = "3"  # bump when decoding changes, so old caches are not reused


def dataset_config(**overrides) -> ml_collections.ConfigDict:
    """The dataset part of an experiment config; unknown override keys raise KeyError."""
    cfg = ml_collections.ConfigDict(
        {
            "source": "procedural",  # one of SOURCES
            "path": "",  # the source's file or folder; "" = its usual name inside $LERPNET_DATA
            "category": "chair",
            "num_shapes": 0,  # procedural: how many (0 = 1000); other sources: a cap after de-dup (0 = all)
            "seed": 0,  # procedural generation and the order the split and cap draw from
            "val_fraction": 0.1,  # not used by modelnet_meshes (the release's test folder validates)
            "rotations": "canonical",  # "canonical" | "all" (modelnet's 12 azimuths, train split only)
            "dedup": True,
            "cache_dir": "",  # "" = ~/.cache/lerpnet
            "up_axis": "",  # "" = the source's convention (required for "folder"); "y" or "z"
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


def load_dataset(cfg: ml_collections.ConfigDict) -> Dataset:
    """Load, rotate to z-up, de-duplicate, cap and split a dataset described by `dataset_config`.

    The split is by model id after de-duplication (so no shape is in both splits, and all rotations
    of a model stay in its split): ids are ordered by a hash of (seed, id), the first
    round(val_fraction * n) go to validation (a cap `num_shapes` keeps the first n of that order).
    A source with its own split (modelnet_meshes) keeps it: a cap keeps each split's share, and a
    validation shape identical to a training shape is dropped.
    """
    up = _check(cfg)
    records = _load_records(cfg, up)
    canonical = records["rotations"] == 1
    ids, splits = records["ids"], records["splits"]
    split_of = {str(i): str(s) for i, s in zip(ids[canonical], splits[canonical])}
    keep_ids = sorted(split_of)
    if cfg.dedup:
        keep_ids = _distinct_ids(records["voxels"][canonical], ids[canonical], splits[canonical])
    order = sorted(keep_ids, key=lambda i: hashlib.sha256(f"{cfg.seed}:{i}".encode()).digest())
    if any(split_of.values()):  # the release's split
        val_order = [i for i in order if split_of[i] == "val"]
        cap = cfg.num_shapes if cfg.num_shapes > 0 else len(order)
        n_val = int(round(cap * len(val_order) / max(len(order), 1)))
        val = set(val_order[:n_val])
        train = set([i for i in order if split_of[i] == "train"][: max(min(cap, len(order)) - len(val), 0)])
    else:
        if cfg.source != "procedural" and cfg.num_shapes > 0:
            order = order[: cfg.num_shapes]
        n_val = int(round(cfg.val_fraction * len(order)))
        val, train = set(order[:n_val]), set(order[n_val:])
    by_id = sorted(range(len(ids)), key=lambda k: (ids[k], records["rotations"][k]))
    train_idx = [k for k in by_id if ids[k] in train]
    val_idx = [k for k in by_id if ids[k] in val and canonical[k]]
    with_rotation = cfg.rotations == "all"
    rotations = records["rotations"]
    return Dataset(  # only the grids kept are unpacked
        train_voxels=unpack(records["voxels"][train_idx]),
        train_ids=tuple(f"{ids[k]}_{rotations[k]}" if with_rotation else str(ids[k]) for k in train_idx),
        val_voxels=unpack(records["voxels"][val_idx]),
        val_ids=tuple(str(ids[k]) for k in val_idx),
    )


def _check(cfg) -> str:
    """Refuse a bad dataset config before any file is read; the up axis to turn from."""
    if cfg.source not in SOURCES:
        raise ValueError(f"unknown dataset source {cfg.source!r}: expected one of {SOURCES}")
    if cfg.rotations not in ("canonical", "all"):
        raise ValueError(f"data.rotations must be 'canonical' or 'all', got {cfg.rotations!r}")
    if cfg.rotations == "all" and cfg.source != "modelnet":
        raise ValueError("rotations='all' needs source='modelnet' (the only source with pre-rotated copies)")
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in [0, 1), got {cfg.val_fraction}")
    if cfg.up_axis not in ("", "y", "z"):
        raise ValueError(f"data.up_axis must be 'y', 'z' or '' (the source's), got {cfg.up_axis!r}")
    up = cfg.up_axis or ("z" if cfg.source == "procedural" else LAYOUTS[cfg.source].up_axis)
    if not up:
        raise ValueError(f"data.up_axis: source {cfg.source!r} files do not say which way is up; set it to 'z' "
                         "(lerpnet's convention, 3D ShapeNets .mat) or 'y' (ShapeNet .binvox)")
    return up


def _distinct_ids(voxels: np.ndarray, ids: np.ndarray, splits: np.ndarray) -> list[str]:
    """Ids left when shapes with identical (bit-packed) voxels are merged, keeping of each group the
    training copy (where the source has a split), then the smallest id."""
    first_by_content: dict[bytes, str] = {}
    for k in sorted(range(len(ids)), key=lambda k: (splits[k] == "val", ids[k])):
        first_by_content.setdefault(voxels[k].tobytes(), str(ids[k]))
    return sorted(first_by_content.values())


def _load_records(cfg, up: str) -> dict[str, np.ndarray]:
    """Every shape of the source: arrays voxels (z-up, bit-packed as `cache` keeps them), ids, rotations
    and splits."""
    if cfg.source == "procedural":
        n = cfg.num_shapes or PROCEDURAL_DEFAULT_COUNT
        ids = np.array([f"procedural_{cfg.seed}_{i:05d}" for i in range(n)])
        return pack(dict(voxels=to_z_up(procedural_chairs(n, cfg.seed), up), ids=ids,
                         rotations=np.ones(n, dtype=np.int64), splits=np.full(n, "")))
    path = sources.resolve_path(cfg.source, cfg.path)
    key = hashlib.sha256(
        f"{_CACHE_VERSION}|{cfg.source}|{cfg.category}|{cfg.rotations}|{up}|{RESOLUTION}".encode()
    )
    archive = cfg.source == "modelnet" and not path.is_dir()
    if archive:  # hashing the archive is much cheaper than decompressing it
        key.update(file_digest(path))
    else:
        items = sources.list_files(cfg.source, path, cfg.category, cfg.rotations)
        key.update(sources.files_digest(items))
    cache_dir = pathlib.Path(cfg.cache_dir or "~/.cache/lerpnet").expanduser()
    cache = cache_dir / f"{cfg.source}-{cfg.category}-{cfg.rotations}-{key.hexdigest()[:20]}.npz"

    def build() -> dict[str, np.ndarray]:
        listed = sources.archive_items(path, cfg.category, cfg.rotations) if archive else items
        span = sources.MESH_SPAN if cfg.source == "modelnet_meshes" else None
        voxels = sources.decode_items(listed, f"decoding {cfg.source} {cfg.category} (cached after)", span)
        return dict(voxels=to_z_up(voxels, up), ids=np.array([i.id for i in listed]),
                    rotations=np.array([i.rotation for i in listed], dtype=np.int64),
                    splits=np.array([i.split for i in listed]))

    return cached(cache, build)
