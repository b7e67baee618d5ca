"""One suite for every interpolation implementation, checked against a float64 NumPy reference, and
every Pallas kernel lowered for CUDA on an abstract H100.

Inputs are fresh random latents on every run (never zeros). Outputs are poisoned before each call
(on the GPU a NaN-filled buffer of the output's size is freed just before, so the allocator hands
its memory to the kernel; in interpret mode fresh buffers start as NaN), and every element is
compared with the reference, so an element an implementation forgets to write fails.
"""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from lerpnet.ops.common import interpret_off_gpu
from lerpnet.ops.lerp import IMPLEMENTATIONS, default_implementation, interpolate, interpolate_pairs
from lerpnet.ops.lerp import mosaic_global, mosaic_smem, triton, xla
from lerpnet.ops.lerp.api import PALLAS_KERNELS

BF16 = np.dtype(ml_dtypes.bfloat16)
LATENTS = [(64,), (8, 8), (2, 2, 2, 8)]
KERNELS = {"mosaic_smem": mosaic_smem, "mosaic_global": mosaic_global, "triton": triton}
CUSTOM_CALL = {"mosaic_smem": "mosaic_gpu", "mosaic_global": "mosaic_gpu", "triton": "__gpu"}


def fresh_latents(n: int, latent: tuple[int, ...], dtype) -> np.ndarray:
    """Random latents (never zeros), new every run; the seed is printed so a failure can be replayed."""
    seed = np.random.SeedSequence().entropy
    rng = np.random.default_rng(seed)
    print(f"latent seed {seed}")
    z = rng.normal(0.5, 2.0, (n, *latent)) + rng.choice([-1.0, 1.0], (n, *latent)) * 0.25
    return z.astype(np.float32).astype(dtype)


def expand(z: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs reference (N, N, steps, 64) and elementwise scale, from (N, 64) rows."""
    rows = z.reshape(z.shape[0], -1).astype(np.float64)
    t = (np.arange(steps) / (steps - 1))[:, None]
    x, y = rows[:, None, None, :], rows[None, :, None, :]
    return (1 - t) * x + t * y, (1 - t) * np.abs(x) + t * np.abs(y)


def assert_matches(out, ref: np.ndarray, scale: np.ndarray, dtype) -> None:
    """Every element within rounding of the float64 reference: float32 ~1e-6 of the inputs' scale
    (relative to |out| fails where (1-t) zi and t zj cancel); bfloat16 half an ulp of the result plus that."""
    out = np.asarray(out).astype(np.float64).reshape(ref.shape)
    bound = 1e-6 * scale + (2.0**-8 * np.abs(ref) if np.dtype(dtype) == BF16 else 0)
    bad = ~(np.abs(out - ref) <= bound)  # NaN (an unwritten, poisoned element) counts as bad
    assert not bad.any(), (
        f"{bad.sum()} of {bad.size} elements off, first at {np.argwhere(bad)[0].tolist()}: "
        f"got {out[bad][0]!r}, want {ref[bad][0]!r}"
    )


def poison(nbytes: int) -> None:
    """On the GPU, fill and free a buffer as large as the next output, so stale memory is NaN."""
    if not interpret_off_gpu():
        jnp.full((nbytes // 4,), jnp.nan, jnp.float32).block_until_ready().delete()


class LerpSuite:
    """The parameterized checks; subclasses choose the implementations, sizes and platform."""

    implementations: tuple[str | None, ...] = ()
    # (n, latent, dtype, steps): sizes that are and are not multiples of the 8/16 blocks, N = 1.
    all_pairs_cases: list = []
    pairs_cases: list = []

    def test_all_pairs(self, all_pairs_case):
        implementation, n, latent, dtype, steps = all_pairs_case
        z = fresh_latents(n, latent, dtype)
        poison(n * n * steps * 64 * np.dtype(dtype).itemsize)
        out = interpolate(jnp.asarray(z) if implementation != "numpy" else z, steps=steps,
                          implementation=implementation)
        assert out.shape == (n, n, steps, *latent) and np.dtype(out.dtype) == np.dtype(dtype)
        ref, scale = expand(z, steps)
        assert_matches(out, ref, scale, dtype)

    def test_pairs(self, pairs_case):
        implementation, n, latent, dtype, steps, p = pairs_case
        z = fresh_latents(n, latent, dtype)
        rng = np.random.default_rng()
        i, j = rng.integers(0, n, p).astype(np.int32), rng.integers(0, n, p).astype(np.int32)
        poison(p * steps * 64 * np.dtype(dtype).itemsize)
        out = interpolate_pairs(z, i, j, steps=steps, implementation=implementation)
        assert out.shape == (p, steps, *latent) and np.dtype(out.dtype) == np.dtype(dtype)
        ref, scale = expand(z, steps)
        assert_matches(out, ref[i, j], scale[i, j], dtype)


def pytest_generate_tests(metafunc):
    """Parameterize each class's tests over its own implementations and cases."""
    cls = metafunc.cls
    if cls is None:
        return
    for name in ("all_pairs_case", "pairs_case"):
        if name in metafunc.fixturenames:
            cases = [(impl, *c) for impl in cls.implementations for c in getattr(cls, name + "s")]
            metafunc.parametrize(name, cases, ids=_case_id)


def _case_id(case):
    def part(c):
        if isinstance(c, tuple):
            return "x".join(map(str, c))
        return np.dtype(c).name if isinstance(c, type | np.dtype) else str(c)
    return "-".join(map(part, case))


class TestHostImplementations(LerpSuite):
    """XLA and NumPy (and the default choice) on whatever platform runs the suite."""

    implementations = ("xla", "numpy", "auto", None)
    all_pairs_cases = [(n, latent, dt, 11) for n in (1, 16, 37) for latent in LATENTS for dt in (np.float32, BF16)]
    all_pairs_cases += [(5, (64,), np.float32, 2), (6, (8, 8), BF16, 30)]
    pairs_cases = [(9, (2, 2, 2, 8), dt, 11, p) for dt in (np.float32, BF16) for p in (1, 23)]


@pytest.mark.interpret
class TestKernelsInterpret(LerpSuite):
    """The Pallas kernels in interpret mode: small sizes, a ragged N > one block, N below a block."""

    implementations = PALLAS_KERNELS
    all_pairs_cases = [(1, (8, 8), np.float32, 11), (37, (2, 2, 2, 8), np.float32, 11),
                       (18, (64,), BF16, 13)]
    pairs_cases = [(7, (64,), np.float32, 13, 19), (5, (8, 8), BF16, 11, 3)]


@pytest.mark.gpu
class TestKernelsGPU(LerpSuite):
    """Every JAX implementation compiled on the GPU, at sizes from one latent to several thousand blocks."""

    implementations = (*PALLAS_KERNELS, "xla", "auto")
    all_pairs_cases = [(n, latent, dt, steps) for n in (1, 7, 37, 130, 515)
                       for latent, dt in (((64,), np.float32), ((2, 2, 2, 8), BF16)) for steps in (11, 13)]
    pairs_cases = [(n, (8, 8), dt, steps, p) for n in (200,) for dt in (np.float32, BF16)
                   for steps in (11, 25) for p in (1, 77, 4099)]


# ---- launch dataclasses: other blocks give the same result; bad knobs are refused ----

LAUNCHES = [
    ("mosaic_smem", mosaic_smem.MosaicSmemLaunch(block_i=8, block_j=8, buffers=3, pairs_block=8)),
    ("mosaic_global", mosaic_global.MosaicGlobalLaunch(block_i=4, block_j=8, pairs_block=32)),
    ("triton", triton.TritonLaunch(block_i=4, block_j=16, pairs_block=8, num_warps=2)),
]


@pytest.mark.parametrize("name, launch", LAUNCHES, ids=[n for n, _ in LAUNCHES])
def test_other_launches_compute_the_same(name, launch):
    z = fresh_latents(19, (64,), np.float32)
    interpret = interpret_off_gpu()
    out = KERNELS[name].all_pairs(jnp.asarray(z), steps=5, launch=launch, interpret=interpret)
    ref, scale = expand(z, 5)
    assert_matches(out, ref, scale, np.float32)
    i, j = np.array([3, 18, 0], np.int32), np.array([7, 18, 12], np.int32)
    out = KERNELS[name].pairs(jnp.asarray(z[i]), jnp.asarray(z[j]), steps=3, launch=launch, interpret=interpret)
    ref, scale = expand(z, 3)
    assert_matches(out, ref[i, j], scale[i, j], np.float32)


@pytest.mark.parametrize("make, match", [
    (lambda: mosaic_smem.MosaicSmemLaunch(block_j=0), r"MosaicSmemLaunch.block_j must be a positive integer, got 0"),
    (lambda: mosaic_global.MosaicGlobalLaunch(block_i=2.0), r"MosaicGlobalLaunch.block_i must be a positive integer"),
    (lambda: triton.TritonLaunch(block_i=3), r"TritonLaunch.block_i must be a power of two, got 3"),
    (lambda: triton.TritonLaunch(num_warps=True), r"TritonLaunch.num_warps must be a positive integer"),
])
def test_bad_launches_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_launches_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        triton.TritonLaunch().block_i = 16


# ---- input validation (every implementation shares it) ----

@pytest.mark.parametrize("shape, dtype, match", [
    ((0, 64), np.float32, "N = 0"),
    ((4, 63), np.float32, r"shape \(N, 64\)"),
    ((4, 8, 9), np.float32, r"shape \(N, 64\)"),
    ((64,), np.float32, r"shape \(N, 64\)"),
    ((4, 2, 2, 8), np.float32, r"shape \(N, 64\)"),
    ((4, 64), np.int32, "float32 or bfloat16"),
    ((4, 64), np.float16, "float32 or bfloat16"),
])
@pytest.mark.parametrize("implementation", ["xla", "numpy", "mosaic_smem", "auto"])
def test_bad_latents_raise(shape, dtype, match, implementation):
    z = np.ones(shape, dtype)
    with pytest.raises(ValueError, match=match):
        interpolate(z, implementation=implementation)
    with pytest.raises(ValueError, match=match):
        interpolate_pairs(z, np.zeros(1, np.int32), np.zeros(1, np.int32), implementation=implementation)


@pytest.mark.parametrize("steps", [1, 0, -3, 2.5, True, "11"])
def test_bad_steps_raise(steps):
    with pytest.raises(ValueError, match="steps must be an integer >= 2"):
        interpolate(np.ones((3, 64), np.float32), steps=steps)


@pytest.mark.parametrize("old_name", ["cuda", "pallas", "pallas_global", "pallas_triton", "jnp"])
def test_unknown_implementations_raise(old_name):
    """No aliases: the old backend names are refused like any unknown name."""
    with pytest.raises(ValueError, match=f"unknown implementation '{old_name}'"):
        interpolate(np.ones((3, 8, 8), np.float32), implementation=old_name)


def test_bad_pairs_raise():
    z = np.ones((3, 8, 8), np.float32)
    ok = np.array([0, 2], np.int32)
    with pytest.raises(ValueError, match="same shape"):
        interpolate_pairs(z, ok, ok[:1])
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        interpolate_pairs(z, ok, np.array([0, 3], np.int32))
    with pytest.raises(ValueError, match="1-D integer"):
        interpolate_pairs(z, ok.astype(np.float32), ok)
    with pytest.raises(ValueError, match="no pairs"):
        interpolate_pairs(z, ok[:0], ok[:0])
    with pytest.raises(ValueError, match="cannot be traced"):
        jax.jit(lambda z: interpolate(z, implementation="numpy"))(z)


def test_pairs_under_jit_with_traced_indices():
    """The streaming program calls interpolate_pairs inside jit with traced index blocks."""
    z = fresh_latents(6, (8, 8), np.float32)
    i, j = np.array([5, 0, 3], np.int32), np.array([1, 1, 4], np.int32)
    out = jax.jit(lambda z, i, j: interpolate_pairs(z, i, j, steps=4, implementation="xla"))(z, i, j)
    ref, scale = expand(z, 4)
    assert_matches(out, ref[i, j], scale[i, j], np.float32)


def test_default_rule():
    assert default_implementation("gpu", 2 * 2) == default_implementation("gpu", 50 * 50) == "triton"
    assert default_implementation("gpu", 51 * 51) == default_implementation("gpu", 4096 * 4096) == "mosaic_smem"
    assert default_implementation("cpu", 50 * 50) == default_implementation("cpu", 4096 * 4096) == "xla"
    assert set(IMPLEMENTATIONS) == {"mosaic_smem", "mosaic_global", "triton", "xla", "numpy"}


def test_poisoned_output_is_caught():
    """The check itself fails on an output with one element left unwritten (NaN) or one off by 1 ulp-scale."""
    z = fresh_latents(4, (64,), np.float32)
    ref, scale = expand(z, 3)
    good = np.asarray(xla.all_pairs(jnp.asarray(z), steps=3))
    assert_matches(good, ref, scale, np.float32)
    for corrupt in (np.nan, good[1, 2, 1, 7] * (1 + 1e-5) + 1e-3):
        bad = good.copy()
        bad[1, 2, 1, 7] = corrupt
        with pytest.raises(AssertionError, match="1 of"):
            assert_matches(bad, ref, scale, np.float32)


# ---- every kernel lowered for CUDA on an abstract H100 (interpret mode ignores the GPU's constraints) ----

@pytest.mark.parametrize("name", PALLAS_KERNELS)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("n, steps", [(3, 11), (37, 11), (64, 13), (1000, 11)])
def test_all_pairs_lowers_for_h100(lower_for_h100, name, dtype, n, steps):
    z = jax.ShapeDtypeStruct((n, 64), dtype)
    text = lower_for_h100(lambda z: KERNELS[name].all_pairs(z, steps=steps), z)
    assert re.search(rf"custom_call @{CUSTOM_CALL[name]}", text), text[:2000]
    assert f"tensor<{n}x{n}x{steps}x64x{'f32' if dtype == jnp.float32 else 'bf16'}>" in text


@pytest.mark.parametrize("name", PALLAS_KERNELS)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("p, steps", [(5, 11), (77, 25)])
def test_pairs_lowers_for_h100(lower_for_h100, name, dtype, p, steps):
    a = jax.ShapeDtypeStruct((p, 64), dtype)
    text = lower_for_h100(lambda a, b: KERNELS[name].pairs(a, b, steps=steps), a, a)
    assert re.search(rf"custom_call @{CUSTOM_CALL[name]}", text), text[:2000]


class UncheckedTritonLaunch(triton.TritonLaunch):
    """A launch TritonLaunch refuses (not a power of two), built anyway to show the lowering refuses it too."""

    def __post_init__(self):
        pass


@pytest.mark.interpret
@pytest.mark.parametrize("name, launch, error", [
    ("triton", UncheckedTritonLaunch(block_i=3), "power of 2"),  # Triton: power-of-two arrays only
    ("mosaic_global", mosaic_global.MosaicGlobalLaunch(block_j=1), "infer a possible set of layouts"),  # 64-element register array
])
def test_lowering_rejects_what_interpret_mode_runs(lower_for_h100, name, launch, error):
    """The lowering check can fail: kernels that interpret mode runs correctly but the GPU rejects."""
    z = jax.random.normal(jax.random.key(0), (9, 64), jnp.float32)
    interpreted = KERNELS[name].all_pairs(z, steps=3, launch=launch, interpret=True)
    np.testing.assert_allclose(interpreted[2, 5, 1], (z[2] + z[5]) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match=error):
        lower_for_h100(lambda z: KERNELS[name].all_pairs(z, steps=3, launch=launch), z)


def test_lowering_checks_the_shared_memory_budget(lower_for_h100):
    launch = mosaic_smem.MosaicSmemLaunch(block_i=16, block_j=64)
    with pytest.raises(ValueError, match="exceeds available shared memory"):
        lower_for_h100(lambda z: mosaic_smem.all_pairs(z, steps=11, launch=launch),
                       jax.ShapeDtypeStruct((100, 64), jnp.float32))
