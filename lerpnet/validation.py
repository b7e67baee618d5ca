"""What each evaluation of a training run computes on the validation split.

Mean metrics over the whole split (padded batches sharded over the mesh, padding masked out), the
first few shapes above their reconstructions, and interpolation strips: a few validation pairs
encoded, their latents mixed at STRIP_STEPS even steps from t = 0 to 1 (Algorithm 1 in miniature,
through lerpnet.ops.lerp) and decoded, so TensorBoard shows how the latent space fills in between
as training goes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lerpnet import metrics, models, render
from lerpnet.ops.lerp import interpolate_pairs

STRIP_STEPS = 5
STRIP_PAIRS = 2


def _strips(params, x: jax.Array, threshold: jax.Array, *, model: models.Autoencoder) -> jax.Array:
    """(pairs, STRIP_STEPS, 32, 32, 32) bool: the decoded paths between shapes 2p and 2p + 1 of x."""
    z = model.apply(params, x, method=models.Autoencoder.encode)
    pairs = x.shape[0] // 2
    paths = interpolate_pairs(z, jnp.arange(0, 2 * pairs, 2), jnp.arange(1, 2 * pairs, 2), steps=STRIP_STEPS,
                              implementation="xla")
    logits = model.apply(params, paths.reshape(-1, *z.shape[1:]), method=models.Autoencoder.decode)
    return (jax.nn.sigmoid(logits) > threshold).reshape(pairs, STRIP_STEPS, *x.shape[1:])


class Validation:
    """The validation split of a run, ready to evaluate parameters on.

    step: a jitted `(params, packed, mask) -> (sums of metrics with a "count", reconstructions)`
    (lerpnet.steps.eval_step with its model and loss bound).
    """

    def __init__(self, voxels: np.ndarray, packed: np.ndarray, ids: Sequence[str], model: models.Autoencoder,
                 step: Callable, batch_size: int, num_shown: int, batch_sharding):
        n_dev = batch_sharding.mesh.size
        size = -(-batch_size // n_dev) * n_dev
        n = len(voxels)
        packed = np.concatenate([packed, np.zeros((-n % size, *packed.shape[1:]), packed.dtype)])
        mask = np.arange(len(packed)) < n
        self.batches = [(jax.device_put(packed[i:i + size], batch_sharding),
                         jax.device_put(mask[i:i + size], batch_sharding)) for i in range(0, len(packed), size)]
        self.step = step
        self.shown = voxels[: min(num_shown, size)]
        self.ids = list(ids[: len(self.shown)])
        self.pairs = voxels[: 2 * min(STRIP_PAIRS, n // 2)]
        self._strips = jax.jit(functools.partial(_strips, model=model))

    def __call__(self, params) -> tuple[dict[str, float], np.ndarray]:
        """(mean metrics, reconstructions of `self.shown`)."""
        sums, shown = None, None
        for packed, mask in self.batches:
            out, recon = self.step(params, packed, mask)
            sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
            shown = recon[: len(self.shown)] if shown is None else shown
        sums = jax.device_get(sums)
        count = max(float(sums.pop("count")), 1.0)
        return {k: float(v) / count for k, v in sums.items()}, np.asarray(shown)

    def reconstruction_montage(self, reconstructions: np.ndarray) -> np.ndarray:
        """Inputs (top row) above their reconstructions (bottom row), labelled with id and IoU."""
        ious = np.asarray(metrics.iou(reconstructions, self.shown))
        labels = [f"in {i}" for i in self.ids] + [f"out IoU {v:.2f}" for v in ious]
        return render.montage(list(self.shown) + list(reconstructions), ncols=len(self.shown), labels=labels)

    def strip_montage(self, params, threshold: float) -> np.ndarray | None:
        """One row per validation pair: its decoded path at t = 0 .. 1 (None with fewer than 2 shapes)."""
        if not len(self.pairs):
            return None
        paths = np.asarray(self._strips(params, jnp.asarray(self.pairs, jnp.float32), jnp.float32(threshold)))
        labels = [f"t={t:.2f}" for _ in paths for t in np.linspace(0.0, 1.0, STRIP_STEPS)]
        return render.montage(list(paths.reshape(-1, *paths.shape[2:])), ncols=STRIP_STEPS, labels=labels)
