"""Training end to end on tiny configs: workdir contents, exact resume, NaN, several devices
(kills, corrupt checkpoints and changed configs: tests/test_train_resume.py)."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lerpnet.configs import default as default_config
from lerpnet import losses, steps, train
from lerpnet.workdir import Workdir

ROOT = pathlib.Path(__file__).resolve().parents[1]


def smoke_config(**train_overrides):
    config = default_config.get_config("smoke")
    config.train.update(train_overrides)
    return config


def read_metrics(workdir) -> list[dict]:
    return [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]


def subprocess_env(**extra) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="true", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def test_smoke_run_writes_the_workdir_and_resumes_exactly(tmp_path, monkeypatch):
    full, split = tmp_path / "full", tmp_path / "split"
    final = train.train_and_evaluate(smoke_config(), str(full))

    assert set(final) == {f"iou@{t}" for t in steps.THRESHOLDS} | {"pred_occupancy", "target_occupancy", "loss"}
    assert {0.2, 0.3, 0.4, 0.5, 0.6, 0.7} <= set(steps.THRESHOLDS)
    assert json.loads((full / "config.json").read_text())["train"]["num_steps"] == 6
    records = read_metrics(full)
    assert [r["step"] for r in records if r["split"] == "val"] == [0, 3, 6]
    assert [r["step"] for r in records if r["split"] == "train"] == [0, 2, 4, 5]
    assert all(np.isfinite(r["loss"]) for r in records)
    assert list((full / "tensorboard").glob("events.out.tfevents.*"))
    assert (full / "curves.png").stat().st_size > 0
    pngs = sorted(p.name for p in (full / "reconstructions").glob("*.png"))
    assert pngs == ["step_0000000.png", "step_0000003.png", "step_0000006.png"]
    with Workdir(full) as wd:
        assert wd.latest_step() == 6

    # Stop after 3 steps (checkpoint at 2, val at 3), rerun to 6: the same numbers as one run, no
    # record twice: the rerun restores params, optimizer, batch order and augmentation.
    def interrupt_after_val_3(self, step, split, values, log=Workdir.log):
        log(self, step, split, values)
        if split == "val" and step == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(Workdir, "log", interrupt_after_val_3)
    with pytest.raises(KeyboardInterrupt):
        train.train_and_evaluate(smoke_config(), str(split))
    monkeypatch.undo()
    again = train.train_and_evaluate(smoke_config(), str(split))
    assert again == pytest.approx(final, rel=1e-6)
    resumed = read_metrics(split)
    assert [(r["step"], r["split"]) for r in resumed] == [(r["step"], r["split"]) for r in records]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    train.train_and_evaluate(smoke_config(num_steps=4), str(tmp_path))
    with pytest.raises(train.NonFiniteLossError, match=r"last good checkpoint \(step 4\)"):
        train.train_and_evaluate(smoke_config(num_steps=12, learning_rate=1e30, schedule="constant"), str(tmp_path),
                                 resume_with_changes=True)
    with Workdir(tmp_path) as wd:
        assert wd.latest_step() == 4
        state = wd.restore(steps.create_state(smoke_config()))
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(state.params))


def test_data_parallel_on_four_devices_matches_one_device(tmp_path):
    script = textwrap.dedent(f"""
        import jax, numpy as np
        from jax.sharding import NamedSharding, PartitionSpec as P
        from configs import default
        from lerpnet import steps, train
        from lerpnet.data import procedural_chairs
        assert jax.local_device_count() == 4, jax.devices()
        config = default.get_config("smoke")
        config.train.batch_size = 8
        final = train.train_and_evaluate(config, {str(tmp_path)!r})
        assert np.isfinite(final["loss"]), final

        # One step on 4 devices (batch split, state replicated) equals the same step on one device.
        state = steps.create_state(config)
        packed = np.asarray(train._pack(procedural_chairs(16, 0)))
        idx = np.arange(8, dtype=np.int32)
        step = jax.jit(lambda s, p, i: steps.train_step(s, p, i, config=config))
        one_state, one = step(state, packed, idx)
        mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
        rep, bat = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
        four_state, four = step(jax.device_put(state, rep), jax.device_put(packed, rep), jax.device_put(idx, bat))
        assert len(jax.tree.leaves(four_state.params)[0].sharding.device_set) == 4
        np.testing.assert_allclose(four["loss"], one["loss"], rtol=1e-5)
        for a, b in zip(jax.tree.leaves(four_state.params), jax.tree.leaves(one_state.params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
        print("OK")
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=240,
                         env=subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"))
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stderr[-3000:]


def test_batch_indices_cover_each_epoch_and_are_a_function_of_the_step():
    n, b = 10, 4
    stream = np.concatenate([steps.batch_indices(s, n, b, seed=3) for s in range(5)])  # 2 epochs exactly
    assert sorted(stream[:n]) == list(range(n)) and sorted(stream[n:]) == list(range(n))
    assert not np.array_equal(stream[:n], stream[n:])
    np.testing.assert_array_equal(steps.batch_indices(3, n, b, seed=3), stream[12:16])


@pytest.mark.parametrize("name", losses.LOSSES)
def test_losses_reward_the_right_occupancy(name):
    cfg = losses.loss_config(name=name)
    target = jnp.zeros((1, 32, 32, 32), bool).at[0, 10:14, 10:14, 10:14].set(True)
    good = jnp.where(target, 6.0, -6.0)
    empty = jnp.full(target.shape, -6.0)
    assert float(losses.voxel_loss(good, target, cfg)[0]) < float(losses.voxel_loss(empty, target, cfg)[0])


def test_unknown_loss_names_the_choices():
    with pytest.raises(ValueError, match="loss.name"):
        losses.voxel_loss(jnp.zeros((1, 32, 32, 32)), jnp.zeros((1, 32, 32, 32)), losses.loss_config(name="dice"))
