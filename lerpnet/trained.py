"""A trained run as one object: encode, decode, reconstruct and interpolate shapes from a notebook.

    import lerpnet
    model = lerpnet.load("runs/default")                 # a training workdir (or checkpoints/<step>)
    a, b = lerpnet.load_shapes(["a.binvox", "b.off"])    # files -> z-up 32^3 bool grids
    path = model.interpolate(a, b, steps=11)             # (11, 32, 32, 32) bool, a ... b
    lerpnet.export.save_mesh("mid.obj", lerpnet.export.voxel_mesh(path[5]))

Everything takes host arrays and returns host arrays (NumPy); batching, padding and compiling
happen inside, one compile per batch size, so calling it in a loop stays fast. Decoding thresholds
at the run's own threshold (chosen on validation when it was trained) unless told otherwise.
"""

from __future__ import annotations

import functools
import pathlib
import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lerpnet import models
from lerpnet.bitpack import unpack_voxels
from lerpnet.data import file_up_axis, load_voxels, to_z_up
from lerpnet.ops.lerp_decode import lerp_decode
from lerpnet.ops.lerp_decode.common import threshold_logit
from lerpnet.workdir import POOR_VAL_IOU, Run, load_run

RESOLUTION = 32
BATCH = 64  # shapes per compiled encode/decode call; smaller inputs are padded to it


def load_shapes(paths: str | pathlib.Path | Sequence[str | pathlib.Path], up_axis: str | None = None) -> np.ndarray:
    """Voxel or mesh files -> (N, 32, 32, 32) bool grids in lerpnet's z-up orientation.

    up_axis: the files' up axis, "y" or "z". None takes each file's convention
    (`lerpnet.data.file_up_axis`: "y" for ShapeNet's `model.binvox`, else "z"). A single path gives
    a single (32, 32, 32) grid.
    """
    single = isinstance(paths, str | pathlib.Path)
    grids = []
    for path in [paths] if single else paths:
        grids.append(to_z_up(load_voxels(path, RESOLUTION), up_axis or file_up_axis(path)))
    return grids[0] if single else np.stack(grids)


def _as_grids(voxels) -> tuple[np.ndarray, bool]:
    """(N, 32, 32, 32) bool from one grid, a batch, or file paths; and whether one grid was given."""
    if isinstance(voxels, str | pathlib.Path) or (isinstance(voxels, Sequence) and voxels
                                                   and isinstance(voxels[0], str | pathlib.Path)):
        grids = load_shapes(voxels)
    else:
        grids = np.asarray(voxels)
    single = grids.ndim == 3
    grids = grids[None] if single else grids
    if grids.ndim != 4 or grids.shape[1:] != (RESOLUTION,) * 3:
        raise ValueError(f"voxels must be (32, 32, 32) or (N, 32, 32, 32), got shape {grids.shape}")
    return grids > 0.5 if grids.dtype != bool else grids, single


def _batched(fn, rows: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """fn over `rows` in padded batches of `batch` (one compile), concatenated and cut back."""
    out = []
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        padded = np.zeros((batch, *chunk.shape[1:]), chunk.dtype)
        padded[: len(chunk)] = chunk
        out.append(np.asarray(fn(padded))[: len(chunk)])
    return np.concatenate(out)


class TrainedAutoencoder:
    """A trained run's autoencoder: its config, parameters and decision threshold."""

    def __init__(self, run: Run):
        self.run = run
        self.config = run.config
        self.params = run.params
        self.threshold = float(run.threshold)
        self.model = models.Autoencoder(run.config.model)
        if run.val_iou is not None and run.val_iou < POOR_VAL_IOU:
            warnings.warn(f"the run {run.checkpoint} reconstructs poorly (validation IoU {run.val_iou:.3f} < "
                          f"{POOR_VAL_IOU}): its decoded shapes will be mostly specks", stacklevel=3)
        self._encode = jax.jit(functools.partial(self.model.apply, method=models.Autoencoder.encode))
        self._decode = jax.jit(functools.partial(self.model.apply, method=models.Autoencoder.decode))

    def __repr__(self) -> str:
        return f"TrainedAutoencoder({self.run.checkpoint!r}, threshold={self.threshold:.2f})"

    def encode(self, voxels) -> np.ndarray:
        """Latents (N, 2, 2, 2, 8) float32 of grids (N, 32, 32, 32) or files; one grid gives one latent."""
        grids, single = _as_grids(voxels)
        z = _batched(lambda x: self._encode(self.params, x), grids)
        return z[0] if single else z

    def decode_logits(self, latents) -> np.ndarray:
        """Logits (N, 32, 32, 32) of latents (N, 2, 2, 2, 8) (or (N, 64), or one latent)."""
        z = np.asarray(latents, np.float32)
        single = z.size == 64 and z.ndim in (1, 4)
        z = z.reshape(-1, 2, 2, 2, 8)
        if not np.isfinite(z).all():
            raise ValueError("latents hold NaN or inf values; they decode to nothing meaningful")
        logits = _batched(lambda x: self._decode(self.params, x), z)
        return logits[0] if single else logits

    def decode(self, latents, threshold: float | None = None) -> np.ndarray:
        """Bool grids of latents: voxel on where sigmoid(logit) > threshold (default: the run's)."""
        logit = threshold_logit(self.threshold if threshold is None else threshold)  # checks it first
        return self.decode_logits(latents) > logit

    def reconstruct(self, voxels, threshold: float | None = None) -> np.ndarray:
        """decode(encode(voxels)): what the autoencoder makes of each shape."""
        return self.decode(self.encode(voxels), threshold)

    def interpolate(self, a, b, steps: int = 11, threshold: float | None = None,
                    implementation: str | None = None) -> np.ndarray:
        """The path from shape a to shape b: (steps, 32, 32, 32) bool, decode((1 - t) z_a + t z_b).

        a, b: grids (32, 32, 32), files, or latents (2, 2, 2, 8). Runs the fused interpolate-decode op
        (`lerpnet.ops.lerp_decode`, `implementation` as there).
        """
        z = np.stack([self._latent(a), self._latent(b)])
        packed = lerp_decode(self.model, self.params, jnp.asarray(z), np.array([0]), np.array([1]), steps=steps,
                             threshold=self.threshold if threshold is None else threshold,
                             implementation=implementation)
        return np.asarray(unpack_voxels(packed))[0]

    def _latent(self, shape) -> np.ndarray:
        array = None if isinstance(shape, str | pathlib.Path) else np.asarray(shape)
        if array is not None and array.shape in ((2, 2, 2, 8), (64,)):
            return array.reshape(2, 2, 2, 8).astype(np.float32)
        return self.encode(shape)


def load(path: str | pathlib.Path, step: int | None = None) -> TrainedAutoencoder:
    """A trained run (a workdir of `experiments.train`, or one of its checkpoints/<step>) as an object."""
    return TrainedAutoencoder(load_run(path, step))
