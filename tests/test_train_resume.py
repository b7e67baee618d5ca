"""Training survives SIGKILL at any moment, corrupt checkpoints and device-count changes, and refuses
resumes that would mix two runs: the kill tests run the training program in subprocesses that kill
themselves at a chosen point, and compare with one uninterrupted run."""

import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from lerpnet import train
from lerpnet.configs import default as default_config
from lerpnet.workdir import Workdir, WorkdirError
from test_workdir import tags, tensorboard_events

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The smoke config with checkpoints and evaluations at the same steps (2, 4, 6), so that a kill can
# land between them.
FLAGS = ["--config=configs/default.py:smoke", "--config.train.eval_every=2"]
TIMING = ("steps_per_s", "shapes_per_s")

# Runs the training program, killing itself (SIGKILL) at LERPNET_TEST_KILL = "<point>:<step>".
KILLER = """
import os, signal, sys
point, at = os.environ["LERPNET_TEST_KILL"].split(":")
at = int(at)
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
from lerpnet.workdir import Workdir
if point == "save":  # before checkpoint `at` is written
    save = Workdir.save
    Workdir.save = lambda self, step, state: die() if step == at else save(self, step, state)
elif point == "rename":  # checkpoint `at` written to its temporary folder, not yet renamed into place
    from orbax.checkpoint._src.path import async_path
    rename = async_path.rename
    async def killing_rename(src, dst):
        if str(dst).rstrip("/").endswith(f"/checkpoints/{at}"):
            die()
        return await rename(src, dst)
    async_path.rename = killing_rename
elif point == "evaluate":  # checkpoint `at` saved, its evaluation not yet logged
    pictures = Workdir.save_reconstructions
    Workdir.save_reconstructions = lambda self, step, image: die() if step == at else pictures(self, step, image)
from lerpnet.programs.train import run
sys.argv = ["lerpnet-train", *sys.argv[1:]]
run()
"""


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory) -> pathlib.Path:
    """One persistent compilation cache for this module's subprocesses: each compiles the same programs."""
    return tmp_path_factory.mktemp("jax_cache")


def smoke_config():
    """The config FLAGS give."""
    config = default_config.get_config("smoke")
    config.train.eval_every = 2
    return config


def train_cli(workdir, compile_cache, *extra, kill: str = "", devices: int = 1) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="true", PYTHONUNBUFFERED="1",
               JAX_COMPILATION_CACHE_DIR=str(compile_cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", LERPNET_TEST_KILL=kill)
    program = ["-c", KILLER] if kill else ["-m", "experiments.train"]
    return subprocess.run([sys.executable, *program, *FLAGS, f"--workdir={workdir}", *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def records(workdir) -> list[dict]:
    """metrics.jsonl without the timing fields (the only ones that differ between equal runs)."""
    lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def params(workdir, step: int) -> list[np.ndarray]:
    """Every array of a checkpoint's train state (parameters, optimizer state, step), on one device."""
    path = pathlib.Path(workdir) / "checkpoints" / str(step) / "default"
    checkpointer = ocp.StandardCheckpointer()
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
                          checkpointer.metadata(path).item_metadata.tree)
    return [np.asarray(leaf) for leaf in jax.tree.leaves(checkpointer.restore(path, target))]


def checkpoint_steps(workdir) -> list[int]:
    return sorted(int(p.name) for p in (pathlib.Path(workdir) / "checkpoints").glob("*") if p.name.isdigit())


def assert_same_params(a: list[np.ndarray], b: list[np.ndarray], exact: bool = True) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if exact:
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, compile_cache) -> pathlib.Path:
    """One uninterrupted smoke run."""
    workdir = tmp_path_factory.mktemp("reference")
    done = train_cli(workdir, compile_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


def test_sigkill_anywhere_then_resume_gives_the_uninterrupted_run(tmp_path, reference, compile_cache, caplog):
    expected = records(reference)
    assert [(r["step"], r["split"]) for r in expected] == [
        (0, "val"), (0, "train"), (2, "val"), (2, "train"), (4, "val"), (4, "train"), (5, "train"), (6, "val")]

    # Killed before the first checkpoint: what it logged stays, once.
    killed = train_cli(tmp_path, compile_cache, kill="save:2")
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert checkpoint_steps(tmp_path) == []
    assert records(tmp_path) == expected[:2]

    # Killed during checkpoint 4 (written, not yet renamed into place): checkpoint 2 is the latest.
    killed = train_cli(tmp_path, compile_cache, kill="rename:4")
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert checkpoint_steps(tmp_path) == [2], "the run made no checkpoints before the kill"
    assert [p for p in (tmp_path / "checkpoints").iterdir() if not p.name.isdigit()], "no half-written checkpoint"
    assert records(tmp_path) == expected[:4]
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "split": "tra')  # a torn last line, as a kill mid-write would leave

    # Killed between checkpoint 4 and its evaluation: the rerun evaluates step 4 first.
    killed = train_cli(tmp_path, compile_cache, kill="evaluate:4")
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert checkpoint_steps(tmp_path) == [2, 4]
    assert records(tmp_path) == expected[:4]
    assert not (tmp_path / "reconstructions" / "step_0000004.png").exists()

    done = train_cli(tmp_path, compile_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from the checkpoint at step 4" in done.stderr
    assert records(tmp_path) == expected  # no record twice, none lost
    assert checkpoint_steps(tmp_path)[-1] == 6
    assert_same_params(params(tmp_path, 6), params(reference, 6))
    assert sorted(p.name for p in (tmp_path / "reconstructions").iterdir()) == sorted(
        p.name for p in (reference / "reconstructions").iterdir())
    assert json.loads((tmp_path / "threshold.json").read_text()) == json.loads(
        (reference / "threshold.json").read_text())
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if not p.name.isdigit()], \
        "a half-written checkpoint was left behind"
    starts = sorted(p.name for p in (tmp_path / "configs").iterdir())
    assert starts == [f"start_{k}.json" for k in range(4)]

    # A finished run rerun: a no-op that says so.
    before = (tmp_path / "metrics.jsonl").read_bytes()
    with caplog.at_level(logging.INFO):
        final = train.train_and_evaluate(smoke_config(), str(tmp_path))
    assert "is finished" in caplog.text
    assert final == {k: v for k, v in expected[-1].items() if k not in ("step", "split")}
    assert (tmp_path / "metrics.jsonl").read_bytes() == before
    assert len(list((tmp_path / "configs").iterdir())) == 4


def test_each_evaluation_shows_reconstructions_and_interpolations_in_tensorboard(reference):
    events = tensorboard_events(reference / "tensorboard")
    images = tags(events, "image")
    assert [step for tag, step in images if tag == "val/reconstructions"] == [0, 2, 4, 6]
    assert [step for tag, step in images if tag == "val/interpolations"] == [0, 2, 4, 6]
    strip = next(v.image for e in events for v in e.summary.value if v.tag == "val/interpolations")
    assert strip.width > 2 * strip.height  # the one validation pair: a row of 5 shapes
    assert any(v.metadata.plugin_data.plugin_name == "hparams" for e in events for v in e.summary.value)


def test_corrupt_latest_checkpoint_falls_back_to_the_one_before(tmp_path, reference, compile_cache):
    shutil.copytree(reference, tmp_path, dirs_exist_ok=True)
    for chunk in (tmp_path / "checkpoints" / "6").rglob("d/*"):
        chunk.write_bytes(chunk.read_bytes()[:10])
    done = train_cli(tmp_path, compile_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "checkpoint 6 cannot be restored" in done.stderr
    assert "resumed from the checkpoint at step 4" in done.stderr
    assert (tmp_path / "corrupt" / "6").is_dir()
    assert records(tmp_path) == records(reference)
    assert_same_params(params(tmp_path, 6), params(reference, 6))


def test_checkpoints_restore_on_another_device_count(tmp_path, reference, compile_cache):
    four = tmp_path / "four"
    killed = train_cli(four, compile_cache, kill="save:6", devices=4)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert checkpoint_steps(four) == [2, 4]
    for devices in (1, 2):
        workdir = tmp_path / f"on_{devices}"
        shutil.copytree(four, workdir)
        done = train_cli(workdir, compile_cache, devices=devices)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "resumed from the checkpoint at step 4" in done.stderr
        assert f"{devices} device(s)" in done.stderr
        assert [(r["step"], r["split"]) for r in records(workdir)] == [
            (r["step"], r["split"]) for r in records(reference)]
        # The same run up to the order of float reductions across devices.
        assert_same_params(params(workdir, 6), params(reference, 6), exact=False)


def test_resume_with_changes_only_when_told_and_each_start_kept(tmp_path, reference, compile_cache):
    shutil.copytree(reference, tmp_path, dirs_exist_ok=True)
    stored = (tmp_path / "config.json").read_bytes()
    listing = sorted((str(p), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.name != ".lock")
    for change, named in [(dict(seed=1), "seed 0 -> 1"), (dict(num_steps=8), "train.num_steps 6 -> 8"),
                          (dict(batch_size=8), "train.batch_size"), (dict(learning_rate=1e-2), "learning_rate"),
                          (dict(warmup_steps=3), "warmup_steps"), (dict(encoder=(8, 8)), "model.encoder_features")]:
        config = smoke_config()
        for key, value in change.items():
            if key == "seed":
                config.seed = value
            elif key == "encoder":
                config.model.encoder_features = value
            else:
                config.train[key] = value
        with pytest.raises(WorkdirError, match=f"{named}.*--resume_with_changes"):
            train.train_and_evaluate(config, str(tmp_path))
    assert (tmp_path / "config.json").read_bytes() == stored
    assert sorted((str(p), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.name != ".lock") == listing

    # What only changes logging or pictures is no change: the finished run stays finished.
    config = smoke_config()
    config.train.update(log_every=1, progress=True)
    final = train.train_and_evaluate(config, str(tmp_path))
    assert final == {k: v for k, v in records(reference)[-1].items() if k not in ("step", "split")}

    # A run made before lerpnet had a field (config.json without it) trains as the field's default does:
    # no change at the default, a change named otherwise.
    older = json.loads(stored)
    del older["morph"]
    (tmp_path / "config.json").write_text(json.dumps(older))
    assert train.train_and_evaluate(smoke_config(), str(tmp_path)) == final
    config = smoke_config()
    config.morph.weight = 0.5
    with pytest.raises(WorkdirError, match="morph.weight 'absent' -> 0.5.*--resume_with_changes"):
        train.train_and_evaluate(config, str(tmp_path))

    done = train_cli(tmp_path, compile_cache, "--config.train.num_steps=8", "--resume_with_changes")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "learning-rate schedule is the new config's from step 6 on" in done.stderr
    assert json.loads((tmp_path / "config.json").read_text())["train"]["num_steps"] == 8
    starts = [json.loads((tmp_path / "configs" / f"start_{k}.json").read_text())["train"]["num_steps"]
              for k in range(2)]
    assert starts == [6, 8]
    assert [r["step"] for r in records(tmp_path) if r["split"] == "val"] == [0, 2, 4, 6, 8]


def test_a_second_trainer_on_a_workdir_is_refused(tmp_path):
    config = default_config.get_config("smoke")
    with Workdir(tmp_path):
        with pytest.raises(WorkdirError, match="in use by another trainer"):
            train.train_and_evaluate(config, str(tmp_path))
    assert not (tmp_path / "config.json").exists()
    assert not (tmp_path / "metrics.jsonl").exists()
    with Workdir(tmp_path) as wd:  # released when the first one closed
        assert wd.latest_step() is None
