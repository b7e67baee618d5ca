"""lerpnet from Python, cell by cell: train (or load) a run, encode chairs, walk between them, save.

    python examples/walkthrough.py [--run=DIR] [--out=DIR]

With no --run it first trains a tiny model on the embedded procedural chairs (about a minute on a
CPU; its shapes are blobs, which is fine for seeing the API); point --run at a real training
workdir (e.g. runs/default from `bin/train`) for real chairs. Each block below is one notebook cell.
"""

import argparse
import pathlib
import tempfile

import numpy as np

import lerpnet
from lerpnet import export, render
from lerpnet.configs import default

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--run", default="", help="a training workdir; empty trains a tiny one first")
parser.add_argument("--out", default="", help="where the files go (default: a temporary folder)")
args = parser.parse_args()
out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="lerpnet_walkthrough_"))

# %% A trained run: train the smoke config if none was given (lerpnet.train.train_and_evaluate is
# what `python -m experiments.train` runs).
run = args.run
if not run:
    run = str(out / "run")
    lerpnet.train.train_and_evaluate(default.get_config("smoke"), run)

# %% Load it: the parameters, the config it was trained with, and its decision threshold.
model = lerpnet.load(run)
print(model)

# %% Shapes: any (N, 32, 32, 32) grids, or files through lerpnet.load_shapes (binvox, .mat, .npy, meshes).
chairs = lerpnet.data.procedural_chairs(2, seed=7)
z = model.encode(chairs)
print("latents", z.shape, z.dtype)  # (2, 2, 2, 2, 8): 64 numbers a shape

# %% Reconstruction quality of these two chairs.
recon = model.reconstruct(chairs)
iou = [float((r & c).sum() / max((r | c).sum(), 1)) for r, c in zip(recon, chairs)]
print("reconstruction IoU", np.round(iou, 3))

# %% The path between them: decode((1 - t) z_a + t z_b) for t = 0, 1/6, ..., 1.
path = model.interpolate(chairs[0], chairs[1], steps=7)
print("path", path.shape, "voxels per step", path.reshape(len(path), -1).sum(1))

# %% Save: a picture of the path and a mesh of its midpoint.
strip = render.save_png(out / "path.png", render.montage(list(path), ncols=len(path)))
mesh = export.save_mesh(out / "midpoint.obj", export.voxel_mesh(path[len(path) // 2]))
print("wrote", strip, "and", mesh)
