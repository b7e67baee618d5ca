"""Training and evaluation of the voxel autoencoder: `train_and_evaluate(config, workdir)`.

Pure, jitted step functions (`train_step`, `eval_step`) take the train state, the bit-packed dataset
(kept on the devices, 4 KiB a shape) and batch indices; `train_and_evaluate` does the side effects
(data loading, logging, checkpoints, pictures; see lerpnet.workdir). Data-parallel over all local
devices: the dataset and state are replicated, each batch is split along a "data" mesh axis, and
XLA inserts the gradient all-reduce.
"""

from __future__ import annotations

import functools
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax.training import train_state
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

from lerpnet import losses, metrics, models
from lerpnet.bitpack import pack_voxels, unpack_voxels
from lerpnet.data import dataset_config, load_dataset
from lerpnet.workdir import Workdir

THRESHOLDS = (0.3, 0.4, 0.5)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the run stops, its last good checkpoint stays."""


def default_config() -> ml_collections.ConfigDict:
    """Every field a training config has; configs/*.py override what they need."""
    cfg = ml_collections.ConfigDict()
    cfg.seed = 0  # model initialisation, batch order and augmentation
    cfg.deterministic = False  # True: deterministic GPU reductions (slower); CPU runs are always reproducible
    cfg.data = dataset_config()
    cfg.model = models.model_config()
    cfg.loss = losses.loss_config()
    cfg.train = ml_collections.ConfigDict(
        dict(
            batch_size=32,  # global: split over all local devices
            num_steps=1000,
            optimizer="adamw",  # "adam" | "adamw" | "sgd" (momentum 0.9)
            learning_rate=1e-3,
            schedule="warmup_cosine",  # "constant" | "warmup_cosine" (linear warmup, cosine to 1% of peak)
            warmup_steps=50,
            weight_decay=1e-4,  # adamw only
            grad_clip=1.0,  # global-norm clip; 0 = off
            mirror_axis=1,  # random mirror of training shapes along this axis (chairs: left-right, y); -1 = off
            log_every=50,
            eval_every=250,
            checkpoint_every=250,
            max_checkpoints=3,
            eval_batch_size=64,
            num_reconstructions=8,  # validation shapes drawn at each evaluation
            progress=True,  # tqdm progress bar (steps/s, ETA)
        )
    )
    return cfg


def learning_rate_schedule(cfg: ml_collections.ConfigDict) -> optax.Schedule:
    if cfg.schedule == "constant":
        return optax.constant_schedule(cfg.learning_rate)
    if cfg.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, max(cfg.warmup_steps, 1),
                                                  max(cfg.num_steps, cfg.warmup_steps + 1), 0.01 * cfg.learning_rate)
    raise ValueError(f"train.schedule must be 'constant' or 'warmup_cosine', got {cfg.schedule!r}")


def make_optimizer(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
    lr = learning_rate_schedule(cfg)
    optimizers = {
        "adam": lambda: optax.adam(lr),
        "adamw": lambda: optax.adamw(lr, weight_decay=cfg.weight_decay),
        "sgd": lambda: optax.sgd(lr, momentum=0.9),
    }
    if cfg.optimizer not in optimizers:
        raise ValueError(f"train.optimizer must be one of {tuple(optimizers)}, got {cfg.optimizer!r}")
    clip = [optax.clip_by_global_norm(cfg.grad_clip)] if cfg.grad_clip > 0 else []
    return optax.chain(*clip, optimizers[cfg.optimizer]())


def create_state(config: ml_collections.ConfigDict) -> train_state.TrainState:
    model = models.Autoencoder(config.model)
    params = jax.jit(model.init)(jax.random.key(config.seed), jnp.zeros((1, 32, 32, 32), jnp.float32))
    return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=make_optimizer(config.train))


@functools.lru_cache(maxsize=2)
def _epoch_order(num_shapes: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(num_shapes)


def batch_indices(step: int, num_shapes: int, batch_size: int, seed: int) -> np.ndarray:
    """The training batch of `step`: epochs of seeded permutations, a pure function of the step (resumable)."""
    epoch, offset = divmod(step * batch_size, num_shapes)
    parts, need = [], batch_size
    while need > 0:
        take = _epoch_order(num_shapes, seed, epoch)[offset: offset + need]
        parts.append(take)
        need -= len(take)
        epoch, offset = epoch + 1, 0
    return np.concatenate(parts).astype(np.int32)


def augment(voxels: jax.Array, key: jax.Array, mirror_axis: int) -> jax.Array:
    """Mirror each shape along `mirror_axis` (of the grid) with probability 1/2; -1 = unchanged."""
    if mirror_axis < 0:
        return voxels
    flip = jax.random.bernoulli(key, 0.5, (voxels.shape[0],))[:, None, None, None]
    return jnp.where(flip, jnp.flip(voxels, axis=1 + mirror_axis), voxels)


def train_step(state: train_state.TrainState, packed: jax.Array, idx: jax.Array, *, loss_cfg, mirror_axis: int,
               seed: int) -> tuple[train_state.TrainState, dict[str, jax.Array]]:
    """One optimizer step on shapes `packed[idx]`; the loss reported is before the update."""
    key = jax.random.fold_in(jax.random.key(seed), state.step)
    x = augment(unpack_voxels(packed[idx]), key, mirror_axis)

    def loss_fn(params):
        return jnp.mean(losses.voxel_loss(state.apply_fn(params, x), x, loss_cfg))

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), {"loss": loss, "grad_norm": optax.tree.norm(grads)}


def eval_step(params, packed: jax.Array, mask: jax.Array, *, model: models.Autoencoder,
              loss_cfg) -> tuple[dict[str, jax.Array], jax.Array]:
    """Sums over the shapes where `mask` is set (IoU at THRESHOLDS, occupancies, loss, count), and the
    reconstructions (prob > 0.5)."""
    x = unpack_voxels(packed)
    logits = model.apply(params, x)
    prob = jax.nn.sigmoid(logits)
    w = mask.astype(jnp.float32)
    out = {f"iou@{t}": jnp.sum(w * metrics.iou(prob > t, x)) for t in THRESHOLDS}
    out["pred_occupancy"] = jnp.sum(w * metrics.occupancy(prob > 0.5))
    out["target_occupancy"] = jnp.sum(w * metrics.occupancy(x))
    out["loss"] = jnp.sum(w * losses.voxel_loss(logits, x, loss_cfg))
    out["count"] = jnp.sum(w)
    return out, prob > 0.5


def _pack(voxels: np.ndarray, chunk: int = 1024) -> np.ndarray:
    return np.concatenate([np.asarray(pack_voxels(voxels[i:i + chunk])) for i in range(0, len(voxels), chunk)])


def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


class _Evaluator:
    """Validation metrics over the whole split (padded, sharded batches) and the first few reconstructions."""

    def __init__(self, config, model: models.Autoencoder, val_voxels: np.ndarray, batch_sharding):
        n_dev = batch_sharding.mesh.size
        size = -(-config.train.eval_batch_size // n_dev) * n_dev
        n = len(val_voxels)
        packed = np.concatenate([_pack(val_voxels), np.zeros((-n % size, 32, 32), np.uint32)])
        mask = np.arange(len(packed)) < n
        self.batches = [(jax.device_put(packed[i:i + size], batch_sharding),
                         jax.device_put(mask[i:i + size], batch_sharding)) for i in range(0, len(packed), size)]
        self.step = jax.jit(functools.partial(eval_step, model=model, loss_cfg=config.loss))
        self.shown = val_voxels[: min(config.train.num_reconstructions, size)]

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


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Train per `config` in `workdir` (resuming from its latest checkpoint); returns the last val metrics."""
    tc = config.train
    if config.deterministic:
        # Takes effect only if JAX has not started its GPU backend yet (true under experiments.train).
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()
    mesh = jax.make_mesh((jax.local_device_count(),), ("data",), devices=jax.local_devices(),
                         axis_types=(jax.sharding.AxisType.Auto,))
    replicated, batch_sharding = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    if tc.batch_size % mesh.size:
        raise ValueError(f"train.batch_size={tc.batch_size} must be a multiple of the {mesh.size} local devices")

    dataset = load_dataset(config.data)
    if len(dataset.train_voxels) == 0 or len(dataset.val_voxels) == 0:
        raise ValueError(f"dataset {config.data.source!r} gave {len(dataset.train_voxels)} training and "
                         f"{len(dataset.val_voxels)} validation shapes; both must be non-empty")
    logging.info("data: %d training shapes, %d validation shapes (%s); %d device(s): %s",
                 len(dataset.train_voxels), len(dataset.val_voxels), config.data.source, mesh.size,
                 jax.local_devices()[0].device_kind)
    model = models.Autoencoder(config.model)
    train_packed = jax.device_put(_pack(dataset.train_voxels), replicated)
    evaluator = _Evaluator(config, model, dataset.val_voxels, batch_sharding)
    schedule = learning_rate_schedule(tc)

    state = jax.device_put(create_state(config), replicated)
    wd = Workdir(workdir, tc.max_checkpoints)
    wd.write_config(config)
    if wd.latest_step() is not None:
        state = wd.restore(state)
        wd.drop_metrics_after(int(state.step))
        logging.info("resumed from the checkpoint at step %d in %s", int(state.step), wd.path)
    start = int(state.step)
    logging.info("seeds: model init, batch order and augmentation %d; data split %d", config.seed, config.data.seed)

    step_fn = jax.jit(functools.partial(train_step, loss_cfg=config.loss, mirror_axis=tc.mirror_axis,
                                        seed=config.seed), donate_argnums=0)
    params_finite = jax.jit(_all_finite)

    def evaluate(step: int) -> dict[str, float]:
        val, recon = evaluator(state.params)
        wd.log(step, "val", val)
        ious = np.asarray(metrics.iou(recon, evaluator.shown))
        wd.save_reconstructions(step, evaluator.shown, recon,
                                (dataset.val_ids[: len(recon)], [f"IoU {v:.2f}" for v in ious]))
        wd.save_curves()
        logging.info("step %d validation: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in val.items()))
        return val

    def check_finite(step: int, loss: float) -> None:
        if not np.isfinite(loss) or not bool(params_finite(state.params)):
            last = wd.latest_step()
            raise NonFiniteLossError(
                f"training loss is {loss} at step {step}: the run diverged and was stopped. The last good "
                f"checkpoint ({'none' if last is None else f'step {last}'}) is kept in {wd.path / 'checkpoints'}. "
                f"Lower train.learning_rate (now {tc.learning_rate}) or set train.grad_clip, then rerun.")

    bar = tqdm(total=tc.num_steps, initial=start, desc="train", unit="step", disable=not tc.progress,
               dynamic_ncols=True)
    tick, tick_step = time.perf_counter(), start
    try:
        val = evaluate(start) if start == 0 or start == tc.num_steps else {}
        for step in range(start, tc.num_steps):
            idx = batch_indices(step, len(dataset.train_voxels), tc.batch_size, config.seed)
            state, out = step_fn(state, train_packed, jax.device_put(idx, batch_sharding))
            bar.update(1)
            done = step + 1
            if step % tc.log_every == 0 or done == tc.num_steps:
                out = jax.device_get(out)
                now = time.perf_counter()
                rate = (done - tick_step) / max(now - tick, 1e-9)
                tick, tick_step = now, done
                wd.log(step, "train", {**out, "learning_rate": schedule(step), "steps_per_s": rate,
                                       "shapes_per_s": rate * tc.batch_size})
                bar.set_postfix(loss=f"{float(out['loss']):.4f}")
                check_finite(step, float(out["loss"]))
            if done % tc.checkpoint_every == 0 or done == tc.num_steps:
                check_finite(step, float(out["loss"]))
                wd.save(done, state)
            if done % tc.eval_every == 0 or done == tc.num_steps:
                val = evaluate(done)
    finally:
        bar.close()
        wd.close()
    return val
