"""Lower every Pallas interpolation kernel for an H100 on the CPU, so GPU compiler rejections fail CI.

Interpret mode ignores the GPU backends' constraints (Triton's power-of-two arrays, Mosaic GPU's
register layouts, TMA and the shared-memory budget). Lowering with `lowering_platforms=("cuda",)`
inside an abstract H100 mesh runs the real Pallas -> Triton / Mosaic GPU lowering, including Mosaic
GPU's layout inference and shared-memory accounting, with no GPU present. What it cannot catch is
what happens later, at XLA compile time on a device (ptxas, the Triton compiler proper).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lerpnet.ops.lerp import mosaic_global as lerp_global, mosaic_smem as lerp_smem, triton as lerp_triton

H100 = jax.sharding.AbstractDevice(device_kind="NVIDIA H100 80GB HBM3", num_cores=132, platform="cuda")
CUSTOM_CALL = {lerp_smem: "mosaic_gpu", lerp_global: "mosaic_gpu", lerp_triton: "__gpu"}
MODULES = [lerp_smem, lerp_global, lerp_triton]

pytestmark = pytest.mark.filterwarnings("ignore:The Pallas Triton backend is deprecated:DeprecationWarning")


def lower_for_h100(fn, *args) -> str:
    with jax.sharding.use_abstract_mesh(jax.sharding.AbstractMesh((1,), ("x",), abstract_device=H100)):
        return jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).as_text()


def ids(m):
    return m.__name__.rsplit(".", 1)[-1]


@pytest.mark.parametrize("module", MODULES, ids=ids)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("n, steps", [(3, 11), (37, 11), (64, 13), (1000, 11)])
def test_all_pairs_lowers_for_h100(module, dtype, n, steps):
    z = jax.ShapeDtypeStruct((n, 64), dtype)
    text = lower_for_h100(lambda z: module.all_pairs(z, steps=steps), z)
    assert re.search(rf"custom_call @{CUSTOM_CALL[module]}", text), text[:2000]
    assert f"tensor<{n}x{n}x{steps}x64x{'f32' if dtype == jnp.float32 else 'bf16'}>" in text


@pytest.mark.parametrize("module", MODULES, ids=ids)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("p, steps", [(5, 11), (77, 25)])
def test_pairs_lowers_for_h100(module, dtype, p, steps):
    a = jax.ShapeDtypeStruct((p, 64), dtype)
    text = lower_for_h100(lambda a, b: module.pairs(a, b, steps=steps), a, a)
    assert re.search(rf"custom_call @{CUSTOM_CALL[module]}", text), text[:2000]


@pytest.mark.parametrize("module, blocks, error", [
    (lerp_triton, dict(block_i=3), "power of 2"),                 # Triton: power-of-two arrays only
    (lerp_global, dict(block_j=1), "infer a possible set of layouts"),  # Mosaic GPU: 64-element register array
])
def test_lowering_rejects_what_interpret_mode_runs(module, blocks, error):
    """The lowering check can fail: kernels that interpret mode runs correctly but the GPU rejects."""
    z = jax.random.normal(jax.random.key(0), (9, 64), jnp.float32)
    interpreted = module.all_pairs(z, steps=3, interpret=True, **blocks)
    np.testing.assert_allclose(interpreted[2, 5, 1], (z[2] + z[5]) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match=error):
        lower_for_h100(lambda z: module.all_pairs(z, steps=3, **blocks), z)


def test_lowering_checks_the_shared_memory_budget():
    with pytest.raises(ValueError, match="exceeds available shared memory"):
        lower_for_h100(lambda z: lerp_smem.all_pairs(z, steps=11, block_i=16, block_j=64),
                       jax.ShapeDtypeStruct((100, 64), jnp.float32))
