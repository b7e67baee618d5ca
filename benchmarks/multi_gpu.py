"""Algorithm 1 and training over several GPUs: the timed parts and the tables of benchmarks/multi_gpu.sh.

    python -m benchmarks.multi_gpu --part=algorithm1 --run=RUN --num_shapes=10000 --reference=755 \\
        --workdir=STORE --out=OUT.json       # in each process of a run (lerpnet.distributed)
    python -m benchmarks.multi_gpu --part=tables --outdir=OUTDIR

`algorithm1`: N procedural chairs (and M more as the novelty reference, as ModelNet's 755 training
chairs are in the study) encoded by RUN's model (or the study's model freshly initialised when RUN
is empty) and every ordered pair decoded and scored by `lerpnet.allpairs.score_pairs`, `repeats`
times end to end (encode + decode + threshold + pack + score; the first call compiles). With
several processes the blocks go through a block store in STORE (one folder per repeat, removed
after it); one process keeps them in memory. Process 0 writes OUT: device, versions, processes,
sizes, each repeat's seconds and the median scores.
`tables`: OUTDIR/train/scaling.{json,md} (training throughput of each GPU count) and
OUTDIR/algorithm1/scaling.{json,md} (Algorithm 1's time and speed-up for each N and GPU count).
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import shutil
import statistics
import time

import jax
import numpy as np
from absl import app, flags

from benchmarks.train_results import summarize
from lerpnet import distributed, files, models
from lerpnet.allpairs import score_pairs
from lerpnet.allpairs.shapes import encode_shapes
from lerpnet.allpairs.store import BlockStore, content_hash
from lerpnet.data import dataset_config, load_dataset
from lerpnet.device import device_info
from lerpnet.workdir import load_run


def trained_or_initialised(run: str):
    """(model, params, what they are): a trained run's, or the study's model initialised (seed 0)."""
    if run:
        trained = load_run(run)
        return models.Autoencoder(trained.config.model), trained.params, os.path.relpath(trained.checkpoint)
    model = models.Autoencoder(models.model_config())
    params = jax.jit(model.init)(jax.random.key(0), np.zeros((1, 32, 32, 32), np.float32))
    return model, params, "the study's model, initialised (untrained)"


def algorithm1(*, run: str, num_shapes: int, reference: int, pairs: str, steps: int, repeats: int,
               implementation: str, num_devices: int, workdir: pathlib.Path, out: pathlib.Path) -> dict | None:
    """Time Algorithm 1 on `num_shapes` chairs (see the module docstring); the result on process 0, else None."""
    model, params, source = trained_or_initialised(run)
    chairs = load_dataset(dataset_config(source="procedural", num_shapes=num_shapes + reference, seed=1,
                                         val_fraction=0.0)).train_voxels
    if len(chairs) < num_shapes + reference:
        raise ValueError(f"only {len(chairs)} distinct procedural chairs for {num_shapes} + {reference}")
    shapes, references = chairs[:num_shapes], chairs[num_shapes : num_shapes + reference]
    encode = jax.jit(functools.partial(model.apply, method=models.Autoencoder.encode))
    shared = jax.process_count() > 1  # several processes share their blocks through a store
    fingerprint = {"params_sha256": content_hash(params), "num_shapes": num_shapes, "reference": reference,
                   "pairs": pairs, "steps": steps}
    seconds, result = [], None
    for k in range(repeats):
        folder = workdir / f"repeat_{k}"
        if shared and distributed.is_primary():
            shutil.rmtree(folder, ignore_errors=True)  # each timing starts from no blocks
        distributed.barrier(f"repeat {k}")
        start = time.perf_counter()
        z = encode_shapes(encode, params, shapes, 256)
        result = score_pairs(model, params, z, shapes, reference=references, pairs=pairs, steps=steps,
                             implementation=implementation, num_devices=num_devices,
                             store=BlockStore(folder, fingerprint) if shared else None)
        seconds.append(time.perf_counter() - start)
        if shared and distributed.is_primary():
            shutil.rmtree(folder)
    if result is None:
        return None
    decoded = len(result.pairs) * steps
    warm = seconds[1:] or seconds
    summary = {
        "device": device_info(), "num_processes": jax.process_count(), "num_devices": result.num_devices,
        "params": source, "num_shapes": num_shapes, "reference_shapes": reference, "pairs": pairs, "steps": steps,
        "num_pairs": len(result.pairs), "decoded_shapes": decoded, "implementation": result.implementation,
        "block_pairs": result.block_pairs, "block_memory_mib": result.memory_bytes / 2**20,
        "num_blocks": result.num_blocks, "block_store": shared, "seconds": seconds,
        "warm_seconds_median": statistics.median(warm), "decoded_shapes_per_second": decoded / statistics.median(warm),
        "what": "encode + decode + threshold + pack + score, every pair; the first repeat compiles",
        "median_smoothness": float(np.nanmedian(result.scores["smoothness"])),
        "median_novelty_iou": float(np.nanmedian(result.scores["novelty_iou"])),
    }
    files.write_json(out, summary)
    return summary


def training_table(folder: pathlib.Path) -> list[dict]:
    """One row per training run in folder/<name>/ (run.json + metrics.jsonl + config.json, as multi_gpu.sh
    leaves them): GPUs, processes, global batch and the median training rate (compilation left out)."""
    rows = []
    for launch in sorted(folder.glob("*/launch.json")):
        meta = files.read_json(launch)
        run = pathlib.Path(meta["run"])
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        config = files.read_json(run / "config.json")
        rate = summarize(records, config, command="", exit_code=0, wall_s=0.0, device={})["train_shapes_per_s_median"]
        rows.append({**meta, "global_batch": config["train"]["batch_size"],
                     "per_gpu_batch": config["train"]["batch_size"] // meta["gpus"], "shapes_per_s": rate})
    return _with_speedups(rows, "shapes_per_s", higher_is_faster=True)


def algorithm1_table(folder: pathlib.Path) -> list[dict]:
    rows = [files.read_json(path) for path in sorted(folder.glob("*.json")) if path.name != "scaling.json"]
    rows = [{"num_shapes": r["num_shapes"], "gpus": r["num_devices"], "processes": r["num_processes"],
             "reference_shapes": r["reference_shapes"], "decoded_shapes": r["decoded_shapes"],
             "seconds": r["warm_seconds_median"], "decoded_shapes_per_second": r["decoded_shapes_per_second"],
             "device": r["device"]["device"], "jax": r["device"]["jax"]} for r in rows]
    return _with_speedups(rows, "seconds", higher_is_faster=False, group="num_shapes")


def _with_speedups(rows: list[dict], key: str, *, higher_is_faster: bool, group: str | None = None) -> list[dict]:
    """Each row's speed-up over the one-GPU row (of its `group`), and that over its GPU count."""
    for row in rows:
        ones = [r for r in rows if r["gpus"] == 1 and (group is None or r[group] == row[group]) and r[key]]
        base = ones[0][key] if ones else None
        speedup = None if not (base and row[key]) else (row[key] / base if higher_is_faster else base / row[key])
        row["speedup_vs_1_gpu"] = speedup
        row["efficiency"] = None if speedup is None else speedup / row["gpus"]
    return sorted(rows, key=lambda r: (r.get(group, 0) if group else 0, r["gpus"], r["processes"]))


def markdown(rows: list[dict], columns: tuple[str, ...]) -> str:
    def cell(value):
        return "" if value is None else f"{value:,.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]) + "\n"


def tables(outdir: pathlib.Path) -> None:
    device = device_info()
    parts = {"train": (training_table, ("gpus", "processes", "global_batch", "per_gpu_batch", "shapes_per_s",
                                        "speedup_vs_1_gpu", "efficiency")),
             "algorithm1": (algorithm1_table, ("num_shapes", "gpus", "processes", "reference_shapes",
                                               "decoded_shapes", "seconds", "decoded_shapes_per_second",
                                               "speedup_vs_1_gpu", "efficiency"))}
    for name, (table, columns) in parts.items():
        if (outdir / name).is_dir():
            rows = table(outdir / name)
            files.write_json(outdir / name / "scaling.json", {"host": device, "rows": rows})
            files.write_text(outdir / name / "scaling.md", f"On {device['device_count']} x {device['device']}, "
                             f"jax {device['jax']}, {device['date'][:10]}:\n\n" + markdown(rows, columns))


def define_flags() -> None:
    """The command line's flags, defined only when this is the program run."""
    flags.DEFINE_enum("part", None, ["algorithm1", "tables"], "What to do (see the module docstring).")
    flags.DEFINE_string("run", "", "algorithm1: a trained run's workdir ('' = the study's model initialised).")
    flags.DEFINE_integer("num_shapes", 10000, "algorithm1: N, the chairs every ordered pair of which is scored.")
    flags.DEFINE_integer("reference", 755, "algorithm1: M, the chairs novelty is scored against.")
    flags.DEFINE_enum("pairs", "all", ["all", "unique"], "algorithm1: every ordered pair, or i < j.")
    flags.DEFINE_integer("steps", 11, "algorithm1: interpolation steps, t = 0 .. 1.")
    flags.DEFINE_integer("repeats", 2, "algorithm1: timed calls (the first compiles).")
    flags.DEFINE_string("implementation", "auto", "algorithm1: lerp_decode's implementation.")
    flags.DEFINE_integer("num_devices", 0, "algorithm1: local devices of each process (0 = all).")
    flags.DEFINE_string("workdir", "", "algorithm1: the block stores' folder, seen by every process.")
    flags.DEFINE_string("out", "", "algorithm1: the JSON to write.")
    flags.DEFINE_string("outdir", "", "tables: multi_gpu.sh's OUTDIR.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    FLAGS = flags.FLAGS
    if FLAGS.part == "tables":
        if not FLAGS.outdir:
            raise app.UsageError("--part=tables needs --outdir")
        tables(pathlib.Path(FLAGS.outdir))
        return
    if not FLAGS.out or not FLAGS.workdir:
        raise app.UsageError("--part=algorithm1 needs --out and --workdir")
    distributed.initialize_from_env()
    summary = algorithm1(run=FLAGS.run, num_shapes=FLAGS.num_shapes, reference=FLAGS.reference, pairs=FLAGS.pairs,
                         steps=FLAGS.steps, repeats=FLAGS.repeats, implementation=FLAGS.implementation,
                         num_devices=FLAGS.num_devices, workdir=pathlib.Path(FLAGS.workdir),
                         out=pathlib.Path(FLAGS.out))
    if summary is not None:
        print(f"N = {summary['num_shapes']} on {summary['num_devices']} device(s), {summary['num_processes']} "
              f"process(es): {summary['seconds']} s, {summary['decoded_shapes_per_second']:,.0f} decoded shapes/s")


if __name__ == "__main__":
    define_flags()
    app.run(main)
