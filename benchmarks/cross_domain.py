"""The cross-domain report: how a model trained on ModelNet chairs reconstructs ShapeNetVox32 chairs.

    python -m benchmarks.cross_domain --run=RUN --workdir=OUT [--data=/path/to/ShapeNetVox32]

RUN is a trained run's workdir; --data is the ShapeNetVox32 folder (default: ShapeNetVox32 inside
the folder LERPNET_DATA names). The pose is fixed first by the up-axis convention (ShapeNet is
y-up, turned to lerpnet's z-up as every loader does) and then by the azimuth about z, 0/90/180/270
degrees, that fits best: the one best over the whole set (one pose convention for the source) and,
per chair, its own best. Writes cross_domain.{json,csv,md} (one row per chair: its occupancy and
extent, the IoU at each azimuth at the run's threshold; the set's means in the meta) and
cross_domain.png (the chairs above their reconstructions at the set's azimuth). The run's own
validation IoU and its chairs' occupancy and extent, where its dataset is readable here, say what
the domain gap is.
"""

from __future__ import annotations

import pathlib

import numpy as np
from absl import app, flags, logging

from lerpnet import console, models, render
from lerpnet.data import dataset_config, load_dataset
from lerpnet.data.sources import resolve_path
from lerpnet.tables import write_table
from lerpnet.workdir import load_run

from benchmarks import trained_scores

AZIMUTHS = (0, 90, 180, 270)  # degrees about the up (z) axis, counter-clockwise seen from above


def turn(voxels: np.ndarray, degrees: int) -> np.ndarray:
    """(N, X, Y, Z) grids turned about z by a multiple of 90 degrees (x towards y)."""
    return np.ascontiguousarray(np.rot90(voxels, degrees // 90, axes=(1, 2)))


def shape_stats(voxels: np.ndarray) -> dict[str, np.ndarray]:
    """Per grid: occupancy, and the bounding box's extent in voxels along x, y and z."""
    out = {"occupancy": voxels.mean(axis=(1, 2, 3))}
    for axis, name in enumerate("xyz", start=1):
        filled = voxels.any(axis=tuple(a for a in (1, 2, 3) if a != axis))
        first, last = filled.argmax(axis=1), filled.shape[1] - 1 - filled[:, ::-1].argmax(axis=1)
        out[f"extent_{name}"] = np.where(filled.any(axis=1), last - first + 1, 0)
    return out


def report(run_path: str | pathlib.Path, data: str | pathlib.Path, workdir: str | pathlib.Path) -> dict:
    """Write the report into `workdir`; returns its meta (the set's figures)."""
    run = load_run(run_path)
    model = models.Autoencoder(run.config.model)
    chairs = load_dataset(dataset_config(source="shapenet_vox32", path=str(data), category="chair",
                                         val_fraction=0.0, dedup=False))
    voxels, ids = chairs.train_voxels, chairs.train_ids
    logging.info("%d ShapeNetVox32 chairs under %s (threshold %.2f)", len(ids), run.checkpoint, run.threshold)
    iou = {}
    for degrees in AZIMUTHS:
        turned = turn(voxels, degrees)
        prob = trained_scores.probabilities(model, run.params, turned)
        iou[degrees] = trained_scores.reconstruction_scores(prob, turned, (run.threshold,))["per_shape_iou"]
    table = np.stack([iou[d] for d in AZIMUTHS], axis=1)  # (chairs, azimuths)
    set_azimuth = AZIMUTHS[int(np.argmax(table.mean(axis=0)))]
    stats = shape_stats(voxels)
    rows = [{"id": i, **{k: v[n].item() for k, v in stats.items()},
             **{f"iou@{d}deg": float(table[n, a]) for a, d in enumerate(AZIMUTHS)},
             "best_azimuth": AZIMUTHS[int(np.argmax(table[n]))], "best_iou": float(table[n].max())}
            for n, i in enumerate(ids)]
    meta = {"run": str(run.checkpoint), "threshold": run.threshold, "chairs": len(ids), "set_azimuth": set_azimuth,
            "mean_iou_at_set_azimuth": float(table[:, AZIMUTHS.index(set_azimuth)].mean()),
            "mean_iou_at_each_chair_s_best": float(table.max(axis=1).mean()),
            "mean_iou_at_0deg": float(table[:, 0].mean()),
            "shapenet_mean_occupancy": float(stats["occupancy"].mean()),
            "shapenet_mean_extent_xyz": [float(stats[f"extent_{a}"].mean()) for a in "xyz"]}
    meta.update(_own_domain(run, model))
    out = pathlib.Path(workdir)
    write_table(out / "cross_domain", rows, meta)
    shown = turn(voxels, set_azimuth)
    recon = trained_scores.probabilities(model, run.params, shown) > run.threshold
    labels = [f"in {i[:8]}" for i in ids] + [f"out IoU {v:.2f}" for v in table[:, AZIMUTHS.index(set_azimuth)]]
    render.save_png(out / "cross_domain.png", render.montage(list(shown) + list(recon), ncols=len(ids), labels=labels))
    return meta


def _own_domain(run, model) -> dict:
    """The run's validation IoU and its validation chairs' occupancy and extent, when its data is here."""
    try:
        val = load_dataset(run.config.data).val_voxels
    except (ValueError, OSError) as e:  # the training data is elsewhere: the gap is then ShapeNet's side only
        logging.warning("the run's dataset is not readable here (%s): its own figures are left out", e)
        return {}
    stats = shape_stats(val)
    prob = trained_scores.probabilities(model, run.params, val)
    return {"own_validation_iou": trained_scores.reconstruction_scores(prob, val, (run.threshold,))["iou"],
            "own_mean_occupancy": float(stats["occupancy"].mean()),
            "own_mean_extent_xyz": [float(stats[f"extent_{a}"].mean()) for a in "xyz"]}


def define_flags() -> None:
    """The program's flags (defined when it runs, so that importing its functions defines none)."""
    flags.DEFINE_string("run", None, "The trained run's workdir (config.json + checkpoints/).")
    flags.DEFINE_string("workdir", None, "Folder for the report's table and picture.")
    flags.DEFINE_string("data", "", "The ShapeNetVox32 folder ('' = ShapeNetVox32 inside $LERPNET_DATA).")
    flags.mark_flags_as_required(["run", "workdir"])


def main(argv):
    console.start(argv)
    args = flags.FLAGS
    with console.one_line_errors((ValueError, OSError)):  # a missing run or dataset
        data = resolve_path("shapenet_vox32", args.data)
        meta = report(args.run, data, args.workdir)
    logging.info("mean IoU %.3f at azimuth %d (%.3f with each chair's best azimuth)", meta["mean_iou_at_set_azimuth"],
                 meta["set_azimuth"], meta["mean_iou_at_each_chair_s_best"])
    out = pathlib.Path(args.workdir)
    console.print_outputs({"table": out / "cross_domain.md", "picture": out / "cross_domain.png"})


if __name__ == "__main__":
    define_flags()
    app.run(main)
