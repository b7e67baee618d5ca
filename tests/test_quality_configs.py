"""The quality configs: modelnet_chairs is its ablation base plus WINNER; study is the 2018 autoencoder."""

from lerpnet.config_checks import flatten
from lerpnet.configs import ablation, modelnet_chairs, study


def _differences(a, b) -> dict:
    fa, fb = flatten(a), flatten(b)
    return {k: (fa.get(k), fb.get(k)) for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k)}


def test_modelnet_chairs_is_the_ablation_base_plus_the_winner():
    base, winner = modelnet_chairs.get_config("ablation_base"), modelnet_chairs.get_config()
    changed = {k: tuple(new) if isinstance(new, list) else new for k, (_, new) in _differences(base, winner).items()}
    assert changed == modelnet_chairs.WINNER
    assert ablation.VARIANTS["winner"] == modelnet_chairs.WINNER
    # the rows measured and adopted, and the leave-one-out rows of the last two
    assert ablation.changes("combined+residual2+canonical_poses+pieces03+study_decoder") == modelnet_chairs.WINNER
    assert ablation.changes("winner+no_pieces") == {**modelnet_chairs.WINNER, "pieces.weight": 0.0}
    # The decoders are ones the fused lerp-decode kernels run: the winner's the Mosaic GPU kernel's widths.
    assert tuple(winner.model.decoder_features) == (16, 32) and tuple(base.model.decoder_features) == (64, 64)
    for config in (base, winner):
        assert config.model.activation == "relu" and config.model.kernel_size == 4 and config.model.latent_features == 8


def test_the_wide_decoder_variant_is_the_winner_with_the_base_s_decoder_widths():
    winner, wide = modelnet_chairs.get_config(), modelnet_chairs.get_config("wide_decoder")
    assert _differences(winner, wide) == {"model.decoder_features": ([16, 32], [64, 64])}
    assert ablation.changes("winner+wide_decoder") == {**modelnet_chairs.WINNER, **modelnet_chairs.WIDE_DECODER}


def test_study_is_the_2018_autoencoder_with_the_base_recipe():
    config, base = study.get_config(), modelnet_chairs.get_config("ablation_base")
    assert tuple(config.model.encoder_features) == (32, 16) and tuple(config.model.decoder_features) == (16, 32)
    assert config.model.encoder_blocks == 0 and config.train.ema_decay == 0 and config.acai.weight == 0
    changed = _differences(base, config)
    assert set(changed) == {"model.encoder_features", "model.decoder_features"}
    smoke = study.get_config("smoke")
    assert smoke.train.num_steps < 10 and smoke.data.source == "modelnet" and smoke.data.rotations == "canonical"
