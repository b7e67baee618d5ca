"""The N shapes to interpolate between and their pairs: chosen from a dataset or files, encoded.

Validation shapes come first when splits are joined ("val+train"), so the most informative
pairs (unseen shapes) are never cut off by `num_shapes`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lerpnet.data import Dataset, file_ids, file_up_axis, load_voxels, to_z_up

PAIR_MODES = ("all", "unique")


def pair_list(n: int, mode: str) -> np.ndarray:
    """(K, 2) int32 pairs (i, j) of n shapes.

    "all": every ordered pair, i == j included: the study's Algorithm 1, n*n paths, row i * n + j.
    "unique": i < j only (`np.triu_indices` order): the path from j to i is the path from i to j reversed.
    """
    if mode not in PAIR_MODES:
        raise ValueError(f"pair mode must be one of {PAIR_MODES}, got {mode!r}")
    # Filled in place ("unique" row i of the pair matrix at a time), with no int64 temporaries: np.divmod /
    # np.triu_indices took 1.6 s of host time at N = 5000 (25 M and 12.5 M pairs, both on score_pairs' path),
    # this 0.07 s (results/host_cpu/)
    index = np.arange(n, dtype=np.int32)
    if mode == "all":
        out = np.empty((n, n, 2), np.int32)
        out[..., 0] = index[:, None]
        out[..., 1] = index[None, :]
        return out.reshape(n * n, 2)
    out = np.empty((n * (n - 1) // 2, 2), np.int32)
    start = 0
    for i in range(n - 1):  # row i: (i, i + 1), ..., (i, n - 1)
        stop = start + n - 1 - i
        out[start:stop, 0] = i
        out[start:stop, 1] = index[i + 1:]
        start = stop
    return out


@dataclasses.dataclass(frozen=True)
class Shapes:
    """The N shapes to interpolate between: z-up bool grids, an id each, and where each came from."""

    voxels: np.ndarray
    ids: tuple[str, ...]
    splits: tuple[str, ...]  # "val", "train", "rotated" or "file"


Parts = dict[str, tuple[np.ndarray, tuple[str, ...]]]  # split name -> (voxels, ids)


def dataset_parts(dataset: Dataset, rotated: Dataset | None = None) -> Parts:
    """The splits shapes can be drawn from: "val", "train" and, given a dataset loaded with
    rotations="all", "rotated" (the training shapes in ModelNet's 11 other poses)."""
    parts = {"val": (dataset.val_voxels, dataset.val_ids), "train": (dataset.train_voxels, dataset.train_ids)}
    if rotated is not None:
        keep = [k for k, shape_id in enumerate(rotated.train_ids) if not shape_id.endswith("_1")]
        parts["rotated"] = (rotated.train_voxels[keep], tuple(rotated.train_ids[k] for k in keep))
    return parts


def _listed(text: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']: a config field's comma-separated list."""
    return [item.strip() for item in text.split(",") if item.strip()]


def shape_count(shapes_cfg, num_shapes: int, files: tuple[str, ...] = ()) -> int | None:
    """How many shapes `select_shapes` returns, where the config says without the dataset (files, ids, a
    capped split); None where the dataset decides, or where a list repeats an entry (`select_shapes` refuses
    it). A program compiles for N while it reads the shapes."""
    files = tuple(files) or tuple(_listed(shapes_cfg.files))
    listed = files or (tuple(_listed(shapes_cfg.ids)) if shapes_cfg.source == "ids" else ())
    if listed:
        return len(listed) if len(set(listed)) == len(listed) else None
    return (num_shapes or None) if shapes_cfg.source == "split" else None


def select_shapes(shapes_cfg, num_shapes: int, parts: Parts, files: tuple[str, ...] = ()) -> Shapes:
    """The shapes a config asks for: splits of the dataset in order ("val+train": all validation
    shapes first), a list of ids, or files (turned z-up from `shapes_cfg.up_axis`). `num_shapes`
    caps the splits (0 = all of them) and is an error when larger than they are."""
    files = tuple(files) or tuple(_listed(shapes_cfg.files))
    source = "files" if files else shapes_cfg.source
    if source == "files":
        if not files:
            raise ValueError("shapes.source='files' but no files were given (shapes.files or command-line arguments)")
        grids = np.stack([to_z_up(load_voxels(f), shapes_cfg.up_axis or file_up_axis(f)) for f in files])
        shapes = Shapes(grids, file_ids(files), ("file",) * len(files))
    elif source in ("split", "ids"):
        where = {shape_id: (split, k) for split, (_, ids) in parts.items() for k, shape_id in enumerate(ids)}
        if source == "ids":
            wanted = _listed(shapes_cfg.ids)
            unknown = [w for w in wanted if w not in where]
            if unknown:
                sizes = ", ".join(f"{len(ids)} {split}" for split, (_, ids) in parts.items())
                raise ValueError(f"unknown shape ids {unknown[:5]}{' ...' if len(unknown) > 5 else ''}: the "
                                 f"dataset has {sizes} shapes with ids like {', '.join(list(where)[:3])}")
        else:
            names = shapes_cfg.split.split("+")
            if set(names) - set(parts):
                raise ValueError(f"shapes.split must be splits from {tuple(parts)} joined by '+', got "
                                 f"{shapes_cfg.split!r}")
            wanted = [shape_id for split in names for shape_id in parts[split][1]]
            if num_shapes > len(wanted):
                raise ValueError(f"num_shapes={num_shapes} but split {shapes_cfg.split!r} of the dataset has only "
                                 f"{len(wanted)} shapes")
            wanted = wanted[: num_shapes or len(wanted)]
        located = [where[w] for w in wanted]
        shapes = Shapes(np.stack([parts[split][0][k] for split, k in located]) if located else np.zeros((0,)),
                        tuple(wanted), tuple(split for split, _ in located))
    else:
        raise ValueError(f"shapes.source must be 'split', 'ids' or 'files', got {source!r}")
    if len(shapes.ids) < 2:
        raise ValueError(f"interpolation needs at least 2 shapes, got {len(shapes.ids)}")
    if len(set(shapes.ids)) != len(shapes.ids):
        raise ValueError("the same shape is listed twice")
    return shapes


def pairs_by_id(spec: str, ids: tuple[str, ...]) -> list[tuple[int, int]]:
    """'idA:idB,idC:idD' -> index pairs into `ids`; an entry naming an unknown id is an error."""
    index = {shape_id: k for k, shape_id in enumerate(ids)}
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        names = item.split(":")
        if len(names) != 2 or any(n not in index for n in names):
            raise ValueError(f"export.pairs entry {item!r} must be 'idA:idB' with both ids among the chosen shapes "
                             f"(e.g. {ids[0]}:{ids[1]})")
        out.append((index[names[0]], index[names[1]]))
    return out


def encode_shapes(encode: Callable, params, voxels, batch: int) -> jax.Array:
    """Latents (N, *latent) of N grids by a jitted `encode(params, x)`: N <= `batch` in one call, more
    `batch` at a time (the last batch padded, so one compile serves every larger N). Small N is not padded
    to `batch`: at N = 50 encoding 256 grids would be five times the work of the encode it times."""
    voxels = jnp.asarray(voxels, bool)
    n = len(voxels)
    if n <= batch:
        return encode(params, voxels)
    padded = jnp.zeros((-(-n // batch) * batch, *voxels.shape[1:]), bool).at[:n].set(voxels)
    return jnp.concatenate([encode(params, padded[k : k + batch]) for k in range(0, len(padded), batch)])[:n]
