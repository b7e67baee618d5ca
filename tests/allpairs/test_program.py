"""`python -m experiments.interpolate` end to end on CPU, on a smoke model trained by lerpnet.train."""

import fcntl
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs.default import get_config as train_config
from configs.interpolate import get_config
from lerpnet import files
from lerpnet.data import dataset_config, load_dataset, load_voxels, procedural_chairs, save_binvox
from lerpnet.allpairs.program import interpolate_and_evaluate
from lerpnet.train import train_and_evaluate

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def trained_run(tmp_path_factory) -> pathlib.Path:
    """One smoke training run shared by all test workers (the first to get the lock trains it)."""
    base = tmp_path_factory.getbasetemp()
    base = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    run = base / "smoke_run"
    with open(base / "smoke_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (run / "trained").exists():
            config = train_config("smoke")
            config.train.update(num_steps=2, eval_every=2, checkpoint_every=2)
            train_and_evaluate(config, str(run))
            (run / "trained").touch()
    return run


def smoke_config(run: pathlib.Path, **overrides):
    config = get_config("smoke")
    config.checkpoint_dir = str(run)
    config.update(overrides)
    return config


def test_program_runs_on_four_devices_and_resumes_without_redoing_blocks(trained_run, tmp_path):
    workdir = tmp_path / "interp"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
               LERPNET_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "experiments.interpolate", "--config=configs/interpolate.py:smoke",
           f"--workdir={workdir}", f"--config.checkpoint_dir={trained_run}"]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    shapes = json.loads((workdir / "shapes.json").read_text())
    assert summary["num_devices"] == 4 and summary["num_shapes"] == 6
    assert summary["num_pairs"] == 15 and summary["decoded_shapes"] == 15 * 5
    assert summary["blocks_computed_now"] == summary["num_blocks"] == 2
    # Validation shapes first, then training shapes, each labelled.
    assert shapes["splits"] == ["val"] * 2 + ["train"] * 4
    pairs = np.load(workdir / "pairs.npz")
    assert pairs["smoothness"].shape == (15,) and pairs["iou_to_start"].shape == (15, 5)
    assert np.all((pairs["iou_start"] >= 0) & (pairs["iou_start"] <= 1))
    assert len((workdir / "pairs.csv").read_text().splitlines()) == 16
    # Unchosen pairs are exported by default: shapes 0 and 1.
    assert summary["exported_pairs"] == [shapes["ids"][:2]] and (workdir / "figure6.png").exists()
    # Each distinct shape decoded once: the 6 shapes, then the 3 interior steps of each pair.
    assert summary["distinct_decodes_now"] == 6 + 15 * 3
    stored = trained_run / "threshold.json"  # the run's own threshold, chosen on validation, else 0.5
    assert summary["threshold"] == (json.loads(stored.read_text())["threshold"] if stored.exists() else 0.5)
    assert summary["threshold_from"] == "run"
    # Where the wall time went, step by step (no timed repeats in the smoke config).
    assert list(summary["seconds"]) == ["read", "encode", "score_pairs", "reports"]
    assert all(v > 0 for v in summary["seconds"].values())
    assert summary["wall_seconds"] == pytest.approx(sum(summary["seconds"].values()))  # the steps add up to it
    # a first run compiles, here (N in the config) on a background thread while the shapes are read
    assert summary["compile_seconds_now"] > 0 and summary["compiled_while_reading"]
    # Compiled programs are kept for the next run; the program ends by saying where every output is.
    assert any((tmp_path / "cache" / "jax").iterdir())
    listing = run.stdout[run.stdout.index("outputs:"):]
    assert all(str(workdir / name) in listing for name in ("summary.json", "pairs.npz", "index.html", "exports"))

    # Interrupted: one block lost. The rerun (one device now) computes only that block, the same.
    kept = workdir / "blocks" / "block_000000.npz"
    kept_mtime = kept.stat().st_mtime_ns
    (workdir / "blocks" / "block_000001.npz").unlink()
    resumed = interpolate_and_evaluate(smoke_config(trained_run), workdir)
    assert resumed["blocks_computed_now"] == 1 and kept.stat().st_mtime_ns == kept_mtime
    again = np.load(workdir / "pairs.npz")
    for key in ("smoothness", "iou_to_start", "novelty_iou", "occupancy"):
        np.testing.assert_allclose(again[key], pairs[key], atol=1e-6, err_msg=key)
    # Blocks of other settings are never mixed in: a changed rerun on the same workdir is refused.
    with pytest.raises(ValueError, match="holds a run with other settings \\(steps: 5 there, 11 now\\)"):
        interpolate_and_evaluate(smoke_config(trained_run, steps=11), workdir)


def test_exports_and_top_k(trained_run, tmp_path):
    config = smoke_config(trained_run, top_k=3)
    config.plausible.update(min_smoothness=0.0, min_endpoint_iou=0.0, occupancy_range=(0.0, 1e9),
                            min_largest_part=0.0)  # the smoke model is poor: let every path compete
    dataset = load_dataset(dataset_config(**json.loads((trained_run / "config.json").read_text())["data"]))
    a, b = dataset.train_ids[1], dataset.val_ids[0]  # any two of the 6 chosen shapes, in any order
    config.export.pairs = f"{a}:{b}"
    summary = interpolate_and_evaluate(config, tmp_path / "out")
    assert summary["compiled_while_reading"]  # the config gives N: score_pairs compiled while the shapes were read
    out = tmp_path / "out"
    top = json.loads((out / "topk.json").read_text())
    assert len(top) == 3 and [t["novelty_iou"] for t in top] == sorted(t["novelty_iou"] for t in top)
    assert len(list((out / "topk").glob("*_mid.binvox"))) == 3 and (out / "topk.png").exists()
    assert summary["exported_pairs"] == [[a, b]]
    export = out / "exports" / f"{a}__{b}"
    assert len(list(export.glob("*.binvox"))) == 5
    assert (export / f"{a}__{b}_strip.png").exists() and (export / f"{a}__{b}.gif").exists()
    assert (out / "figure6.png").exists()
    # The export runs from a (a training shape) to b (a validation shape, listed first): the table
    # holds that path as (b, a), so the export's first step is the table's last.
    pairs = np.load(out / "pairs.npz")
    row = np.flatnonzero((pairs["i"] == list(pairs["ids"]).index(b)) & (pairs["j"] == list(pairs["ids"]).index(a)))
    first_step = load_voxels(export / f"{a}__{b}_step00.binvox")
    assert pairs["occupancy"][row[0], -1] == pytest.approx(first_step.mean())


def test_files_given_on_the_command_line_are_interpolated(trained_run, tmp_path):
    files = []
    for k, chair in enumerate(procedural_chairs(3, seed=7)):
        files.append(str(tmp_path / f"chair{k}.binvox"))
        save_binvox(files[-1], chair)
    summary = interpolate_and_evaluate(smoke_config(trained_run), tmp_path / "out", files=tuple(files))
    assert summary["shapes_by_split"] == {"file": 3} and summary["num_pairs"] == 3
    assert json.loads((tmp_path / "out" / "shapes.json").read_text())["ids"] == [f"chair{k}.binvox" for k in range(3)]


@pytest.mark.parametrize(
    "case, overrides, message",
    [
        ("unknown id", {"shapes.source": "ids", "shapes.ids": "procedural_0_00001,no_such_chair"},
         r"unknown shape ids \['no_such_chair'\]"),
        ("N too large", {"num_shapes": 1000}, "num_shapes=1000 but split 'val\\+train' of the dataset has only 24"),
        ("budget too small", {"block_pairs": 0, "memory_budget_mb": 0.01}, "too small for one block"),
        ("bad threshold", {"threshold": 1.5}, "threshold=1.5 must be strictly between 0 and 1"),
        ("unknown implementation", {"implementation": "pallas"}, "implementation='pallas' must be one of"),
        ("one step", {"steps": 1}, "steps=1 must be an integer >= 2"),
        ("negative block", {"block_pairs": -8}, "block_pairs=-8 must be an integer >= 0"),
        ("infinite budget", {"memory_budget_mb": float("inf")}, "memory_budget_mb=inf must be a finite number > 0"),
        ("no encode batch", {"encode_batch": 0}, "encode_batch=0 must be an integer >= 1"),
        ("negative devices", {"num_devices": -1}, "num_devices=-1 must be 0 \\(all\\) or 1\\.\\."),
        ("negative N", {"num_shapes": -1}, "num_shapes=-1 must be an integer >= 0"),
        ("unknown field", {"step": 5}, "unknown config field step "),
        ("unknown nested field", {"plausible.min_smothness": 0.5}, "unknown config field plausible.min_smothness"),
    ],
)
def test_bad_input_is_a_clear_error_before_any_work(trained_run, tmp_path, case, overrides, message):
    config = smoke_config(trained_run)
    for key, value in overrides.items():
        section, _, field = key.rpartition(".")
        (config[section] if section else config)[field] = value
    with pytest.raises(ValueError, match=message):
        interpolate_and_evaluate(config, tmp_path / "out")
    assert not (tmp_path / "out").exists(), f"{case}: work started before the error"


def test_a_checkpoint_that_does_not_match_its_config_is_refused(trained_run, tmp_path):
    run = tmp_path / "edited_run"
    run.mkdir()
    (run / "checkpoints").symlink_to(trained_run / "checkpoints")
    config = json.loads((trained_run / "config.json").read_text())
    config["model"]["decoder_features"] = [8, 4]  # not what was trained
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match the model in .*config.json"):
        interpolate_and_evaluate(smoke_config(run), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_program_reports_bad_input_in_one_line(trained_run, tmp_path):
    cmd = [sys.executable, "-m", "experiments.interpolate", "--config=configs/interpolate.py:smoke",
           f"--workdir={tmp_path / 'out'}", f"--config.checkpoint_dir={tmp_path / 'missing'}"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1].startswith("error: ") and "config.json not found" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_second_run_on_a_workdir_in_use_is_refused_in_one_line(trained_run, tmp_path):
    workdir = tmp_path / "interp"
    workdir.mkdir()
    holder = files.exclusive_lock(workdir / ".lock", "interpolation")  # as a first run holds it
    try:
        cmd = [sys.executable, "-m", "experiments.interpolate", "--config=configs/interpolate.py:smoke",
               f"--workdir={workdir}", f"--config.checkpoint_dir={trained_run}"]
        run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        os.close(holder)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1] == (f"error: {workdir} is in use by another interpolation (it holds "
                                                   f"{workdir / '.lock'}); wait for it to finish or pass another "
                                                   "--workdir")
    assert [p.name for p in workdir.iterdir()] == [".lock"]  # refused before any work
    summary = interpolate_and_evaluate(smoke_config(trained_run), workdir)  # let go: the workdir is free
    assert summary["blocks_computed_now"] == summary["num_blocks"] == 2


def copy_of(run: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def retrain_in_place(run: pathlib.Path, change=lambda a: a * 1.5) -> None:
    """Replace the run's checkpoint by one of other parameters (`change` of each array), at the same path
    and step."""
    folder = run / "checkpoints"
    manager = ocp.CheckpointManager(folder, item_handlers=ocp.PyTreeCheckpointHandler())
    step = manager.latest_step()
    state = manager.restore(step)
    manager.close()
    state["params"] = jax.tree.map(lambda a: change(np.asarray(a)), state["params"])
    shutil.rmtree(folder / str(step))
    with ocp.CheckpointManager(folder) as manager:
        manager.save(step, args=ocp.args.StandardSave(state))


def test_a_run_retrained_in_place_is_never_mixed_with_the_old_blocks(trained_run, tmp_path):
    run = copy_of(trained_run, tmp_path)
    (run / "threshold.json").write_text(json.dumps({"threshold": 0.45, "metric": "iou", "step": 2}))
    workdir = tmp_path / "interp"
    first = interpolate_and_evaluate(smoke_config(run), workdir)
    assert first["threshold"] == 0.45 and first["threshold_from"] == "run"
    retrain_in_place(run)
    with pytest.raises(ValueError, match="holds a run with other settings \\(params_sha256: "):
        interpolate_and_evaluate(smoke_config(run), workdir)
    (workdir / "plan.json").unlink()  # even so, no block of the old parameters is reused
    again = interpolate_and_evaluate(smoke_config(run), workdir)
    assert again["blocks_computed_now"] == again["num_blocks"] == 2
    fresh = interpolate_and_evaluate(smoke_config(run), tmp_path / "fresh")
    for key in ("median_smoothness", "median_novelty_iou", "median_iou_start"):
        assert again[key] == fresh[key], key


def test_parameters_that_give_nan_latents_are_refused_before_any_work(trained_run, tmp_path):
    run = copy_of(trained_run, tmp_path)
    retrain_in_place(run, lambda a: np.full_like(a, np.nan))
    with pytest.raises(ValueError, match="encodes 6 shape\\(s\\) to NaN or inf latents"):
        interpolate_and_evaluate(smoke_config(run), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_interrupt_is_one_line_and_the_rerun_resumes(trained_run, tmp_path):
    # 24 shapes: 35 blocks of 8 pairs, seconds of work after plan.json for the interrupt to land in even on a
    # loaded machine (with 12 shapes a run under load once finished before it)
    workdir = tmp_path / "interp"
    cmd = [sys.executable, "-m", "experiments.interpolate", "--config=configs/interpolate.py:smoke",
           f"--workdir={workdir}", f"--config.checkpoint_dir={trained_run}", "--config.num_shapes=24"]
    env = dict(os.environ, LERPNET_CACHE=str(tmp_path / "cache"))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (workdir / "plan.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=240)[1]
    assert proc.returncode != 0, "the run finished before it could be interrupted"
    assert stderr.strip().splitlines()[-1] == "interrupted: rerun to resume" and "Traceback" not in stderr
    finished = len(list((workdir / "blocks").glob("block_*.npz")))  # whole files only: written atomically
    summary = interpolate_and_evaluate(smoke_config(trained_run, num_shapes=24), workdir)
    assert summary["num_pairs"] == 276 and summary["num_blocks"] == 35
    assert summary["blocks_computed_now"] == 35 - finished
