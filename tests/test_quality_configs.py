"""The quality configs: modelnet_chairs is its ablation base plus WINNER; study is the 2018 autoencoder."""

from lerpnet.config_checks import flatten
from lerpnet.configs import ablation, modelnet_chairs, study


def _differences(a, b) -> dict:
    fa, fb = flatten(a), flatten(b)
    return {k: (fa.get(k), fb.get(k)) for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k)}


def test_modelnet_chairs_is_the_ablation_base_plus_the_winner():
    base, winner = modelnet_chairs.get_config("ablation_base"), modelnet_chairs.get_config()
    assert {k: new for k, (_, new) in _differences(base, winner).items()} == modelnet_chairs.WINNER
    assert ablation.VARIANTS["winner"] == modelnet_chairs.WINNER
    # the rows measured and adopted, and the leave-one-out row of the last one
    assert ablation.changes("combined+residual2+canonical_poses+pieces03") == modelnet_chairs.WINNER
    assert ablation.changes("winner+no_pieces") == {**modelnet_chairs.WINNER, "pieces.weight": 0.0}
    # The decoder stays the one the fused lerp-decode kernel runs fast.
    for config in (base, winner):
        assert tuple(config.model.decoder_features) == (64, 64) and config.model.activation == "relu"
        assert config.model.kernel_size == 4 and config.model.latent_features == 8


def test_the_study_decoder_variant_is_the_winner_with_the_study_s_decoder_widths():
    winner, fast = modelnet_chairs.get_config(), modelnet_chairs.get_config("study_decoder")
    assert _differences(winner, fast) == {"model.decoder_features": ([64, 64], [16, 32])}
    assert ablation.changes("winner+study_decoder") == {**modelnet_chairs.WINNER, **modelnet_chairs.STUDY_DECODER}


def test_study_is_the_2018_autoencoder_with_the_base_recipe():
    config, base = study.get_config(), modelnet_chairs.get_config("ablation_base")
    assert tuple(config.model.encoder_features) == (32, 16) and tuple(config.model.decoder_features) == (16, 32)
    assert config.model.encoder_blocks == 0 and config.train.ema_decay == 0 and config.acai.weight == 0
    changed = _differences(base, config)
    assert set(changed) == {"model.encoder_features", "model.decoder_features"}
    smoke = study.get_config("smoke")
    assert smoke.train.num_steps < 10 and smoke.data.source == "modelnet" and smoke.data.rotations == "canonical"
