"""One suite for every interpolation backend, checked against a float64 NumPy reference.

Inputs are fresh random latents on every run (never zeros). Outputs are poisoned before each call
(on the GPU a NaN-filled buffer of the output's size is freed just before, so the allocator hands
its memory to the kernel; in interpret mode fresh buffers start as NaN), and every element is
compared with the reference, so an element a backend forgets to write fails.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from lerpnet.ops.lerp import api as interpolation
from lerpnet.ops.lerp.api import BACKENDS, auto_backend, interpolate, interpolate_pairs

pytestmark = pytest.mark.filterwarnings("ignore:The Pallas Triton backend is deprecated:DeprecationWarning")

ON_GPU = jax.default_backend() == "gpu"
BF16 = np.dtype(ml_dtypes.bfloat16)
LATENTS = [(64,), (8, 8), (2, 2, 2, 8)]


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
    if ON_GPU:
        jnp.full((nbytes // 4,), jnp.nan, jnp.float32).block_until_ready().delete()


class InterpolationSuite:
    """The parameterized checks; subclasses choose the backends, sizes and platform."""

    backends: tuple[str, ...] = ()
    # (n, latent, dtype, steps): sizes that are and are not multiples of the 8/16 blocks, N = 1.
    all_pairs_cases: list = []
    pairs_cases: list = []

    def check_all_pairs(self, backend, n, latent, dtype, steps):
        z = fresh_latents(n, latent, dtype)
        poison(n * n * steps * 64 * np.dtype(dtype).itemsize)
        out = interpolate(jnp.asarray(z) if backend != "numpy" else z, steps=steps, backend=backend)
        assert out.shape == (n, n, steps, *latent) and np.dtype(out.dtype) == np.dtype(dtype)
        ref, scale = expand(z, steps)
        assert_matches(out, ref, scale, dtype)

    def check_pairs(self, backend, n, latent, dtype, steps, p):
        z = fresh_latents(n, latent, dtype)
        rng = np.random.default_rng()
        i, j = rng.integers(0, n, p).astype(np.int32), rng.integers(0, n, p).astype(np.int32)
        poison(p * steps * 64 * np.dtype(dtype).itemsize)
        out = interpolate_pairs(z, i, j, steps=steps, backend=backend)
        assert out.shape == (p, steps, *latent) and np.dtype(out.dtype) == np.dtype(dtype)
        ref, scale = expand(z, steps)
        assert_matches(out, ref[i, j], scale[i, j], dtype)


def _cases(cls, name):
    return [(b, *c) for b in cls.backends for c in getattr(cls, name)]


def pytest_generate_tests(metafunc):
    """Parameterize each class's tests over its own backends and cases."""
    cls = metafunc.cls
    if cls is None:
        return
    if "all_pairs_case" in metafunc.fixturenames:
        metafunc.parametrize("all_pairs_case", _cases(cls, "all_pairs_cases"), ids=_case_id)
    if "pairs_case" in metafunc.fixturenames:
        metafunc.parametrize("pairs_case", _cases(cls, "pairs_cases"), ids=_case_id)


def _case_id(case):
    def part(c):
        if isinstance(c, tuple):
            return "x".join(map(str, c))
        return np.dtype(c).name if isinstance(c, type | np.dtype) else str(c)
    return "-".join(map(part, case))


class _Tests(InterpolationSuite):
    def test_all_pairs(self, all_pairs_case):
        self.check_all_pairs(*all_pairs_case)

    def test_pairs(self, pairs_case):
        self.check_pairs(*pairs_case)


class TestHostBackends(_Tests):
    """jnp and NumPy on whatever platform runs the suite."""

    backends = ("jnp", "numpy", "auto")
    all_pairs_cases = [(n, latent, dt, 11) for n in (1, 16, 37) for latent in LATENTS for dt in (np.float32, BF16)]
    all_pairs_cases += [(5, (64,), np.float32, 2), (6, (8, 8), BF16, 30)]
    pairs_cases = [(9, (2, 2, 2, 8), dt, 11, p) for dt in (np.float32, BF16) for p in (1, 23)]


@pytest.mark.skipif(ON_GPU, reason="interpret mode is the CPU stand-in for the GPU kernels")
class TestPallasInterpret(_Tests):
    """The Pallas kernels in interpret mode: small sizes, a ragged N > one block, N below a block."""

    backends = ("pallas", "pallas_global", "pallas_triton")
    all_pairs_cases = [(1, (8, 8), np.float32, 11), (37, (2, 2, 2, 8), np.float32, 11),
                       (18, (64,), BF16, 13)]
    pairs_cases = [(7, (64,), np.float32, 13, 19), (5, (8, 8), BF16, 11, 3)]


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU")
class TestGPU(_Tests):
    """Every backend compiled on the GPU, at sizes from one latent to several thousand blocks."""

    backends = ("pallas", "pallas_global", "pallas_triton", "jnp", "auto")
    all_pairs_cases = [(n, latent, dt, steps) for n in (1, 7, 37, 130, 515)
                       for latent, dt in (((64,), np.float32), ((2, 2, 2, 8), BF16)) for steps in (11, 13)]
    pairs_cases = [(n, (8, 8), dt, steps, p) for n in (200,) for dt in (np.float32, BF16)
                   for steps in (11, 25) for p in (1, 77, 4099)]


# ---- input validation (every backend shares it) ----

@pytest.mark.parametrize("shape, dtype, match", [
    ((0, 64), np.float32, "N = 0"),
    ((4, 63), np.float32, r"shape \(N, 64\)"),
    ((4, 8, 9), np.float32, r"shape \(N, 64\)"),
    ((64,), np.float32, r"shape \(N, 64\)"),
    ((4, 2, 2, 8), np.float32, r"shape \(N, 64\)"),
    ((4, 64), np.int32, "float32 or bfloat16"),
    ((4, 64), np.float16, "float32 or bfloat16"),
])
@pytest.mark.parametrize("backend", ["jnp", "numpy", "pallas", "auto"])
def test_bad_latents_raise(shape, dtype, match, backend):
    z = np.ones(shape, dtype)
    with pytest.raises(ValueError, match=match):
        interpolate(z, backend=backend)
    with pytest.raises(ValueError, match=match):
        interpolate_pairs(z, np.zeros(1, np.int32), np.zeros(1, np.int32), backend=backend)


@pytest.mark.parametrize("steps", [1, 0, -3, 2.5, True, "11"])
def test_bad_steps_raise(steps):
    with pytest.raises(ValueError, match="steps must be an integer >= 2"):
        interpolate(np.ones((3, 64), np.float32), steps=steps)


def test_bad_backend_and_pairs_raise():
    z = np.ones((3, 8, 8), np.float32)
    ok = np.array([0, 2], np.int32)
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        interpolate(z, backend="cuda")
    with pytest.raises(ValueError, match="same shape"):
        interpolate_pairs(z, ok, ok[:1])
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        interpolate_pairs(z, ok, np.array([0, 3], np.int32))
    with pytest.raises(ValueError, match="1-D integer"):
        interpolate_pairs(z, ok.astype(np.float32), ok)
    with pytest.raises(ValueError, match="no pairs"):
        interpolate_pairs(z, ok[:0], ok[:0])
    with pytest.raises(ValueError, match="cannot be traced"):
        jax.jit(lambda z: interpolate(z, backend="numpy"))(z)


def test_pairs_under_jit_with_traced_indices():
    """The streaming pipeline calls interpolate_pairs inside jit with traced index blocks."""
    z = fresh_latents(6, (8, 8), np.float32)
    i, j = np.array([5, 0, 3], np.int32), np.array([1, 1, 4], np.int32)
    out = jax.jit(lambda z, i, j: interpolate_pairs(z, i, j, steps=4, backend="jnp"))(z, i, j)
    ref, scale = expand(z, 4)
    assert_matches(out, ref[i, j], scale[i, j], np.float32)


def test_auto_rule():
    assert auto_backend("gpu", 2 * 2) == auto_backend("gpu", 50 * 50) == "pallas_triton"
    assert auto_backend("gpu", 51 * 51) == auto_backend("gpu", 4096 * 4096) == "pallas"
    assert auto_backend("cpu", 50 * 50) == auto_backend("cpu", 4096 * 4096) == "jnp"
    assert set(BACKENDS) >= {"pallas", "pallas_global", "jnp", "numpy"}


def test_poisoned_output_is_caught():
    """The check itself fails on an output with one element left unwritten (NaN) or one off by 1 ulp-scale."""
    z = fresh_latents(4, (64,), np.float32)
    ref, scale = expand(z, 3)
    good = np.asarray(interpolation.jnp_all_pairs(jnp.asarray(z), 3))
    assert_matches(good, ref, scale, np.float32)
    for corrupt in (np.nan, good[1, 2, 1, 7] * (1 + 1e-5) + 1e-3):
        bad = good.copy()
        bad[1, 2, 1, 7] = corrupt
        with pytest.raises(AssertionError, match="1 of"):
            assert_matches(bad, ref, scale, np.float32)
