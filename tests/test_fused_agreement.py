import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import fused_agreement
from lerpnet import models, train
from lerpnet.allpairs.shapes import pair_list
from lerpnet.bitpack import unpack_voxels
from lerpnet.configs import default as default_config
from lerpnet.ops.lerp_decode import lerp_decode, reference


@pytest.mark.parametrize("implementation", ["xla", "triton"])  # triton: interpret mode off the GPU
def test_counts_match_a_direct_count_over_padded_blocks(implementation):
    model = models.Autoencoder(models.model_config(encoder_features=(4, 4), decoder_features=(16, 32)))
    params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32)))
    z = jax.random.normal(jax.random.key(1), (3, 2, 2, 2, 8))
    row = fused_agreement.agreement(model, params, z, threshold=0.5, implementation=implementation,
                                     block=4)  # 9 pairs -> 12

    i, j = np.pad(pair_list(3, "all"), ((0, 3), (0, 0))).T

    @jax.jit
    def decode(i, j):  # blocks of 4 pairs as the benchmark's: a GPU may pick another algorithm for another size
        packed = lerp_decode(model, params, z, i, j, implementation=implementation)
        return unpack_voxels(packed), reference.logits(model, params, z, i, j, steps=11, span=(0, 11))

    blocks = [decode(i[s:s + 4], j[s:s + 4]) for s in (0, 4, 8)]
    got = np.concatenate([b[0] for b in blocks])[:9]
    logits = np.concatenate([b[1] for b in blocks])[:9]
    differ = got != (logits > 0)
    assert differ.any()  # an untrained model's logits sit near 0: bf16 flips some, so the count is tested
    assert row["voxels"] == 9 * 11 * 32**3 and row["differing"] == differ.sum()
    assert row["max_abs_logit_margin_differing"] == pytest.approx(np.abs(logits[differ]).max(), rel=1e-3)
    assert row["logit_std"] == pytest.approx(logits.std(), rel=1e-3)

    exact = fused_agreement.agreement(model, params, z, threshold=0.5, implementation="reference", block=4)
    assert exact["differing"] == 0 and exact["max_abs_logit_margin_differing"] == 0.0


def test_report_on_a_trained_run(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # the dataset cache goes to ~/.cache
    run = tmp_path / "run"
    train.train_and_evaluate(default_config.get_config("smoke"), str(run))
    rows = fused_agreement.report(run, tmp_path / "out", chairs=2, implementations=("reference", "xla"))
    assert [r["implementation"] for r in rows] == ["reference", "xla"]
    assert rows[0]["differing"] == 0 and rows[1]["pairs"] == 4
    assert "| implementation |" in (tmp_path / "out" / "fused_agreement.md").read_text()
    with pytest.raises(ValueError, match="--chairs"):
        fused_agreement.report(run, tmp_path / "out", chairs=10_000)
    with pytest.raises(ValueError, match="unknown cuda"):
        fused_agreement.report(tmp_path / "no run", tmp_path / "out", implementations=("xla", "cuda"))
