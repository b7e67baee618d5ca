"""The training ablation program: its config checks, its rows, and a smoke run that resumes."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import pytest

from benchmarks import ablate_training
from lerpnet.configs import ablation

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_default_row_is_a_known_variant_and_the_base_is_today_s_recipe():
    config = ablation.get_config()
    assert set(config.ablation.variants.split(",")) <= set(ablation.VARIANTS)
    assert ablation.VARIANTS["base"] == {}
    assert config.model.encoder_blocks == 0 and config.train.ema_decay == 0 and config.loss.overlap_weight == 0
    for name, fields in ablation.VARIANTS.items():  # every field a variant sets exists in the config
        run = ablate_training.run_config(config, name, 0)
        for field, value in fields.items():
            section, key = field.split(".")
            assert run[section][key] == value, (name, field)


def test_run_config_sets_the_variant_and_the_seed():
    config = ablation.get_config("smoke")
    run = ablate_training.run_config(config, "tversky", 2)
    assert run.seed == config.seed + 2 and run.loss.overlap_weight == 1.0 and run.loss.tversky_beta == 0.7
    assert "ablation" not in run and config.loss.overlap_weight == 0  # the base config is left as it was


def test_rows_joined_with_plus_stack_their_changes_in_order():
    config = ablation.get_config("smoke")
    run = ablate_training.run_config(config, "combined+translate+dropout", 0)
    assert run.train.ema_decay == 0.999 and run.loss.tversky_beta == 0.7  # the winner's fields
    assert run.augment.max_shift == 2 and run.model.encoder_dropout == 0.1  # and what it adds
    assert ablation.changes("residual+residual2") == {"model.encoder_blocks": 2}  # later parts win
    assert ablation.changes("residual2+residual") == {"model.encoder_blocks": 1}
    table = ablate_training.summarize([{"variant": "ema+acai", "val_iou": 0.7, "val_iou@0.5": 0.7, "best_val_iou": 0.7,
                                        "steps": 10, "wall_s": 1.0}], ["ema+acai"], seeds=1)
    assert table[0]["changes"] == "train.ema_decay=0.999; acai.weight=0.5"


@pytest.mark.parametrize("row,field,value", [
    ("no_ema", "train.ema_decay", 0.0), ("no_residual", "model.encoder_blocks", 0),
    ("no_overlap", "loss.overlap_weight", 0.0), ("no_translate", "augment.max_shift", 0),
    ("dice", "loss.tversky_beta", 0.5),  # Dice instead of the winner's Tversky weights, not the winner again
])
def test_a_row_stacked_on_the_winner_changes_one_of_its_fields(row, field, value):
    winner, stacked = ablation.changes("winner"), ablation.changes(f"winner+{row}")
    assert winner[field] != value and stacked[field] == value
    differs = {k for k in stacked if winner.get(k) != stacked[k]}
    assert field in differs and differs <= {field, "loss.tversky_alpha"}


@pytest.mark.parametrize("field,value,message", [
    ("variants", "base,nope", "ablation.variants"),
    ("variants", "combined+nope", "unknown variants \\['nope'\\]"),
    ("seeds", 0, "ablation.seeds"),
    ("path_shapes", 1, "ablation.path_shapes"),
    ("memory_fraction", 1.5, "ablation.memory_fraction"),
])
def test_bad_ablation_fields_are_named(field, value, message):
    config = ablation.get_config("smoke")
    config.ablation[field] = value
    with pytest.raises(ValueError, match=message):
        ablate_training.check_config(config)


def test_the_data_path_comes_from_the_config_or_lerpnet_data(monkeypatch, tmp_path):
    config = ablation.get_config()
    config.data.path = ""
    monkeypatch.delenv("LERPNET_DATA", raising=False)
    with pytest.raises(ValueError, match="data.path"):
        ablate_training.check_config(config)
    (tmp_path / "3dshapenets_chair_train_vox30.tar.gz").write_bytes(b"")
    monkeypatch.setenv("LERPNET_DATA", str(tmp_path))
    ablate_training.check_config(config)  # resolved once, so every run's config.json names the file
    assert config.data.path == str(tmp_path / "3dshapenets_chair_train_vox30.tar.gz")


def test_summarize_gives_mean_and_spread_over_seeds():
    rows = [{"variant": "ema", "val_iou": v, "val_iou@0.5": v, "best_val_iou": v + 0.01, "steps": 100,
             "wall_s": 10.0, "fraction_monotone": m} for v, m in ((0.70, 0.8), (0.72, 0.9), (0.74, 1.0))]
    rows.append({"variant": "base", "val_iou": 0.6, "val_iou@0.5": 0.6, "best_val_iou": 0.6, "steps": 100,
                 "wall_s": 9.0})
    table = ablate_training.summarize(rows, ["base", "ema", "acai"], seeds=3)
    assert [r["variant"] for r in table] == ["base", "ema"]  # rows without runs are left out
    base, ema = table
    assert base["changes"] == "(the base)" and base["seeds"] == "1/3" and base["val_iou_std"] == 0.0
    assert ema["changes"] == "train.ema_decay=0.999" and ema["seeds"] == "3/3"
    assert ema["val_iou"] == pytest.approx(0.72) and ema["val_iou_std"] == pytest.approx(0.02)
    assert ema["fraction_monotone"] == pytest.approx(0.9) and "fraction_monotone" not in base


def test_the_tables_name_the_jax_version_and_the_config_s_compute_dtype(tmp_path):
    config = ablation.get_config("smoke")
    config.model.dtype = "bfloat16"
    ablate_training.write_tables(tmp_path, config, ["base"], [], started=0.0)
    meta = json.loads((tmp_path / "ablation.json").read_text())["meta"]
    assert meta["dtype"] == "bfloat16" and meta["jax"] == jax.__version__ and meta["runs_done"] == "0/0"


def test_smoke_ablation_writes_its_tables_and_skips_finished_runs(tmp_path):
    work = tmp_path / "ablation"
    cmd = [sys.executable, "-m", "benchmarks.ablate_training", "--config=configs/ablation.py:smoke",
           f"--workdir={work}", "--config.ablation.variants=base", "--config.ablation.parallel=1"]
    # One run after the other through one compilation cache: the second seed compiles nothing.
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="true",
               JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table = json.loads((work / "ablation.json").read_text())
    assert [r["variant"] for r in table["rows"]] == ["base"]
    row = table["rows"][0]
    assert row["seeds"] == "2/2" and row["steps"] == 4 and 0.0 <= row["val_iou"] <= 1.0
    assert row["paths"] >= 1 and 0.0 <= row["fraction_one_piece"] <= 1.0
    assert 0.0 <= row["fraction_one_piece@0.5"] <= 1.0 and 0.0 <= row["median_smoothness@0.5"] <= 1.0
    assert row["threshold"] in ablate_training.steps.THRESHOLDS
    assert "| base | (the base) | 2/2 |" in (work / "ablation.md").read_text()
    assert (work / "ablation.csv").read_text().startswith("variant,changes,seeds,val_iou")
    rows = sorted(work.glob("runs/base/seed*/row.json"))
    assert len(rows) == 2 and {json.loads(p.read_text())["seed"] for p in rows} == {0, 1}

    stamps = [p.stat().st_mtime_ns for p in rows]
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 of 2 runs finished before; 0 to run" in again.stderr
    assert [p.stat().st_mtime_ns for p in rows] == stamps


def test_a_bad_field_is_one_line_before_any_work(tmp_path):
    cmd = [sys.executable, "-m", "benchmarks.ablate_training", "--config=configs/ablation.py:smoke",
           f"--workdir={tmp_path / 'w'}", "--config.ablation.variants=bogus"]
    out = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].startswith("error: ablation.variants")
    assert "Traceback" not in out.stderr and not (tmp_path / "w").exists()
