"""The training options of lerpnet.steps: each changes the step, stays finite, and is off by default;
the weight EMA's rule; the threshold chosen on validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lerpnet import bitpack, metrics, models, steps, train
from lerpnet.data import procedural_chairs
from lerpnet.configs import default as default_config
from lerpnet.workdir import Workdir
from tests.train_steps import run_steps

# The options that change what the autoencoder sees or minimises (each is tested on its own where it
# lives: lerpnet.augment, lerpnet.losses, the encoder in test_models); here, that train_step uses them.
INPUT_OPTIONS = {"train.latent_noise": 0.5, "model.encoder_dropout": 0.3, "model.encoder_blocks": 1,
                 "augment.max_shift": 2, "augment.erase_prob": 1.0, "loss.overlap_weight": 1.0,
                 "loss.tversky_alpha": 0.3, "loss.tversky_beta": 0.7}
ACAI = {"acai.weight": 0.5, "acai.critic_features": (4, 4)}
EMA = {"train.ema_decay": 0.99}


def _config(overrides=None):
    config = default_config.get_config("smoke")
    config.train.schedule = "constant"  # the warmup's first step has learning rate 0
    for field, value in (overrides or {}).items():
        section, name = field.split(".")
        config[section][name] = value
    return config


def test_options_are_off_by_default():
    config = train.default_config()
    assert config.train.ema_decay == 0 and config.train.latent_noise == 0 and config.acai.weight == 0
    assert config.morph.weight == 0
    assert config.loss.overlap_weight == 0 and config.augment.max_shift == 0 and config.augment.erase_prob == 0
    assert config.model.encoder_blocks == 0 and config.model.encoder_dropout == 0
    state = steps.create_state(_config())
    assert state.ema_params is None and state.critic is None


def test_train_step_uses_the_options_and_stays_finite():
    # two steps each: the second step's loss is after the first one's update
    _, base_state, base_out = run_steps(_config(), num_steps=2)
    _, state, out = run_steps(_config(INPUT_OPTIONS), num_steps=2)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in out.values())
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(state))
    assert float(out["loss"]) != pytest.approx(float(base_out["loss"]), rel=1e-4)
    assert set(out) == set(base_out) == {"loss", "grad_norm"}
    assert "block1" in state.params["params"]["encoder"]


def test_latent_noise_scales_with_the_batch_spread():
    z = jnp.stack([jnp.zeros((2, 2, 2, 8)), 10 * jnp.ones((2, 2, 2, 8))])  # std over the batch: 5
    noisy = steps._noisy(z, 0.1, jax.random.key(0))
    assert 0.2 < float(jnp.std(noisy - z)) < 0.8
    np.testing.assert_array_equal(steps._noisy(z, 0.0, jax.random.key(0)), z)


def test_ema_rule():
    ema, params = {"w": jnp.zeros(3)}, {"w": jnp.ones(3)}
    late = steps.ema_update(ema, params, 0.9, jnp.asarray(1000))
    np.testing.assert_allclose(late["w"], np.full(3, 0.1), rtol=1e-6)  # d = decay: (1 + t) / (10 + t) is above it
    early = steps.ema_update(ema, params, 0.9, jnp.asarray(0))
    np.testing.assert_allclose(early["w"], np.full(3, 0.9), rtol=1e-6)  # d = 1/10 at step 0: the average starts from the weights


def test_ema_and_acai_in_the_step():
    config = _config({**EMA, **ACAI})
    start, state, out = run_steps(config)
    d = min(0.99, 1 / 10)  # step 0
    for e, e0, p in zip(jax.tree.leaves(state.ema_params), jax.tree.leaves(start.ema_params),
                        jax.tree.leaves(state.params)):
        np.testing.assert_allclose(e, d * e0 + (1 - d) * p, rtol=1e-5, atol=1e-7)
    # ACAI: the critic takes its own step; the loss minimised is reconstruction + lambda * the critic's term.
    assert int(state.critic.step) == 1
    assert float(out["loss"]) == pytest.approx(float(out["reconstruction_loss"]) + 0.5 * float(out["acai_term"]))
    assert float(out["critic_loss"]) > 0
    assert all(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.critic.params),
                                                         jax.tree.leaves(start.critic.params)))
    assert steps.evaluated_params(state) is state.ema_params
    as_dict = {"params": state.params, "ema_params": state.ema_params}
    assert steps.evaluated_params(as_dict) is state.ema_params
    assert steps.evaluated_params({"params": state.params, "ema_params": None}) is state.params


def test_ema_and_critic_are_checkpointed_and_restored(tmp_path):
    config = _config({**EMA, **ACAI})
    final = train.train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(final["loss"])
    with Workdir(tmp_path) as wd:
        state = wd.restore(steps.create_state(config))
    assert int(state.step) == config.train.num_steps == int(state.critic.step)
    assert not np.array_equal(jax.tree.leaves(state.ema_params)[0], jax.tree.leaves(state.params)[0])


def test_choose_threshold_takes_the_best_mean_iou_nearest_one_half_on_ties():
    val = {"iou@0.3": 0.61, "iou@0.4": 0.66, "iou@0.45": 0.66, "iou@0.5": 0.64, "loss": 0.1, "pred_occupancy": 0.05}
    assert metrics.choose_threshold(val) == (0.45, 0.66)
    assert metrics.choose_threshold({"iou@0.5": 0.7, "iou@0.2": 0.71}) == (0.2, 0.71)
    with pytest.raises(ValueError, match="iou@"):
        metrics.choose_threshold({"loss": 1.0})


def test_choose_threshold_follows_the_losss_overlap_where_the_record_has_it():
    """A loss that counts misses above extras: the threshold of its Tversky index, with the IoU there."""
    val = {"iou@0.4": 0.70, "iou@0.5": 0.72, "iou@0.8": 0.75, "overlap@0.4": 0.90, "overlap@0.5": 0.91,
           "overlap@0.8": 0.89}
    assert metrics.choose_threshold(val) == (0.5, 0.72)
    # within NEAR_TIE of the best the scores are one score (seeds differ by more): the nearest 0.5 wins
    near = {"iou@0.3": 0.76, "iou@0.4": 0.77, "iou@0.5": 0.775, "iou@0.6": 0.78,
            "overlap@0.3": 0.9013, "overlap@0.4": 0.9012, "overlap@0.5": 0.9005, "overlap@0.6": 0.9001}
    assert metrics.choose_threshold(near) == (0.5, 0.775)
    assert metrics.choose_threshold({**near, "overlap@0.5": 0.9002}) == (0.4, 0.77)
    with pytest.raises(ValueError, match=r"without an iou@ entry.*0\.6"):
        metrics.choose_threshold({"iou@0.5": 0.7, "overlap@0.5": 0.8, "overlap@0.6": 0.9})


@pytest.mark.parametrize("overlap_weight", [0.0, 1.0])
def test_evaluation_reports_the_losss_overlap_at_each_threshold_when_it_has_one(overlap_weight):
    config = _config({"loss.overlap_weight": overlap_weight, "loss.tversky_alpha": 0.3, "loss.tversky_beta": 0.7})
    model = models.Autoencoder(config.model)
    params = steps.create_state(config).params
    packed = jnp.asarray(train._pack(procedural_chairs(3, 0)))
    sums, _ = steps.eval_step(params, packed, jnp.array([True, True, False]), model=model, loss_cfg=config.loss)
    overlaps = {k for k in sums if k.startswith("overlap@")}
    if not overlap_weight:
        assert not overlaps
        return
    assert overlaps == {f"overlap@{t}" for t in steps.THRESHOLDS}
    prob = jax.nn.sigmoid(model.apply(params, bitpack.unpack_voxels(packed[:2])))
    expected = jnp.sum(metrics.tversky_index(prob > 0.45, bitpack.unpack_voxels(packed[:2]), 0.3, 0.7))
    assert float(sums["overlap@0.45"]) == pytest.approx(float(expected), rel=1e-5)


def test_tversky_index_is_iou_at_unit_weights_and_weighs_misses_by_beta():
    rng = np.random.default_rng(0)
    pred, target = rng.random((3, 32, 32, 32)) < 0.1, rng.random((3, 32, 32, 32)) < 0.1
    np.testing.assert_allclose(metrics.tversky_index(pred, target, 1.0, 1.0), metrics.iou(pred, target), rtol=1e-6)
    target = np.zeros((1, 32, 32, 32), bool)
    target[0, :4] = True  # 4,096 full voxels
    missed, extra = target.copy(), target.copy()
    missed[0, 0] = False  # 1,024 missed
    extra[0, 4] = True  # 1,024 extra
    assert metrics.tversky_index(missed, target, 0.3, 0.7) < metrics.tversky_index(extra, target, 0.3, 0.7)
    np.testing.assert_allclose(metrics.tversky_index(missed, target, 0.3, 0.7), 3072 / (3072 + 0.7 * 1024), rtol=1e-6)
    assert float(metrics.tversky_index(np.zeros_like(target), np.zeros_like(target), 0.3, 0.7)[0]) == 1.0


def test_voxel_rates_pool_over_all_voxels():
    target = np.zeros((2, 32, 32, 32), bool)
    target[0, :4] = True  # 4096 full voxels
    pred = np.zeros_like(target)
    pred[0, :2] = True  # half of them found
    pred[1, :1] = True  # 1024 added in an empty grid
    tpr, fpr = metrics.voxel_rates(pred, target)
    assert float(tpr) == pytest.approx(0.5)
    assert float(fpr) == pytest.approx(1024 / (2 * 32**3 - 4096))
