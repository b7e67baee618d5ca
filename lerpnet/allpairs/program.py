"""Streaming all-pairs interpolation: decode and score every path of N shapes in bounded memory.

The 2018 study's Algorithm 1 decodes (1-t) z_i + t z_j for every pair (i, j) and every t. For
N = 1000 and 11 steps that is 11 million 32^3 grids (1.4 TB of float logits), so nothing may be
materialised for all pairs at once. Here the pairs are cut into blocks of P; one jitted, pure step
interpolates a block's latents, decodes them, thresholds and bit-packs the grids and scores the
paths, all on the device, and returns only per-pair scores (a few hundred bytes a path). The block
size is chosen from XLA's own memory analysis of the compiled step, so a run stays under its
memory budget whatever N is. Blocks are sharded over all devices (`shard_map` over a "pairs"
mesh axis; every device holds the parameters, latents and reference shapes) and each finished
block is persisted atomically, so an interrupted run resumes where it stopped.

`interpolate_and_evaluate` is the program around it (`python -m experiments.interpolate`): it
restores a trained run (`restore_params`; lerpnet.train has no restore function of its own), picks
the shapes, checks every input before any work, streams, and writes the summary, the per-pair
table, the top-k novel midpoints and the exports (lerpnet.export).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import json
import math
import os
import pathlib
import re
import tempfile
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import scipy.ndimage
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

from lerpnet.bitpack import pack_voxels, unpack_voxels
from lerpnet.data import Dataset, dataset_config, load_dataset, load_voxels, save_binvox, to_z_up
from lerpnet.export import export_steps, figure_rows
from lerpnet.ops.lerp_decode.api import lerp_decode
from lerpnet.ops.lerp.api import interpolate_pairs
from lerpnet.models import Autoencoder
from lerpnet.allpairs.scores import nearest_iou, path_scores, reference_matrix
from lerpnet.timing import device_info, time_calls, write_table

PAIR_MODES = ("all", "unique")
DECODERS = ("interpolate_pairs", "fused")
AXIS = "pairs"
_MIN_SHARD = 8  # pairs per device in an automatically sized block are a multiple of this

Decode = Callable[[object, jax.Array], jax.Array]  # (params, latents (B, *latent)) -> logits (B, 32, 32, 32)
Paths = Callable[[object, jax.Array, jax.Array, jax.Array], jax.Array]  # (params, z, i, j) -> packed (P, T, 32, 32)


def pair_list(n: int, mode: str) -> np.ndarray:
    """(K, 2) int32 pairs (i, j) of n shapes.

    "all": every ordered pair, i == j included: the study's Algorithm 1, n*n paths.
    "unique": i < j only: the path from j to i is the path from i to j reversed.
    """
    if mode == "all":
        i, j = np.divmod(np.arange(n * n, dtype=np.int64), n)
    elif mode == "unique":
        i, j = np.triu_indices(n, 1)
    else:
        raise ValueError(f"pair mode must be one of {PAIR_MODES}, got {mode!r}")
    return np.stack([i, j], axis=1).astype(np.int32)


def logit_of(threshold: float) -> float:
    """The logit above which sigmoid(logit) > threshold: thresholding without computing sigmoids."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be strictly between 0 and 1, got {threshold}")
    return math.log(threshold / (1.0 - threshold))


def decoded_paths(params, z, i, j, *, decode: Decode, steps: int, threshold_logit: float,
                  backend: str) -> jax.Array:
    """The paths between shapes i[p] and j[p], packed: uint32 (P, steps, 32, 32).

    `lerpnet.interpolation.interpolate_pairs` gives the P*steps latents, `decode` their logits,
    which are thresholded (logit > threshold_logit) and bit-packed without leaving the device.
    """
    latents = interpolate_pairs(z, i, j, steps=steps, backend=backend)
    p = i.shape[0]
    logits = decode(params, latents.reshape(p * steps, *z.shape[1:]))
    return pack_voxels(logits > threshold_logit).reshape(p, steps, *logits.shape[1:-1])


def block_step(params, z, inputs, reference_bits, reference_counts, i, j, *, paths: Paths,
               tolerance: float) -> dict[str, jax.Array]:
    """Scores of the paths between shapes i[p] and j[p] (see `path_metrics.path_scores`).

    paths: (params, z, i, j) -> packed paths (P, T, 32, 32), e.g. `decoded_paths` with its keywords
    bound. inputs: (N, 32, 32) the input shapes, packed; reference_*: the training shapes from
    `path_metrics.reference_matrix` (novelty is the midpoint's highest IoU with any of them).
    Pure: the same block always gives the same scores.
    """
    packed = paths(params, z, i, j)
    scores = path_scores(packed, inputs[i], inputs[j], tolerance)
    scores["novelty_iou"], scores["nearest_reference"] = nearest_iou(
        packed[:, packed.shape[1] // 2], reference_bits, reference_counts
    )
    return scores


@dataclasses.dataclass(frozen=True)
class Plan:
    """A compiled block step and what it costs: `block_pairs` pairs a call, `memory_bytes` a device."""

    step: jax.stages.Compiled
    block_pairs: int
    memory_bytes: int
    mesh: Mesh

    def operands(self, params, z, inputs, reference_bits, reference_counts) -> tuple:
        """Place the per-run operands on every device (replicated), as the step expects them."""
        return jax.device_put((params, z, inputs, reference_bits, reference_counts), NamedSharding(self.mesh, P()))

    def pairs(self, block: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """A block of pairs (K <= block_pairs, 2), padded to block_pairs, sharded over the devices."""
        padded = np.zeros((self.block_pairs, 2), np.int32)
        padded[: len(block)] = block
        sharding = NamedSharding(self.mesh, P(AXIS))
        return jax.device_put(padded[:, 0], sharding), jax.device_put(padded[:, 1], sharding)


def device_mesh(num_devices: int = 0) -> Mesh:
    """A 1-D mesh over the first `num_devices` devices (0 = all)."""
    devices = jax.devices()
    if num_devices > len(devices):
        raise ValueError(f"num_devices={num_devices} but only {len(devices)} {devices[0].platform} devices exist")
    return Mesh(np.array(devices[: num_devices or len(devices)]), (AXIS,))


def _compile(step: Callable, operand_specs: tuple, block_pairs: int, mesh: Mesh) -> tuple[jax.stages.Compiled, int]:
    replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P(AXIS))
    specs = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=replicated), operand_specs)
    index = jax.ShapeDtypeStruct((block_pairs,), jnp.int32, sharding=sharded)
    sharded_step = jax.shard_map(step, mesh=mesh, in_specs=(P(),) * len(specs) + (P(AXIS), P(AXIS)),
                                 out_specs=P(AXIS), check_vma=False)
    compiled = jax.jit(sharded_step).lower(*specs, index, index).compile()
    stats = compiled.memory_analysis()
    memory = (stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
              - stats.alias_size_in_bytes)
    return compiled, int(memory)


def plan_blocks(step: Callable, operand_specs: tuple, num_pairs: int, *, block_pairs: int, memory_budget_bytes: int,
                mesh: Mesh) -> Plan:
    """Compile `step` (a `block_step` with its keywords bound) for blocks that fit the budget.

    block_pairs > 0 is taken as given (a multiple of the device count) and checked; 0 picks the
    largest block that fits, from the memory XLA reports for two small probe blocks. Either way the
    compiled step's reported memory (arguments + outputs + temporaries, per device) is checked
    against the budget here, before any work: a budget too small for one block is an error.
    """
    devices = mesh.devices.size
    budget_mib = memory_budget_bytes / 2**20
    if block_pairs:
        if block_pairs % devices:
            raise ValueError(f"block_pairs={block_pairs} must be a multiple of the device count ({devices})")
        compiled, memory = _compile(step, operand_specs, block_pairs, mesh)
        if memory > memory_budget_bytes:
            raise ValueError(f"a block of {block_pairs} pairs needs {memory / 2**20:.1f} MiB per device, over the "
                             f"memory budget of {budget_mib:.1f} MiB: lower block_pairs or raise memory_budget_mb")
        return Plan(compiled, block_pairs, memory, mesh)
    # Memory is affine in the block size: fit it on two small probes, then check the real block.
    small, large = _MIN_SHARD, 4 * _MIN_SHARD
    m_small = _compile(step, operand_specs, small * devices, mesh)[1]
    m_large = _compile(step, operand_specs, large * devices, mesh)[1]
    per_pair = max(m_large - m_small, 1) / (large - small)  # per device, for each pair it holds
    fixed = max(m_small - small * per_pair, 0)
    if fixed + per_pair > memory_budget_bytes:
        raise ValueError(f"memory budget of {budget_mib:.1f} MiB is too small for one block: the model, latents, "
                         f"reference shapes and workspace take {fixed / 2**20:.1f} MiB and each pair "
                         f"{per_pair / 2**20:.2f} MiB per device; raise memory_budget_mb")
    most_useful = -(-num_pairs // devices)  # no point in a block larger than all the pairs
    per_device = min(int((memory_budget_bytes - fixed) / per_pair), most_useful)
    while True:
        if _MIN_SHARD <= per_device < most_useful:
            per_device -= per_device % _MIN_SHARD
        compiled, memory = _compile(step, operand_specs, per_device * devices, mesh)
        if memory <= memory_budget_bytes:
            return Plan(compiled, per_device * devices, memory, mesh)
        if per_device == 1:
            raise ValueError(f"memory budget of {budget_mib:.1f} MiB is too small for one block: one pair per "
                             f"device needs {memory / 2**20:.1f} MiB; raise memory_budget_mb")
        per_device = max(1, int(per_device * 0.95 * memory_budget_bytes / memory))


def _block_path(blocks_dir: pathlib.Path, b: int) -> pathlib.Path:
    return blocks_dir / f"block_{b:06d}.npz"


def _save_atomically(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    """Write to a temporary file in the same folder, then rename: a block file is whole or absent."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def num_blocks(num_pairs: int, block_pairs: int) -> int:
    return -(-num_pairs // block_pairs)


def run_blocks(plan: Plan, operands: tuple, pairs: np.ndarray, blocks_dir: str | pathlib.Path,
               progress: bool = True) -> tuple[int, int, float]:
    """Compute and persist every block not yet in `blocks_dir`.

    Returns (blocks computed, pairs computed, seconds).

    The next block is dispatched before the previous one is fetched and written, so the device
    never waits for the host.
    """
    blocks_dir = pathlib.Path(blocks_dir)
    blocks_dir.mkdir(parents=True, exist_ok=True)
    for stale in blocks_dir.glob("*.tmp"):  # left by an interrupted write
        stale.unlink()
    total = num_blocks(len(pairs), plan.block_pairs)
    todo = [b for b in range(total) if not _block_path(blocks_dir, b).exists()]
    bar = tqdm(total=total, initial=total - len(todo), unit="block", desc="decode+score", disable=not progress)

    def finish(b, scores, count):
        _save_atomically(_block_path(blocks_dir, b), {k: v[:count] for k, v in jax.device_get(scores).items()})
        bar.update(1)

    start = time.perf_counter()
    pending = None
    for b in todo:
        block = pairs[b * plan.block_pairs : (b + 1) * plan.block_pairs]
        scores = plan.step(*operands, *plan.pairs(block))
        if pending:
            finish(*pending)
        pending = (b, scores, len(block))
    if pending:
        finish(*pending)
    bar.close()
    computed_pairs = sum(len(pairs[b * plan.block_pairs : (b + 1) * plan.block_pairs]) for b in todo)
    return len(todo), computed_pairs, time.perf_counter() - start


def stream_scores(plan: Plan, operands: tuple, pairs: np.ndarray) -> dict[str, jax.Array]:
    """Every block once, nothing fetched or written: the device time of the whole stream, for timing.

    Returns the last block's scores (block on them to wait for the whole stream).
    """
    scores = {}
    for start in range(0, len(pairs), plan.block_pairs):
        scores = plan.step(*operands, *plan.pairs(pairs[start : start + plan.block_pairs]))
    return scores


def collect_blocks(blocks_dir: str | pathlib.Path, count: int) -> dict[str, np.ndarray]:
    """The scores of blocks 0..count-1, concatenated over pairs."""
    parts = []
    for b in range(count):
        with np.load(_block_path(pathlib.Path(blocks_dir), b)) as f:
            parts.append(dict(f))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ---------------------------------------------------------------------------------------------
# The driver: a trained run and a config in, per-pair scores, a summary and pictures out.
# ---------------------------------------------------------------------------------------------


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


def select_shapes(shapes_cfg, num_shapes: int, parts: Parts, files: tuple[str, ...] = ()) -> Shapes:
    """The shapes a config asks for: splits of the dataset in order ("val+train": all validation
    shapes first), a list of ids, or files (turned z-up from `shapes_cfg.up_axis`). `num_shapes`
    caps the splits (0 = all of them) and is an error when larger than they are."""
    files = tuple(files) or tuple(f for f in shapes_cfg.files.split(",") if f)
    source = "files" if files else shapes_cfg.source
    if source == "files":
        if not files:
            raise ValueError("shapes.source='files' but no files were given (shapes.files or command-line arguments)")
        grids = np.stack([to_z_up(load_voxels(f), shapes_cfg.up_axis) for f in files])
        names = [pathlib.Path(f).name for f in files]
        ids = tuple(names if len(set(names)) == len(names) else map(str, files))
        shapes = Shapes(grids, ids, ("file",) * len(files))
    elif source in ("split", "ids"):
        where = {shape_id: (split, k) for split, (_, ids) in parts.items() for k, shape_id in enumerate(ids)}
        if source == "ids":
            wanted = [s.strip() for s in shapes_cfg.ids.split(",") if s.strip()]
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


def encode_shapes(encode: Callable, params, voxels, batch: int) -> jax.Array:
    """Latents (N, *latent) of N grids by a jitted `encode(params, x)`, `batch` at a time (padded)."""
    voxels = jnp.asarray(voxels)
    n = len(voxels)
    padded = jnp.zeros((-(-n // batch) * batch, *voxels.shape[1:]), bool).at[:n].set(voxels)
    return jnp.concatenate([encode(params, padded[k : k + batch]) for k in range(0, len(padded), batch)])[:n]


@dataclasses.dataclass(frozen=True)
class Run:
    """A trained run: its config, the parameters of one checkpoint, and which checkpoint that is."""

    config: ml_collections.ConfigDict
    params: dict
    checkpoint: str  # "<workdir>/checkpoints/<step>"


def restore_params(checkpoint_dir: str | pathlib.Path, step: int = -1) -> Run:
    """The model parameters of a run written by `lerpnet.train` (read-only: nothing is written there).

    checkpoint_dir: the run's workdir (its config.json and checkpoints/; `step` -1 = the latest)
    or one checkpoint, `<workdir>/checkpoints/<step>`. The checkpoint must hold the model that
    config.json describes: any difference in parameter names or shapes is an error naming both.
    """
    path = pathlib.Path(checkpoint_dir).expanduser().absolute()
    if not str(checkpoint_dir):
        raise ValueError("checkpoint_dir is empty: set --config.checkpoint_dir to a trained run's workdir")
    if path.name.isdigit() and path.parent.name == "checkpoints":
        path, step = path.parent.parent, int(path.name)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: checkpoint_dir must be a workdir written by "
                                "experiments.train (config.json + checkpoints/) or one of its checkpoints/<step>")
    config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
    manager = ocp.CheckpointManager(path / "checkpoints", options=ocp.CheckpointManagerOptions(create=False))
    steps = manager.all_steps()
    if not steps:
        raise FileNotFoundError(f"{path / 'checkpoints'} holds no finished checkpoint")
    step = max(steps) if step < 0 else step
    if step not in steps:
        raise FileNotFoundError(f"{path / 'checkpoints'} has no checkpoint at step {step} (it has {sorted(steps)})")
    model = Autoencoder(config.model)
    like = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 32, 32, 32), jnp.float32))
    state = manager.restore(step, args=ocp.args.StandardRestore())
    manager.close()
    shapes = lambda tree: {jax.tree_util.keystr(k): tuple(v.shape)  # noqa: E731
                           for k, v in jax.tree_util.tree_leaves_with_path(tree)}
    expected, found = shapes(like), shapes(state.get("params", {}))
    if found != expected:
        diff = sorted(set(found.items()) ^ set(expected.items()))[:4]
        raise ValueError(f"checkpoint {path / 'checkpoints' / str(step)} does not match the model in {config_path}: "
                         f"parameters differ at {diff}")
    return Run(config, state["params"], str(path / "checkpoints" / str(step)))


def plausible(scores: dict[str, np.ndarray], plausible_cfg) -> np.ndarray:
    """Paths whose midpoint can count as a shape (scores only; `largest_part` is checked later):
    smooth, both inputs reconstructed, midpoint occupancy in range of the inputs'."""
    occ = scores["occupancy"]
    mid = occ[:, occ.shape[1] // 2]
    lo, hi = plausible_cfg.occupancy_range
    low_input = np.minimum(scores["occupancy_start"], scores["occupancy_end"])
    high_input = np.maximum(scores["occupancy_start"], scores["occupancy_end"])
    return ((scores["i"] != scores["j"])
            & (scores["smoothness"] >= plausible_cfg.min_smoothness)
            & (np.minimum(scores["iou_start"], scores["iou_end"]) >= plausible_cfg.min_endpoint_iou)
            & (mid >= lo * low_input) & (mid <= hi * high_input))


def largest_part(grid: np.ndarray) -> float:
    """Fraction of a grid's voxels in its largest face-connected piece (1.0 for an empty grid)."""
    labels, count = scipy.ndimage.label(grid)
    if count == 0:
        return 1.0
    return float(np.bincount(labels.ravel())[1:].max() / grid.sum())


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _write_json(path: pathlib.Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, default=str) + "\n")


def _resume_block_pairs(workdir: pathlib.Path, fingerprint: dict, block_pairs: int) -> int:
    """The block size to use: a rerun on a workdir keeps the blocks it already has.

    A workdir whose finished blocks were computed with other settings is an error (its blocks
    would be mixed with different ones), named field by field.
    """
    path = workdir / "plan.json"
    if not path.exists():
        return block_pairs
    stored = json.loads(path.read_text())
    changed = {k: (stored.get(k), v) for k, v in fingerprint.items() if stored.get(k) != v}
    if block_pairs and block_pairs != stored.get("block_pairs"):
        changed["block_pairs"] = (stored.get("block_pairs"), block_pairs)
    if changed:
        detail = "; ".join(f"{k}: {old!r} there, {new!r} now" for k, (old, new) in changed.items())
        raise ValueError(f"{workdir} holds a run with other settings ({detail[:500]}): use a new workdir, or delete "
                         f"{workdir / 'blocks'} and {path} to start over")
    return stored["block_pairs"]


def _medians(scores: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, float]:
    mid = scores["occupancy"].shape[1] // 2
    columns = {
        "iou_start": scores["iou_start"],
        "iou_end": scores["iou_end"],
        "smoothness": scores["smoothness"],
        "monotonicity": scores["monotonicity"],
        "monotonic_violation": scores["monotonic_violation"],
        "novelty_iou": scores["novelty_iou"],
        "midpoint_occupancy": scores["occupancy"][:, mid],
    }
    out = {f"median_{k}": float(np.median(v[mask])) if mask.any() else float("nan") for k, v in columns.items()}
    out["fraction_monotone"] = float(np.mean(scores["monotonicity"][mask] == 1.0)) if mask.any() else float("nan")
    return out


def interpolate_and_evaluate(config, workdir: str | pathlib.Path, files: tuple[str, ...] = ()) -> dict:
    """The whole program: load the trained run, pick shapes, stream every pair, summarise, export.

    Everything that can be wrong with the input (config values, checkpoint, shape ids or files,
    N, memory budget, a workdir of another run) is checked before any shape is encoded. Writes
    into `workdir`: config.json, plan.json, shapes.json, blocks/ (resumable), pairs.npz,
    pairs.csv, summary.json, summary_by_split.{json,csv,md}, topk.json, topk.png, topk/,
    figure6.png, exports/. Returns the summary.
    """
    started = time.perf_counter()
    workdir = pathlib.Path(workdir)
    if config.backend == "numpy":
        raise ValueError("backend 'numpy' runs outside JAX; the streaming step needs a device backend "
                         "(auto, jnp, pallas, pallas_global, pallas_triton)")
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}.get(config.dtype)
    if dtype is None:
        raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {config.dtype!r}")
    threshold_logit = logit_of(config.threshold)
    if config.decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {config.decoder!r}")
    if config.decoder == "fused" and config.threshold != 0.5:
        raise ValueError(f"decoder 'fused' thresholds at 0.5 only (logit > 0), got threshold={config.threshold}")
    if config.steps < 2:
        raise ValueError(f"steps must be >= 2, got {config.steps}")
    run = restore_params(config.checkpoint_dir, config.checkpoint_step)
    data = dict(run.config.data)
    if config.data_path:
        data["path"] = config.data_path
    canonical = load_dataset(dataset_config(**{**data, "rotations": "canonical"}))
    rotated = load_dataset(dataset_config(**{**data, "rotations": "all"})) if config.shapes.rotations == "all" else None
    shapes = select_shapes(config.shapes, config.num_shapes, dataset_parts(canonical, rotated), files)
    pairs = pair_list(len(shapes.ids), config.pairs)
    export_pairs = _export_pairs(config.export.pairs, shapes.ids)

    model = Autoencoder(run.config.model)
    encode = jax.jit(functools.partial(model.apply, method=Autoencoder.encode))
    if config.decoder == "interpolate_pairs":
        decode = functools.partial(model.apply, method=Autoencoder.decode)
        paths = functools.partial(decoded_paths, decode=decode, steps=config.steps, threshold_logit=threshold_logit,
                                  backend=config.backend)
    else:  # "fused" (checked above): lerp after the affine first layer, one kernel to packed bits
        paths = functools.partial(lerp_decode, model, steps=config.steps)
    step = functools.partial(block_step, paths=paths, tolerance=config.monotonic_tolerance)
    inputs = pack_voxels(shapes.voxels)
    reference = reference_matrix(canonical.train_voxels)
    latent = jax.eval_shape(encode, run.params, jax.ShapeDtypeStruct((1, *shapes.voxels.shape[1:]), bool))
    specs = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
                         (run.params, jax.ShapeDtypeStruct((len(shapes.ids), *latent.shape[1:]), dtype), inputs,
                          *reference))
    fingerprint = {
        "checkpoint": run.checkpoint, "ids": list(shapes.ids), "pairs": config.pairs, "steps": config.steps,
        "threshold": config.threshold, "dtype": config.dtype, "backend": config.backend, "decoder": config.decoder,
        "monotonic_tolerance": config.monotonic_tolerance, "reference_ids_hash": _hash(canonical.train_ids),
    }
    block_pairs = _resume_block_pairs(workdir, fingerprint, config.block_pairs)
    mesh = device_mesh(config.num_devices)
    plan = plan_blocks(step, specs, len(pairs), block_pairs=block_pairs,
                       memory_budget_bytes=int(config.memory_budget_mb * 2**20), mesh=mesh)

    # Inputs are valid: from here on, work.
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
    _write_json(workdir / "plan.json", {**fingerprint, "block_pairs": plan.block_pairs})
    _write_json(workdir / "shapes.json", {"ids": shapes.ids, "splits": shapes.splits})
    z = encode_shapes(encode, run.params, shapes.voxels, config.encode_batch).astype(dtype)
    operands = plan.operands(run.params, z, inputs, *reference)
    blocks = num_blocks(len(pairs), plan.block_pairs)
    computed, computed_pairs, stream_seconds = run_blocks(plan, operands, pairs, workdir / "blocks", config.progress)
    scores = collect_blocks(workdir / "blocks", blocks)
    scores["i"], scores["j"] = pairs[:, 0], pairs[:, 1]
    ok = plausible(scores, config.plausible)
    scores["plausible"] = ok
    np.savez(workdir / "pairs.npz", **scores, ids=np.array(shapes.ids), splits=np.array(shapes.splits),
             reference_ids=np.array(canonical.train_ids))
    if config.write_csv:
        _write_pairs_csv(workdir / "pairs.csv", scores, shapes, canonical.train_ids)

    timed = None
    if config.timing.repeats:
        voxels, packed = jax.device_put(shapes.voxels), jax.device_put(inputs)

        def end_to_end():
            latents = encode_shapes(encode, run.params, voxels, config.encode_batch).astype(dtype)
            return stream_scores(plan, plan.operands(run.params, latents, packed, *reference), pairs)

        timed = time_calls(end_to_end, warmup=config.timing.warmup, repeats=config.timing.repeats)

    grids = jax.jit(lambda p, zz, i, j: unpack_voxels(paths(p, zz, i, j)))
    path_grids = lambda i, j: np.asarray(grids(run.params, z, i, j))  # noqa: E731
    distinct = scores["i"] < scores["j"]  # each path once (the reverse of a path is the same path)
    top = _top_k(scores, ok & distinct, config, path_grids)
    if not export_pairs:  # an unchosen sample: shapes (0, 1), (2, 3), ... (validation shapes come first)
        export_pairs = [(2 * k, 2 * k + 1) for k in range(min(config.export.count, len(shapes.ids) // 2))]
    _write_exports(workdir, config, shapes, top, export_pairs, path_grids, canonical.train_ids)

    decoded = len(pairs) * config.steps
    summary = {
        "device": device_info(),
        "checkpoint": run.checkpoint,
        "num_shapes": len(shapes.ids),
        "shapes_by_split": {s: shapes.splits.count(s) for s in dict.fromkeys(shapes.splits)},
        "pair_mode": config.pairs,
        "num_pairs": len(pairs),
        "distinct_paths": int(distinct.sum()),
        "steps": config.steps,
        "decoded_shapes": decoded,
        "threshold": config.threshold,
        "dtype": config.dtype,
        "backend": config.backend,
        "decoder": config.decoder,
        "num_devices": int(mesh.devices.size),
        "block_pairs": plan.block_pairs,
        "block_memory_mib": plan.memory_bytes / 2**20,
        "memory_budget_mib": config.memory_budget_mb,
        "num_blocks": blocks,
        "blocks_computed_now": computed,
        "stream_seconds_now": stream_seconds,
        "decoded_shapes_per_second_now": computed_pairs * config.steps / stream_seconds if computed else None,
        "plausible_paths": int((ok & distinct).sum()),
        **_medians(scores, distinct),
        "by_split": _by_split(scores, shapes, distinct),
        "top_k": [{k: v for k, v in t.items() if k != "path"} for t in top],
        "exported_pairs": [[shapes.ids[i], shapes.ids[j]] for i, j in export_pairs],
    }
    if timed is not None:
        summary["end_to_end"] = {**timed.as_dict(), "decoded_shapes_per_second": decoded / timed.median,
                                 "what": "encode + interpolate + decode + threshold + pack + score, all pairs"}
    summary["wall_seconds"] = time.perf_counter() - started
    _write_json(workdir / "summary.json", summary)
    write_table(workdir / "summary_by_split", [{"splits": k, **v} for k, v in summary["by_split"].items()],
                {k: summary[k] for k in ("num_shapes", "pair_mode", "steps", "threshold", "checkpoint")}
                | {"device": summary["device"]["device"]})
    return summary


def _hash(ids) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def _export_pairs(spec: str, ids: tuple[str, ...]) -> list[tuple[int, int]]:
    """'idA:idB,idC:idD' -> index pairs; unknown ids are an error naming them."""
    index = {shape_id: k for k, shape_id in enumerate(ids)}
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        names = item.split(":")
        if len(names) != 2 or any(n not in index for n in names):
            raise ValueError(f"export.pairs entry {item!r} must be 'idA:idB' with both ids among the chosen shapes "
                             f"(e.g. {ids[0]}:{ids[1]})")
        out.append((index[names[0]], index[names[1]]))
    return out


def _by_split(scores: dict[str, np.ndarray], shapes: Shapes, mask: np.ndarray) -> dict[str, dict]:
    """Medians per combination of the two inputs' splits ("val-val", "train-val", ...)."""
    splits = np.array(shapes.splits)
    group = np.array(["-".join(sorted(p)) for p in zip(splits[scores["i"]], splits[scores["j"]])])
    return {g: {"paths": int((mask & (group == g)).sum()), **_medians(scores, mask & (group == g))}
            for g in sorted(set(group[mask]))}


def _write_pairs_csv(path: pathlib.Path, scores: dict[str, np.ndarray], shapes: Shapes, reference_ids) -> None:
    """One row a path: who, from which split, and its scores (midpoint occupancy for the curve)."""
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
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in zip(*columns.values()):
            writer.writerow([f"{v:.5g}" if isinstance(v, np.floating) else v for v in row])


def _decode_paths(path_grids, pairs, batch: int = 16) -> list[np.ndarray]:
    """Bool grids (T, 32, 32, 32) of each (i, j) path, decoded `batch` pairs a call (one compile)."""
    out = []
    for start in range(0, len(pairs), batch):
        chunk = np.asarray(pairs[start : start + batch], np.int32).reshape(-1, 2)
        padded = np.zeros((batch, 2), np.int32)
        padded[: len(chunk)] = chunk
        out += list(path_grids(padded[:, 0], padded[:, 1])[: len(chunk)])
    return out


def _top_k(scores: dict[str, np.ndarray], candidates: np.ndarray, config, path_grids) -> list[dict]:
    """The k most novel midpoints (lowest highest-IoU with any training shape) that stay plausible:
    candidates by score, then checked for being one connected piece on their decoded grids (the
    50 k most novel candidates at most)."""
    order = np.flatnonzero(candidates)
    order = order[np.argsort(scores["novelty_iou"][order], kind="stable")][: 50 * config.top_k]
    mid = scores["occupancy"].shape[1] // 2
    top, batch = [], 16
    for start in range(0, len(order), batch):
        chosen = order[start : start + batch]
        paths = _decode_paths(path_grids, np.stack([scores["i"][chosen], scores["j"][chosen]], 1), batch)
        for p, grids in zip(chosen, paths):
            part = largest_part(grids[mid])
            if part >= config.plausible.min_largest_part:
                top.append({"pair": int(p), "i": int(scores["i"][p]), "j": int(scores["j"][p]),
                            "novelty_iou": float(scores["novelty_iou"][p]),
                            "nearest_reference": int(scores["nearest_reference"][p]),
                            "smoothness": float(scores["smoothness"][p]), "largest_part": part,
                            "midpoint_occupancy": float(scores["occupancy"][p, mid]), "path": grids})
            if len(top) == config.top_k:
                return top
    return top


def _write_exports(workdir: pathlib.Path, config, shapes: Shapes, top: list[dict], export_pairs, path_grids,
                   reference_ids) -> None:
    """topk.json, topk.png (their paths) and topk/<rank>_*_mid.binvox for the top-k; exports/<a>__<b>/
    (binvox, meshes, strip, GIF) and figure6.png for the chosen pairs."""
    size = min(config.export.image_size, 128)
    for rank, t in enumerate(top):
        t["id_i"], t["id_j"] = shapes.ids[t["i"]], shapes.ids[t["j"]]
        t["nearest_reference_id"] = reference_ids[t["nearest_reference"]]
        mid = t["path"][len(t["path"]) // 2]
        save_binvox(_ensure(workdir / "topk") / f"{rank:02d}_{_safe(t['id_i'])}__{_safe(t['id_j'])}_mid.binvox", mid)
    if top:
        figure_rows(workdir / "topk.png", [(shapes.voxels[t["i"]], t["path"], shapes.voxels[t["j"]]) for t in top],
                    [(t["id_i"], t["id_j"]) for t in top], image_size=size)
    _write_json(workdir / "topk.json", [{k: v for k, v in t.items() if k != "path"} for t in top])
    formats = tuple(f for f in config.export.mesh_formats.split(",") if f)
    rows = []
    for (i, j), grids in zip(export_pairs, _decode_paths(path_grids, export_pairs)):
        name = f"{_safe(shapes.ids[i])}__{_safe(shapes.ids[j])}"
        export_steps(workdir / "exports" / name, grids, name, formats, image_size=config.export.image_size)
        rows.append((shapes.voxels[i], grids, shapes.voxels[j]))
    if rows:
        figure_rows(workdir / "figure6.png", rows, [(shapes.ids[i], shapes.ids[j]) for i, j in export_pairs],
                    image_size=size)


def _ensure(path: pathlib.Path) -> pathlib.Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
