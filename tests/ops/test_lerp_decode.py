"""The fused interpolate-decode path equals the unfused one; the fast layer forms equal Flax's."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import fast_layers
from lerpnet import models
from lerpnet.ops.lerp import api as interpolation
from lerpnet.ops.lerp_decode import api as fused_decoder
from lerpnet.bitpack import unpack_voxels

ON_GPU = jax.default_backend() == "gpu"


@pytest.mark.parametrize("formulation", sorted(fast_layers.CONV_TRANSPOSE))
@pytest.mark.parametrize("cin,cout", [(16, 32), (32, 1)])
def test_conv_transpose_formulations_equal_flax(formulation, cin, cout):
    layer = nn.ConvTranspose(cout, (4, 4, 4), (2, 2, 2), padding="SAME")
    x = jax.random.normal(jax.random.key(cin), (2, 6, 6, 6, cin))
    params = layer.init(jax.random.key(1), x)
    params = jax.tree.map(lambda a: jax.random.normal(jax.random.key(a.ndim), a.shape), params)
    # Full float32 arithmetic: on the GPU the default lets convolutions round operands to TF32,
    # differently in each formulation.
    with jax.default_matmul_precision("highest"):
        want = layer.apply(params, x)
        got = fast_layers.CONV_TRANSPOSE[formulation](x, params["params"]["kernel"], params["params"]["bias"])
    assert got.shape == want.shape
    assert jnp.linalg.norm(got - want) / jnp.linalg.norm(want) < 1e-5


def _model_and_latents(n):
    model = models.Autoencoder(models.model_config())
    params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32)))
    # random biases too, so that a dropped bias shows
    params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(a.size), a.shape), params)
    z = jax.random.normal(jax.random.key(n), (n, 2, 2, 2, 8))
    return model, params, z


def _reference_logits(model, params, z, i, j, steps):
    lat = interpolation.interpolate_pairs(z, i, j, steps=steps, backend="jnp").reshape(-1, 2, 2, 2, 8)
    return model.apply(params, lat, method=models.Autoencoder.decode).reshape(len(i), steps, 32, 32, 32)


def _check_against_reference(packed, logits):
    """Every voxel whose float32 logit is clear of 0 must match; bf16 may flip the near-zero ones."""
    got = np.asarray(unpack_voxels(packed))
    logits = np.asarray(logits)
    want = logits > 0
    clear = np.abs(logits) > 0.05 * logits.std()
    assert got.shape == want.shape
    assert np.array_equal(got[clear], want[clear])
    assert (got != want).mean() < 5e-3
    assert 0.05 < want.mean() < 0.95  # the check is not on an all-empty or all-full grid


def test_reference_backend_is_the_thresholded_decode():
    model, params, z = _model_and_latents(3)
    i, j = jnp.array([0, 2]), jnp.array([1, 0])
    packed = fused_decoder.lerp_decode(model, params, z, i, j, steps=3, backend="reference")
    logits = _reference_logits(model, params, z, i, j, 3)
    np.testing.assert_array_equal(unpack_voxels(packed), logits > 0)


def test_xla_backend_matches_reference():
    model, params, z = _model_and_latents(3)
    i, j = jnp.array([0, 2, 1]), jnp.array([1, 0, 1])
    packed = fused_decoder.lerp_decode(model, params, z, i, j, steps=3, backend="xla", chunk=2)
    _check_against_reference(packed, _reference_logits(model, params, z, i, j, 3))


class TestPallasInterpret:
    """The Triton kernel run by the Pallas interpreter (CPU)."""

    @pytest.mark.parametrize("split,pipelined,up1_rows", [(1, False, 8), (2, True, 4), (1, True, 2)])
    def test_matches_reference(self, split, pipelined, up1_rows):
        if ON_GPU:
            pytest.skip("interpret mode is for CPU; the compiled kernel is tested on the GPU")
        model, params, z = _model_and_latents(3)
        i, j = jnp.array([0, 2]), jnp.array([1, 1])
        # 6 items over 4 programs: programs loop unevenly; rows=4 splits up2 into two slabs
        packed = fused_decoder.lerp_decode(model, params, z, i, j, steps=3, backend="pallas", interpret=True,
                                           programs=4, rows=4, up1_rows=up1_rows, split=split,
                                           pipelined=pipelined)
        _check_against_reference(packed, _reference_logits(model, params, z, i, j, 3))

    def test_step_range_decodes_those_steps(self):
        if ON_GPU:
            pytest.skip("interpret mode is for CPU; the compiled kernel is tested on the GPU")
        model, params, z = _model_and_latents(3)
        i, j = jnp.array([0, 2]), jnp.array([1, 0])
        packed = fused_decoder.lerp_decode(model, params, z, i, j, steps=5, step_range=(1, 3), backend="pallas",
                                           interpret=True, programs=3, rows=4)
        assert packed.shape == (2, 2, 32, 32)
        _check_against_reference(packed, _reference_logits(model, params, z, i, j, 5)[:, 1:3])


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU")
class TestPallasGPU:
    @pytest.mark.parametrize("launch", [{}, dict(rows=2, up1_rows=2), dict(programs=1056, rows=1, up1_rows=1)])
    def test_matches_reference(self, launch):
        model, params, z = _model_and_latents(7)
        i, j = (a.ravel() for a in jnp.meshgrid(jnp.arange(7), jnp.arange(7), indexing="ij"))
        # 539 items over 528 or 1056 programs: the persistent loop runs unevenly, or leaves programs idle
        packed = fused_decoder.lerp_decode(model, params, z, i, j, steps=11, backend="pallas", **launch)
        _check_against_reference(packed, _reference_logits(model, params, z, i, j, 11))

    def test_all_pairs_equals_per_pair_kernel_on_most_bits(self):
        model, params, z = _model_and_latents(9)
        i, j = (a.ravel() for a in jnp.meshgrid(jnp.arange(9), jnp.arange(9), indexing="ij"))
        want = fused_decoder.lerp_decode(model, params, z, i, j, backend="pallas")
        got = fused_decoder.lerp_decode_all_pairs(model, params, z, backend="pallas").reshape(want.shape)
        # the same latents up to the kernel's rounding of u h_i + t h_j (fma contraction may differ when swapped)
        assert float(jax.lax.population_count(got ^ want).sum()) / (want.size * 32) < 1e-3

    @pytest.mark.parametrize("split,num_warps", [(1, 4), (2, 2)])
    def test_equals_xla_backend_on_most_bits(self, split, num_warps):
        model, params, z = _model_and_latents(6)
        i, j = (a.ravel() for a in jnp.meshgrid(jnp.arange(6), jnp.arange(6), indexing="ij"))
        a = fused_decoder.lerp_decode(model, params, z, i, j, backend="pallas", programs=264, rows=2,
                                      split=split, num_warps=num_warps)
        b = fused_decoder.lerp_decode(model, params, z, i, j, backend="xla")
        assert float(jax.lax.population_count(a ^ b).sum()) / (a.size * 32) < 5e-3


@pytest.mark.parametrize("n,steps", [(1, 3), (4, 5)])
def test_all_pairs_equals_every_ordered_pair_decoded(n, steps):
    """Decoding each distinct shape once gives the per-pair result at every (i, j, s)."""
    model, params, z = _model_and_latents(n)
    i, j = (a.ravel() for a in jnp.meshgrid(jnp.arange(n), jnp.arange(n), indexing="ij"))
    want = fused_decoder.lerp_decode(model, params, z, i, j, steps=steps, backend="reference")
    got = fused_decoder.lerp_decode_all_pairs(model, params, z, steps=steps, backend="reference")
    assert got.shape == (n, n, steps, 32, 32)
    diff = np.asarray(unpack_voxels(got.reshape(want.shape))) != np.asarray(unpack_voxels(want))
    off_diagonal = np.asarray(i != j)
    # off the diagonal the latents are bit-identical; on it u z_i + t z_i may round away from z_i
    # (on a GPU, TF32 convolutions turn that into a few flipped voxels near logit 0)
    assert not diff[off_diagonal].any()
    assert diff.mean() < 5e-3


def test_all_pairs_needs_an_interior_step():
    model, params, z = _model_and_latents(2)
    with pytest.raises(ValueError, match="at least 3"):
        fused_decoder.lerp_decode_all_pairs(model, params, z, steps=2, backend="reference")


def test_pallas_lowers_for_cuda_on_an_abstract_h100():
    """Interpret mode ignores Triton's constraints (power-of-2 shapes, dot sizes): lower for CUDA too."""
    model, params, z = _model_and_latents(3)
    i, j = jnp.array([0, 1]), jnp.array([2, 0])
    h100 = jax.sharding.AbstractDevice(device_kind="NVIDIA H100 80GB HBM3", num_cores=132, platform="cuda")
    with jax.sharding.use_abstract_mesh(jax.sharding.AbstractMesh((1,), ("x",), abstract_device=h100)):
        for rows, up1_rows in ((2, 8), (1, 1)):
            lowered = jax.jit(lambda p, z, i, j: fused_decoder.lerp_decode_pallas(
                p, z, i, j, steps=3, programs=2, rows=rows, up1_rows=up1_rows)).trace(params, z, i, j).lower(
                    lowering_platforms=("cuda",))
            text = lowered.as_text()
            assert "lerp_decode" in text and "triton" in text.lower()


def test_bad_arguments_are_refused():
    model, params, z = _model_and_latents(2)
    i = j = jnp.array([0])
    with pytest.raises(ValueError, match="backend must be one of"):
        fused_decoder.lerp_decode(model, params, z, i, j, backend="cuda")
    with pytest.raises(ValueError, match="step_range"):
        fused_decoder.lerp_decode(model, params, z, i, j, steps=3, step_range=(2, 4), backend="reference")
    gelu = models.Autoencoder(models.model_config(activation="gelu"))
    with pytest.raises(ValueError, match="relu only"):
        fused_decoder.lerp_decode(gelu, params, z, i, j, backend="pallas")
