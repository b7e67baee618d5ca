"""What the all-pairs program leaves for people: the per-pair table, the top-k novel midpoints,
exported paths, figures and the summary tables. Everything is written through lerpnet.files
(or the exporters), so an interrupted run never leaves a torn output.
"""

from __future__ import annotations

import csv
import io
import pathlib
import re
from collections.abc import Callable

import numpy as np

from lerpnet import files
from lerpnet.allpairs.scores import largest_part
from lerpnet.allpairs.shapes import Shapes
from lerpnet.data import save_binvox
from lerpnet.export import export_steps, figure_rows
from lerpnet.tables import write_table

PathGrids = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (i (B,), j (B,)) -> bool paths (B, T, 32, 32, 32)


def write_pairs(workdir: pathlib.Path, scores: dict[str, np.ndarray], shapes: Shapes, reference_ids,
                with_csv: bool) -> dict[str, pathlib.Path]:
    """pairs.npz (every score of every path, the ids and splits) and, with_csv, pairs.csv: one row a
    path with who, from which split, and its scores (midpoint occupancy for the curve)."""
    out = {"pairs": files.save_npz(workdir / "pairs.npz", **scores, ids=np.array(shapes.ids),
                                   splits=np.array(shapes.splits), reference_ids=np.array(reference_ids))}
    if not with_csv:
        return out
    mid = scores["occupancy"].shape[1] // 2
    ids, splits, refs = np.array(shapes.ids), np.array(shapes.splits), np.array(reference_ids)
    columns = {
        "i": scores["i"], "j": scores["j"], "id_i": ids[scores["i"]], "id_j": ids[scores["j"]],
        "split_i": splits[scores["i"]], "split_j": splits[scores["j"]],
        **{k: scores[k] for k in ("iou_start", "iou_end", "smoothness", "monotonicity", "monotonic_violation",
                                  "novelty_iou")},
        "nearest_train_id": refs[scores["nearest_reference"]],
        "occupancy_start": scores["occupancy_start"], "occupancy_mid": scores["occupancy"][:, mid],
        "occupancy_end": scores["occupancy_end"], "plausible": scores["plausible"].astype(int),
    }
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(columns)
    for row in zip(*columns.values()):
        writer.writerow([f"{v:.5g}" if isinstance(v, np.floating) else v for v in row])
    out["pairs_csv"] = files.write_text(workdir / "pairs.csv", text.getvalue())
    return out


def decode_paths(path_grids: PathGrids, pairs) -> list[np.ndarray]:
    """Bool grids (T, 32, 32, 32) of each (i, j) path."""
    pairs = np.asarray(pairs, np.int32).reshape(-1, 2)
    return list(path_grids(pairs[:, 0], pairs[:, 1]))


def top_k(scores: dict[str, np.ndarray], candidates: np.ndarray, path_grids: PathGrids, *, k: int,
          min_largest_part: float, max_per_shape: int = 1) -> list[dict]:
    """The k most novel midpoints (lowest highest-IoU with any training shape) that stay plausible:
    candidates by score, then checked for being one connected piece on their decoded grids (the
    50 k most novel candidates at most). Diverse: a shape takes part in at most `max_per_shape` of
    the chosen pairs (one odd shape would otherwise fill half the rows). Each entry keeps its
    decoded path under "path"."""
    order = np.flatnonzero(candidates)
    order = order[np.argsort(scores["novelty_iou"][order], kind="stable")]
    order = _diverse(order, scores["i"], scores["j"], max_per_shape, 50 * k)
    mid = scores["occupancy"].shape[1] // 2
    top, batch = [], 16
    for start in range(0, len(order), batch):
        chosen = order[start : start + batch]
        paths = decode_paths(path_grids, np.stack([scores["i"][chosen], scores["j"][chosen]], 1))
        for p, grids in zip(chosen, paths):
            part = largest_part(grids[mid])
            if part >= min_largest_part:
                top.append({"pair": int(p), "i": int(scores["i"][p]), "j": int(scores["j"][p]),
                            "novelty_iou": float(scores["novelty_iou"][p]),
                            "nearest_reference": int(scores["nearest_reference"][p]),
                            "smoothness": float(scores["smoothness"][p]), "largest_part": part,
                            "midpoint_occupancy": float(scores["occupancy"][p, mid]), "path": grids})
            if len(top) == k:
                return top
    return top


def _diverse(order: np.ndarray, i: np.ndarray, j: np.ndarray, max_per_shape: int, count: int) -> np.ndarray:
    """The first `count` pairs of `order` (greedily, in order) whose two shapes are each in fewer
    than `max_per_shape` pairs taken before.

    At N = 1000 the greedy scan passes most of the million pairs once the shapes are used up, so
    the pairs are screened a chunk at a time against the uses so far, and only the ones that pass
    (few, once shapes run out) are taken one by one.
    """
    uses = np.zeros(int(max(i.max(initial=0), j.max(initial=0))) + 1, np.int64)
    taken = []
    for chunk in np.array_split(order, range(4096, len(order), 4096)):
        for p in chunk[(uses[i[chunk]] < max_per_shape) & (uses[j[chunk]] < max_per_shape)]:
            a, b = i[p], j[p]
            if uses[a] < max_per_shape and uses[b] < max_per_shape:
                taken.append(p)
                uses[a] += 1
                uses[b] += 1  # a path (a, a) uses its shape twice
                if len(taken) == count:
                    return np.array(taken, np.int64)
    return np.array(taken, np.int64)


def write_top_k(workdir: pathlib.Path, top: list[dict], shapes: Shapes, reference_ids,
                image_size: int) -> dict[str, pathlib.Path]:
    """topk.json, topk.png (their paths) and topk/<rank>_<a>__<b>_mid.binvox (their midpoints)."""
    out = {}
    for rank, t in enumerate(top):
        t["id_i"], t["id_j"] = shapes.ids[t["i"]], shapes.ids[t["j"]]
        t["nearest_reference_id"] = reference_ids[t["nearest_reference"]]
        mid = t["path"][len(t["path"]) // 2]
        (workdir / "topk").mkdir(parents=True, exist_ok=True)
        save_binvox(workdir / "topk" / f"{rank:02d}_{_safe(t['id_i'])}__{_safe(t['id_j'])}_mid.binvox", mid)
        out["topk_midpoints"] = workdir / "topk"
    if top:
        out["topk_figure"] = figure_rows(workdir / "topk.png",
                                         [(shapes.voxels[t["i"]], t["path"], shapes.voxels[t["j"]]) for t in top],
                                         [(t["id_i"], t["id_j"]) for t in top], image_size=min(image_size, 128))
    out["topk"] = files.write_json(workdir / "topk.json", [{k: v for k, v in t.items() if k != "path"} for t in top])
    return out


def write_exports(workdir: pathlib.Path, export_cfg, shapes: Shapes, export_pairs,
                  path_grids: PathGrids) -> dict[str, pathlib.Path]:
    """exports/<a>__<b>/ (binvox, meshes, strip, GIF) and figure6.png for the chosen pairs."""
    formats = tuple(f for f in export_cfg.mesh_formats.split(",") if f)
    rows, out = [], {}
    for (i, j), grids in zip(export_pairs, decode_paths(path_grids, export_pairs)):
        name = f"{_safe(shapes.ids[i])}__{_safe(shapes.ids[j])}"
        export_steps(workdir / "exports" / name, grids, name, formats, image_size=export_cfg.image_size)
        rows.append((shapes.voxels[i], grids, shapes.voxels[j]))
        out["exports"] = workdir / "exports"
    if rows:
        out["figure"] = figure_rows(workdir / "figure6.png", rows, [(shapes.ids[i], shapes.ids[j]) for i, j in export_pairs],
                                    image_size=min(export_cfg.image_size, 128))
    return out


def write_summary(workdir: pathlib.Path, summary: dict) -> dict[str, pathlib.Path]:
    """summary.json and summary_by_split.{json,csv,md} (the medians per pair of splits)."""
    meta = {k: summary[k] for k in ("num_shapes", "pair_mode", "steps", "threshold", "checkpoint")}
    by_split = write_table(workdir / "summary_by_split", [{"splits": k, **v} for k, v in summary["by_split"].items()],
                           meta | {"device": summary["device"]["device"]})
    return {"summary": files.write_json(workdir / "summary.json", summary), "by_split": by_split}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
