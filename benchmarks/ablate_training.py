"""The training ablation: each variant of a base config trained with several seeds, then scored.

    python -m benchmarks.ablate_training --config=configs/ablation.py --workdir=runs/ablation \\
        --config.data.path=/path/to/3dshapenets_chair_train_vox30.tar.gz    # or LERPNET_DATA=<its folder>

The variants, seeds and schedule are the config's (lerpnet/configs/ablation.py). Each run is a
separate process training with `lerpnet.train.train_and_evaluate` into runs/<variant>/seed<k>/,
several at a time on one accelerator; when it ends, the same process scores the run's evaluated
weights (the EMA where kept) on the validation split: IoU at each threshold and the threshold chosen
there, true / false positive rates, and the paths between validation chairs. Its row.json marks
the run finished: a rerun skips it, and an interrupted run resumes from its checkpoints.
ablation.{json,csv,md} (one row per variant: what it changes, mean and spread over the seeds) are
rewritten after every finished run; logs/ holds each run's output.
"""

from __future__ import annotations

import os
import pathlib
import statistics
import subprocess
import sys
import time

import jax
import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags
from tqdm import tqdm

from lerpnet import command_line, console, files, losses, metrics, models, steps, train
from lerpnet.configs.ablation import VARIANTS, changes
from lerpnet.data import load_dataset
from lerpnet.data.sources import LAYOUTS, resolve_path
from lerpnet.device import device_info
from lerpnet.tables import write_table
from lerpnet.workdir import Workdir

from benchmarks import trained_scores

# Columns averaged over the seeds of a row (mean and, for IoU, the sample standard deviation).
_PATHS = ("median_smoothness", "fraction_smooth", "fraction_monotone", "fraction_one_piece", "median_novelty_iou")
# Paths are scored at the threshold chosen on validation and at these too, so that rows stay comparable
# whatever their runs chose: 0.5 (what the winner's rule takes, results/ablate_training/thresholds/) and 0.7
# (what the best IoU on the grid of 0.2 to 0.7 took for every run before it).
_PATH_THRESHOLDS = (0.5, 0.7)
_MEANS = ("wall_s", "true_positive_rate", "false_positive_rate", "threshold", *_PATHS,
          *(f"{k}@{t}" for t in _PATH_THRESHOLDS for k in _PATHS),
          *(f"{rate}@{t}" for t in _PATH_THRESHOLDS for rate in ("true_positive_rate", "false_positive_rate")))


def check_config(config: ml_collections.ConfigDict) -> list[str]:
    """The variant names, after checking every ablation field; ValueError naming the field otherwise."""
    ab = config.ablation
    names = [v.strip() for v in str(ab.variants).split(",") if v.strip()]
    if not names:
        raise ValueError(f"ablation.variants is empty; known: {', '.join(VARIANTS)}")
    for name in names:
        changes(name)  # a ValueError naming the unknown parts
    for field, low in (("seeds", 1), ("parallel", 1), ("path_steps", 2)):
        if not isinstance(ab[field], int) or ab[field] < low:
            raise ValueError(f"ablation.{field} must be an integer >= {low}, got {ab[field]!r}")
    if ab.path_shapes != 0 and ab.path_shapes < 2:
        raise ValueError(f"ablation.path_shapes must be 0 (no path scores) or >= 2, got {ab.path_shapes}")
    if not 0.0 <= ab.memory_fraction < 1.0:
        raise ValueError(f"ablation.memory_fraction must be in [0, 1) (0 = XLA's default), got {ab.memory_fraction}")
    if config.data.source in LAYOUTS:  # every run's config.json names the same dataset file
        config.data.path = str(resolve_path(config.data.source, config.data.path).absolute())
    return names


def run_config(config: ml_collections.ConfigDict, variant: str, seed_index: int) -> ml_collections.ConfigDict:
    """The training config of one run: the base with the variant's fields, seed = base seed + index."""
    run = ml_collections.ConfigDict(config.to_dict())
    del run["ablation"]
    run.update_from_flattened_dict(changes(variant))
    run.seed = config.seed + seed_index
    return run


def run_dir(workdir: pathlib.Path, variant: str, seed_index: int) -> pathlib.Path:
    return workdir / "runs" / variant / f"seed{seed_index}"


def score_run(config: ml_collections.ConfigDict, path: pathlib.Path, *, path_shapes: int, path_steps: int) -> dict:
    """Scores of a finished run's evaluated weights on its validation split (see the module docstring)."""
    with Workdir(path) as wd:
        state = wd.restore(steps.create_state(config))
        records = [r for r in wd.read_metrics() if r["split"] == "val"]
    params = steps.evaluated_params(state)
    model = models.Autoencoder(config.model)
    dataset = load_dataset(config.data)
    val = dataset.val_voxels
    recon = trained_scores.reconstruction_scores(trained_scores.probabilities(model, params, val), val,
                                                 steps.THRESHOLDS, losses.overlap_weights(config.loss))
    best = max(records, key=lambda r: metrics.choose_threshold(r)[1])
    row = {"steps": int(state.step), "val_iou": recon["iou"], "val_iou@0.5": recon["iou@0.5"],
           "threshold": recon["threshold"], "true_positive_rate": recon["true_positive_rate"],
           "false_positive_rate": recon["false_positive_rate"], "best_step": int(best["step"]),
           "best_val_iou": metrics.choose_threshold(best)[1],
           **{k: v for k, v in recon.items()
              if k.startswith(("iou@", "overlap@", "true_positive_rate@", "false_positive_rate@"))}}
    if path_shapes:
        reference = trained_scores.canonical_training_shapes(dataset, config.data.rotations)
        chosen, *others = trained_scores.path_summary(model, params, val[:path_shapes], reference,
                                                      thresholds=(recon["threshold"], *_PATH_THRESHOLDS), steps=path_steps)
        row.update(chosen)
        for t, at in zip(_PATH_THRESHOLDS, others):
            row.update({f"{k}@{t}": at[k] for k in _PATHS})
    return row


def run_job(config: ml_collections.ConfigDict, workdir: pathlib.Path, variant: str, seed_index: int) -> dict:
    """Train (or resume) one run, score it and write its row.json; returns the row."""
    cfg = run_config(config, variant, seed_index)
    path = run_dir(workdir, variant, seed_index)
    timing = path / "wall.json"
    start = time.perf_counter()
    train.train_and_evaluate(cfg, str(path))
    wall = time.perf_counter() - start + (files.read_json(timing)["seconds"] if timing.exists() else 0.0)
    files.write_json(timing, {"seconds": wall})  # training time over every start of this run
    row = {"variant": variant, "seed": cfg.seed, "wall_s": wall,
           **score_run(cfg, path, path_shapes=config.ablation.path_shapes, path_steps=config.ablation.path_steps),
           "device": device_info()["device"]}
    files.write_json(path / "row.json", row)
    return row


def summarize(rows: list[dict], names: list[str], seeds: int) -> list[dict]:
    """One row per variant: what it changes, seeds done, IoU mean and spread, the other scores' means."""
    table = []
    for name in names:
        runs = [r for r in rows if r["variant"] == name]
        if not runs:
            continue
        iou = [r["val_iou"] for r in runs]
        out = {"variant": name,
               "changes": "; ".join(f"{k}={v}" for k, v in changes(name).items()) or "(the base)",
               "seeds": f"{len(runs)}/{seeds}",
               "val_iou": statistics.mean(iou), "val_iou_std": statistics.stdev(iou) if len(iou) > 1 else 0.0,
               "val_iou@0.5": statistics.mean(r["val_iou@0.5"] for r in runs),
               "best_val_iou": statistics.mean(r["best_val_iou"] for r in runs),
               "steps": max(r["steps"] for r in runs), "paths": max(r.get("paths", 0) for r in runs)}
        out.update({k: statistics.mean(r[k] for r in runs) for k in _MEANS if all(k in r for r in runs)})
        table.append(out)
    return table


def write_tables(workdir: pathlib.Path, config, names: list[str], jobs, started: float) -> pathlib.Path:
    rows = [files.read_json(p) for p in (run_dir(workdir, v, k) / "row.json" for v, k in jobs) if p.exists()]
    meta = {"command": " ".join(["python -m benchmarks.ablate_training", *sys.argv[1:]]),
            "base": "configs/modelnet_chairs.py:ablation_base" if config.data.source == "modelnet" else "smoke",
            "device": rows[0]["device"] if rows else "", "jax": jax.__version__, "dtype": config.model.dtype,
            "runs_done": f"{len(rows)}/{len(jobs)}",
            "wall_s_this_start": round(time.perf_counter() - started, 1),
            "train": f"{config.train.num_steps} steps x {config.train.batch_size} shapes unless a row changes them "
                     "(its steps column)",
            "val_iou": "mean validation IoU at the threshold chosen on validation (std over seeds)"}
    write_table(workdir / "ablation", summarize(rows, names, config.ablation.seeds), meta)
    files.write_json(workdir / "ablation_runs.json", rows)
    return workdir / "ablation.md"


def _launch(job, workdir: pathlib.Path, memory_fraction: float) -> subprocess.Popen:
    """This program again, running one job, its output streamed to logs/<variant>_seed<k>.log."""
    variant, k = job
    env = dict(os.environ)
    if memory_fraction:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = str(memory_fraction)
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    argv = [a for a in sys.argv[1:] if not a.startswith("--job")]
    with open(workdir / "logs" / f"{variant}_seed{k}.log", "w") as log:  # a stream, not a result
        return subprocess.Popen([sys.executable, "-m", "benchmarks.ablate_training", *argv, f"--job={variant}:{k}"],
                                stdout=log, stderr=subprocess.STDOUT, env=env)


def orchestrate(config: ml_collections.ConfigDict, workdir: pathlib.Path, names: list[str]) -> int:
    """Run every unfinished job, `parallel` at a time; the tables after each. Returns the failures."""
    started = time.perf_counter()
    ab = config.ablation
    jobs = [(v, k) for v in names for k in range(ab.seeds)]
    todo = [j for j in jobs if not (run_dir(workdir, *j) / "row.json").exists()]
    logging.info("%d of %d runs finished before; %d to run, %d at a time", len(jobs) - len(todo), len(jobs),
                 len(todo), ab.parallel)
    if todo:
        load_dataset(config.data)  # decode and cache the dataset once, before the runs read it
    running: dict[tuple[str, int], subprocess.Popen] = {}
    failed = []
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="ablation", unit="run", dynamic_ncols=True)
    shown = None
    try:
        while todo or running:
            late = ab.time_limit_s and time.perf_counter() - started > ab.time_limit_s
            while todo and len(running) < ab.parallel and not late:
                job = todo.pop(0)
                running[job] = _launch(job, workdir, ab.memory_fraction)
            if late and todo:
                logging.warning("time limit %.0f s reached: %d runs not started (rerun to do them)", ab.time_limit_s,
                                len(todo))
                todo = []
            for job, proc in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[job]
                bar.update(1)
                if proc.returncode:
                    failed.append(job)
                    logging.error("run %s seed %d failed (exit %d): see %s", *job, proc.returncode,
                                  workdir / "logs" / f"{job[0]}_seed{job[1]}.log")
                write_tables(workdir, config, names, jobs, started)
            if shown != list(running):
                shown = list(running)
                bar.set_postfix(running=" ".join(f"{v}:{k}" for v, k in running))
            time.sleep(0.5)
    except KeyboardInterrupt:
        for proc in running.values():
            proc.send_signal(2)  # SIGINT: each run keeps its last checkpoint
        for proc in running.values():
            proc.wait()
        raise
    finally:
        bar.close()
    path = write_tables(workdir, config, names, jobs, started)
    logging.info("wrote %s (%.0f s)", path, time.perf_counter() - started)
    return len(failed)


def define_flags() -> None:
    """The program's flags (defined when it runs, so that importing its functions defines none)."""
    config_flags.DEFINE_config_file("config", None, "The ablation config (configs/ablation.py[:smoke]).",
                                    lock_config=False)
    flags.DEFINE_string("workdir", None, "Folder for the tables, the runs and their logs.")
    flags.DEFINE_string("job", "", "Internal: run one training '<variant>:<seed index>' in this process.")
    flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    console.start(argv)
    args = flags.FLAGS
    config, workdir = args.config, pathlib.Path(args.workdir).absolute()
    with console.one_line_errors((train.NonFiniteLossError, ValueError, OSError),  # bad input or a diverged run
                                 "interrupted: the run keeps its latest checkpoint"):
        names = check_config(config)
        if args.job:
            variant, _, k = args.job.partition(":")
            run_job(config, workdir, variant, int(k))
            return
    jax.config.update("jax_platforms", "cpu")  # this process only schedules: the runs hold the accelerator
    with console.one_line_errors((), f"interrupted: rerun the same command to resume (finished runs are kept in "
                                     f"{workdir})"):
        failures = orchestrate(config, workdir, names)
    if failures:
        sys.exit(f"error: {failures} run(s) failed; their logs are in {workdir / 'logs'}")
    console.print_outputs({"table": workdir / "ablation.md", "runs": workdir / "runs", "logs": workdir / "logs"})


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=command_line.parse_flags)
