"""The all-pairs program (`lerpnet-interpolate`): a trained run and a config in; scores, tables and
pictures of every pair's interpolation path out.

`interpolate_and_evaluate` reads as its five steps: read the run and choose the shapes (every input
checked before any work; where the config gives N, `score_pairs` compiles meanwhile on a background
thread), encode them, score every pair (`api.score_pairs`, resumable through the workdir's block store),
write the reports, write the summary.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from lerpnet import distributed
from lerpnet import files as writers
from lerpnet.allpairs import reports
from lerpnet.allpairs.api import PairScores, compile_score_pairs, path_grids, score_pairs
from lerpnet.allpairs.gallery import write_gallery
from lerpnet.allpairs.scores import as_packed, by_split, medians, plausible
from lerpnet.allpairs.shapes import (Shapes, dataset_parts, encode_shapes, pairs_by_id, select_shapes,
                                     shape_count)
from lerpnet.allpairs.store import BlockStore, content_hash
from lerpnet.configs import interpolate as interpolate_config
from lerpnet.data import dataset_config, load_dataset
from lerpnet.device import device_info
from lerpnet.models import Autoencoder
from lerpnet.ops.lerp_decode.api import resolve_implementation
from lerpnet.timing import Laps, time_calls
from lerpnet.workdir import POOR_VAL_IOU, Run, load_run


def use_compilation_cache() -> pathlib.Path:
    """Keep compiled programs in $LERPNET_CACHE/jax (default ~/.cache/lerpnet/jax), so a rerun compiles
    nothing; a cache folder already chosen through jax's own settings is kept."""
    if not jax.config.jax_compilation_cache_dir:
        folder = pathlib.Path(os.environ.get("LERPNET_CACHE") or "~/.cache/lerpnet").expanduser() / "jax"
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return pathlib.Path(jax.config.jax_compilation_cache_dir)


def interpolate_and_evaluate(config, workdir: str | pathlib.Path, files: tuple[str, ...] = ()) -> dict | None:
    """The whole program: read the run and shapes, encode, score every pair, report, summarise.

    Everything that can be wrong with the input (config values, the run, shape ids or files, N, the
    memory budget, a workdir of another run or model) is an error before anything is written. Writes
    into `workdir`: plan.json and blocks/ (resumable), config.json, shapes.json, pairs.npz,
    pairs.csv, topk.json, topk.png, topk/, figure6.png, exports/, summary.json,
    summary_by_split.{json,csv,md} and the gallery. Returns the summary (its "outputs": where each is).

    One run writes a workdir at a time: from the moment it opens the workdir's block store to its
    return, it holds `<workdir>/.lock`, and a second run on the same workdir is refused with a
    ValueError naming it (lerpnet.files.exclusive_lock).

    Several processes (lerpnet.distributed): every process runs this on the same config and shared
    workdir and computes its share of the blocks; process 0 holds the lock, then writes everything
    else and returns the summary, the others return None.
    """
    with contextlib.ExitStack() as held:  # the store's lock and the background compiles, let go however this ends
        return _interpolate_and_evaluate(config, pathlib.Path(workdir), files, held)


def _interpolate_and_evaluate(config, workdir: pathlib.Path, files: tuple[str, ...],
                              held: contextlib.ExitStack) -> dict | None:
    laps = Laps()
    interpolate_config.check(config)
    if config.timing.repeats and jax.process_count() > 1:
        raise ValueError(f"config field timing.repeats={config.timing.repeats} times one process; this run has "
                         f"{jax.process_count()}: set it to 0 (or time one process with all its local devices)")
    use_compilation_cache()

    # 1. The run and the shapes.
    run = load_run(config.checkpoint_dir, None if config.checkpoint_step < 0 else config.checkpoint_step)
    threshold = run.threshold if config.threshold is None else config.threshold
    if run.val_iou is not None and run.val_iou < POOR_VAL_IOU:
        logging.warning("the run %s reconstructs poorly (validation IoU %.3f < %.1f): its paths will be mostly "
                        "specks; train longer (e.g. --config.train.num_steps) before reading them",
                        run.checkpoint, run.val_iou, POOR_VAL_IOU)
    model = Autoencoder(run.config.model)
    implementation = resolve_implementation(model, run.params, config.implementation)
    dtype = jnp.dtype(config.dtype)
    settings = dict(pairs=config.pairs, steps=config.steps, threshold=threshold, implementation=implementation,
                    tolerance=config.monotonic_tolerance, memory_budget_mb=config.memory_budget_mb,
                    num_devices=config.num_devices)
    data = dict(run.config.data) | ({"path": config.data_path} if config.data_path else {})
    reference = load_dataset(dataset_config(**{**data, "rotations": "canonical"}))  # its training shapes: novelty
    # Where the config gives N, score_pairs compiles on a background thread while the shapes are read and
    # encoded (an error found meanwhile is raised at once, without waiting for the compile).
    background = concurrent.futures.ThreadPoolExecutor(1)
    held.callback(background.shutdown, wait=False, cancel_futures=True)
    count = shape_count(config.shapes, config.num_shapes, files)
    compiled = None
    if count and count >= 2:
        z_spec, inputs_spec, reference_spec = _operands(model, run.params, count, len(reference.train_ids), dtype)
        compiled = background.submit(compile_score_pairs, model, run.params, z_spec, inputs_spec,
                                     reference=reference_spec, block_pairs=config.block_pairs, **settings)
    rotated = load_dataset(dataset_config(**{**data, "rotations": "all"})) if config.shapes.rotations == "all" else None
    shapes = select_shapes(config.shapes, config.num_shapes, dataset_parts(reference, rotated), files)
    export_pairs = pairs_by_id(config.export.pairs, shapes.ids) or [
        (2 * k, 2 * k + 1) for k in range(min(config.export.count, len(shapes.ids) // 2))]
    # The shapes and the training shapes, packed on the device once: every score_pairs call reads them there.
    inputs, reference_bits = as_packed(shapes.voxels), as_packed(reference.train_voxels)
    fingerprint = {
        "params_sha256": content_hash(run.params), "model": json.loads(run.config.model.to_json()),
        "ids": list(shapes.ids), "voxels_sha256": content_hash(np.asarray(inputs)),
        "reference_sha256": content_hash({"ids": np.array(reference.train_ids), "voxels": np.asarray(reference_bits)}),
        "pairs": config.pairs, "steps": config.steps, "threshold": threshold, "implementation": implementation,
        "dtype": config.dtype, "monotonic_tolerance": config.monotonic_tolerance,
    }
    store = held.enter_context(BlockStore(workdir, fingerprint, config.block_pairs))
    distributed.check_same(store.key, "the run's fingerprint (parameters, shapes and settings)")
    laps.lap("read")

    # 2. Their latents.
    encode = jax.jit(functools.partial(model.apply, method=Autoencoder.encode))
    z = encode_shapes(encode, run.params, shapes.voxels, config.encode_batch).astype(dtype)
    broken = [shapes.ids[k] for k in np.flatnonzero(~np.isfinite(np.asarray(z)).reshape(len(z), -1).all(axis=1))]
    if broken:
        raise ValueError(f"{run.checkpoint} encodes {len(broken)} shape(s) to NaN or inf latents (e.g. {broken[:3]}): "
                         "its parameters are not usable")
    laps.lap("encode")

    # 3. Every pair's path, decoded and scored (the first write is plan.json, once the plan fits).
    settings |= dict(reference=reference_bits, block_pairs=store.block_pairs)
    # The reports' path decoder compiles in the background meanwhile, off the critical path (on the
    # process that writes the reports).
    if distributed.is_primary():
        grids_compiled = background.submit(path_grids, model, run.params, z, steps=config.steps,
                                           threshold=threshold, implementation=implementation)
    background_compile_seconds = compiled.result() if compiled is not None else 0.0  # its errors are raised here
    result = score_pairs(model, run.params, z, inputs, **settings, store=store, progress=config.progress)
    if result is None:
        return None  # another process (process 0) reads every block back and writes the reports
    laps.lap("score_pairs")  # compiling included
    scores = {**result.scores, "i": result.pairs[:, 0], "j": result.pairs[:, 1]}
    scores["plausible"] = ok = plausible(scores, config.plausible)
    timed = None
    if config.timing.repeats:
        def end_to_end():
            latents = encode_shapes(encode, run.params, shapes.voxels, config.encode_batch).astype(dtype)
            return score_pairs(model, run.params, latents, inputs, **settings).scores

        timed = time_calls(end_to_end, warmup=config.timing.warmup, repeats=config.timing.repeats)
        laps.lap("timing")

    # 4. Reports: the table, the most novel midpoints, the exported paths.
    outputs = {"config": writers.write_text(workdir / "config.json",
                                            config.to_json_best_effort(indent=2, sort_keys=True) + "\n"),
               "shapes": writers.write_json(workdir / "shapes.json", {"ids": shapes.ids, "splits": shapes.splits})}
    outputs |= reports.write_pairs(workdir, scores, shapes, reference.train_ids, config.write_csv)
    grids = grids_compiled.result()
    distinct = scores["i"] < scores["j"]  # each path once (the reverse of a path is the same path)
    top = reports.top_k(scores, ok & distinct, grids, k=config.top_k,
                        min_largest_part=config.plausible.min_largest_part, max_per_shape=config.top_k_per_shape)
    outputs |= reports.write_top_k(workdir, top, shapes, reference.train_ids, config.export.image_size)
    outputs |= reports.write_exports(workdir, config.export, shapes, export_pairs, grids)

    # 5. The summary, its tables and the gallery.
    summary = _summary(config, run, shapes, result, scores, distinct, threshold,
                       background_compile_seconds) | {
        "top_k": [{k: v for k, v in t.items() if k != "path"} for t in top],
        "exported_pairs": [[shapes.ids[i], shapes.ids[j]] for i, j in export_pairs],
    }
    if timed is not None:
        summary["end_to_end"] = {**timed.as_dict(), "decoded_shapes_per_second": summary["decoded_shapes"] / timed.median,
                                 "what": "encode + decode + threshold + pack + score, every pair"}
    laps.lap("reports")
    summary["seconds"] = laps.seconds  # where the wall time went: read, encode, score_pairs, timing, reports
    summary["wall_seconds"] = sum(laps.seconds.values())
    summary["outputs"] = {k: str(v) for k, v in (outputs | {"summary": workdir / "summary.json",
                                                           "by_split": workdir / "summary_by_split.md"}).items()}
    reports.write_summary(workdir, summary)
    summary["outputs"]["gallery"] = str(write_gallery(workdir))
    return summary


def _operands(model: Autoencoder, params, n: int, references: int, dtype) -> tuple:
    """The shapes of score_pairs' operands for N shapes and the reference's `references`: latents z,
    packed inputs, packed reference."""
    grids = jax.ShapeDtypeStruct((n, 32, 32, 32), bool)
    z = jax.eval_shape(functools.partial(model.apply, method=Autoencoder.encode), params, grids)
    packed = jax.eval_shape(as_packed, grids)
    return (jax.ShapeDtypeStruct(z.shape, dtype), packed,
            jax.ShapeDtypeStruct((references, *packed.shape[1:]), packed.dtype))


def _summary(config, run: Run, shapes: Shapes, result: PairScores, scores: dict, distinct: np.ndarray,
             threshold: float, background_compile_seconds: float) -> dict:
    decoded = len(result.pairs) * config.steps
    everything_now = result.blocks_computed == result.num_blocks
    return {
        "device": device_info(),
        "checkpoint": run.checkpoint,
        "num_shapes": len(shapes.ids),
        "shapes_by_split": {s: shapes.splits.count(s) for s in dict.fromkeys(shapes.splits)},
        "pair_mode": config.pairs,
        "num_pairs": len(result.pairs),
        "distinct_paths": int(distinct.sum()),
        "steps": config.steps,
        "decoded_shapes": decoded,  # Algorithm 1's output: every pair's every step
        "distinct_decodes_now": result.decodes,  # what was decoded for it now (each distinct shape once)
        "threshold": threshold,
        "threshold_from": "run" if config.threshold is None else "config",
        "dtype": config.dtype,
        "implementation": result.implementation,
        "num_devices": result.num_devices,
        "num_processes": jax.process_count(),
        "block_pairs": result.block_pairs,
        "block_memory_mib": result.memory_bytes / 2**20,
        "memory_budget_mib": config.memory_budget_mb,
        "num_blocks": result.num_blocks,
        "blocks_computed_now": result.blocks_computed,
        "stream_seconds_now": result.seconds,
        # score_pairs' tracing and compiling (0 when cached): where the config gives N, on a background thread
        # while the shapes were read and encoded (then score_pairs' own share is about 0)
        "compile_seconds_now": background_compile_seconds + result.compile_seconds,
        "compiled_while_reading": background_compile_seconds > 0,
        "decoded_shapes_per_second_now": decoded / result.seconds if everything_now else None,
        "plausible_paths": int((scores["plausible"] & distinct).sum()),
        **medians(scores, distinct),
        "by_split": by_split(scores, shapes.splits, distinct),
    }
