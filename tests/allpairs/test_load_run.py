"""`lerpnet.workdir.load_run`: a training workdir read back, on any device count, with its threshold."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from lerpnet.workdir import load_run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A run's workdir as lerpnet.train writes it (config.json + an orbax checkpoint of the train state),
# written on 4 devices with every array replicated over them.
SAVE_ON_FOUR_DEVICES = textwrap.dedent(
    """
    import pathlib, sys
    import jax, jax.numpy as jnp, numpy as np, orbax.checkpoint as ocp
    from jax.sharding import NamedSharding, PartitionSpec as P
    from lerpnet import models
    from lerpnet.configs.default import get_config
    assert len(jax.devices()) == 4, jax.devices()
    run = pathlib.Path(sys.argv[1])
    config = get_config("smoke")
    run.mkdir()
    (run / "config.json").write_text(config.to_json_best_effort())
    params = models.Autoencoder(config.model).init(jax.random.key(3), jnp.zeros((1, 32, 32, 32)))
    mesh = jax.make_mesh((4,), ("data",))
    state = jax.device_put({"params": params, "step": jnp.int32(7)}, NamedSharding(mesh, P()))
    with ocp.CheckpointManager(run / "checkpoints") as manager:
        for step in (5, 7):
            manager.save(step, args=ocp.args.StandardSave(state))
    np.savez(run / "expected.npz", *[np.asarray(a) for a in jax.tree.leaves(params)])
    print("SAVED")
    """
)


@pytest.fixture(scope="module")
def four_device_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("load_run") / "run"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SAVE_ON_FOUR_DEVICES, str(run)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert "SAVED" in out.stdout, out.stderr[-3000:]
    return run


def test_a_run_trained_on_four_devices_restores_on_one(four_device_run):
    assert len(jax.devices()) == 1
    run = load_run(four_device_run)
    assert run.checkpoint == str(four_device_run / "checkpoints" / "7") and run.threshold == 0.5
    with np.load(four_device_run / "expected.npz") as expected:
        for got, want in zip(jax.tree.leaves(run.params), expected.values()):
            np.testing.assert_array_equal(np.asarray(got), want)
            assert got.sharding.device_set == {jax.devices()[0]}
    assert tuple(run.config.model.encoder_features) == (4, 4)


def test_a_checkpoint_folder_or_step_and_the_stored_threshold(four_device_run, tmp_path):
    assert load_run(four_device_run / "checkpoints" / "5").checkpoint.endswith("checkpoints/5")
    assert load_run(four_device_run, step=5).checkpoint.endswith("checkpoints/5")
    with pytest.raises(FileNotFoundError, match=r"has no checkpoint at step 6 \(it has \[5, 7\]\)"):
        load_run(four_device_run, step=6)
    (four_device_run / "threshold.json").write_text(json.dumps({"threshold": 0.4, "step": 7}))
    try:
        assert load_run(four_device_run).threshold == 0.4
        (four_device_run / "threshold.json").write_text(json.dumps({"threshold": 1.2}))
        with pytest.raises(ValueError, match="threshold.json: 'threshold' must be a number strictly between 0 and 1"):
            load_run(four_device_run)
        (four_device_run / "threshold.json").write_text("")
        with pytest.raises(ValueError, match="threshold.json is not valid JSON"):
            load_run(four_device_run)
    finally:
        (four_device_run / "threshold.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        load_run(tmp_path)
    with pytest.raises(ValueError, match="path is empty"):
        load_run("")


def test_a_run_that_kept_a_weight_ema_is_read_as_its_ema(tmp_path):
    """The EMA is what the run evaluated and chose its threshold on, so readers decode with it."""
    import jax.numpy as jnp
    import orbax.checkpoint as ocp

    from lerpnet import models
    from lerpnet.configs.default import get_config

    run = tmp_path / "run"
    run.mkdir()
    config = get_config("smoke")
    (run / "config.json").write_text(config.to_json_best_effort())
    init = models.Autoencoder(config.model).init
    params, ema = init(jax.random.key(1), jnp.zeros((1, 32, 32, 32))), init(jax.random.key(2), jnp.zeros((1, 32, 32, 32)))
    with ocp.CheckpointManager(run / "checkpoints") as manager:
        manager.save(3, args=ocp.args.StandardSave({"params": params, "ema_params": ema, "step": jnp.int32(3)}))
    got = load_run(run).params
    for g, e, p in zip(jax.tree.leaves(got), jax.tree.leaves(ema), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(e))
        assert not np.array_equal(np.asarray(e), np.asarray(p)) or e.size == 0 or np.all(e == 0)
