"""What both ops share: input checks, the row layout and its padding, step weights, launch checks, interpret settings.

Every interpolation kernel works on latents flattened to rows of 64 numbers (one 8x8 tile each).
Ragged sizes are handled without masks: a block's start is clamped to `n - block`, so the last block
overlaps its neighbour and rewrites a few outputs with identical values, and nothing is read or
written out of bounds. Inputs with fewer rows than one block are padded (the output is tiny then)
and sliced back.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from jax.experimental.pallas import mosaic_gpu as plgpu

LATENT_SIZE = 64
LATENT_SHAPES = ((64,), (8, 8), (2, 2, 2, 8))
DTYPES = (np.dtype(np.float32), np.dtype(ml_dtypes.bfloat16))


def check_latents(z: Any) -> tuple[int, tuple[int, ...]]:
    """(N, latent shape) of a valid latent array; ValueError naming what is wrong otherwise."""
    shape, dtype = getattr(z, "shape", None), getattr(z, "dtype", None)
    if shape is None or dtype is None:
        raise ValueError(f"z must be an array of latents, got {type(z).__name__}")
    if len(shape) < 2 or tuple(shape[1:]) not in LATENT_SHAPES:
        raise ValueError(f"z must have shape (N, 64), (N, 8, 8) or (N, 2, 2, 2, 8), got {tuple(shape)}")
    if shape[0] == 0:
        raise ValueError("z holds no latents (N = 0); interpolation needs at least one")
    if np.dtype(dtype) not in DTYPES:
        raise ValueError(f"z must be float32 or bfloat16, got {np.dtype(dtype)}")
    return shape[0], tuple(shape[1:])


def check_steps(steps: Any) -> None:
    if not isinstance(steps, int | np.integer) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2 (t runs from 0 to 1 inclusive), got {steps!r}")


def check_pairs(i: Any, j: Any, n: int) -> int:
    """P of valid pair index arrays i, j; checked against N where they are concrete (not traced)."""
    for name, idx in (("i", i), ("j", j)):
        if not hasattr(idx, "shape"):
            raise ValueError(f"{name} must be an integer index array, got {type(idx).__name__}")
        if len(idx.shape) != 1 or not np.issubdtype(np.dtype(idx.dtype), np.integer):
            raise ValueError(f"{name} must be a 1-D integer array, got shape {tuple(idx.shape)} dtype {idx.dtype}")
        if not isinstance(idx, jax.core.Tracer) and idx.shape[0] and not 0 <= int(np.min(idx)) <= int(np.max(idx)) < n:
            raise ValueError(f"{name} holds indices outside [0, {n}) for N = {n} latents")
    if i.shape != j.shape:
        raise ValueError(f"i and j must have the same shape, got {tuple(i.shape)} and {tuple(j.shape)}")
    if i.shape[0] == 0:
        raise ValueError("no pairs given (i and j are empty)")
    return i.shape[0]


@dataclasses.dataclass(frozen=True)
class Launch:
    """Base of the kernels' frozen launch dataclasses (tokamax style): validated on construction,
    every field a positive integer and those in `powers_of_two` powers of two (Triton's arrays)."""

    powers_of_two: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def parse(cls, items: list[str]):
        """The launch from "knob=integer" strings (a command line's), naming a bad item before any work."""
        knobs = {f.name for f in dataclasses.fields(cls)}
        launch = {}
        for item in items:
            key, _, value = item.partition("=")
            if key not in knobs or not value.isdigit():
                raise ValueError(f"launch item {item!r} is not k=<integer> for k in {', '.join(sorted(knobs))}")
            launch[key] = int(value)
        return cls(**launch)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            where = f"{type(self).__name__}.{field.name}"
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{where} must be a positive integer, got {value!r}")
            if field.name in self.powers_of_two and value & (value - 1):
                raise ValueError(f"{where} must be a power of two, got {value}")


def pad_rows(z: jax.Array, rows: int) -> jax.Array:
    """`z` with zero rows appended up to `rows` rows (no-op when it already has that many)."""
    return jnp.pad(z, ((0, max(rows - z.shape[0], 0)), (0, 0)))


def one_block(launch: Launch, n: int) -> int:
    """Rows an all-pairs input needs when ragged N is clamped, not padded: one i block and one j block."""
    return max(launch.block_i, launch.block_j)


def one_pairs_block(launch: Launch, p: int) -> int:
    """Rows a chosen-pairs input needs: one block of pairs."""
    return launch.pairs_block


def padded_kernel(launch_type: type[Launch], rows: Callable[[Launch, int], int]):
    """Decorator turning a kernel body into a kernel module's public `all_pairs` / `pairs`.

    The body `body(*arrays, steps=, launch=, interpret=)` gets its (R, 64) row arrays zero-padded to
    `rows(launch, R)` rows and returns the padded output; the public function (jitted with steps,
    launch and interpret static, `launch` defaulting to `launch_type()`) slices every row axis back
    to R: the first two of all pairs' (N, N, steps, 64), the first of chosen pairs' (P, steps, 64).
    """

    def decorate(body: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
        def kernel(*arrays: jax.Array, steps: int, launch: Launch = launch_type(), interpret: bool = False):
            size = arrays[0].shape[0]
            out = body(*(pad_rows(x, rows(launch, size)) for x in arrays), steps=steps, launch=launch,
                       interpret=interpret)
            return out[(slice(0, size),) * (out.ndim - 2)]

        for name in ("__module__", "__name__", "__qualname__", "__doc__"):  # not __wrapped__: jit reads the signature
            setattr(kernel, name, getattr(body, name))
        return jax.jit(kernel, static_argnames=("steps", "launch", "interpret"))

    return decorate


def clamped_start(axis_name: str, block: int, n: int) -> jax.Array:
    """First row of this program's block along a grid axis, clamped so the block ends inside `n`."""
    return jnp.minimum(jax.lax.axis_index(axis_name) * block, n - block)


def step_weights(s: jax.Array | int, steps: int) -> tuple[jax.Array, jax.Array]:
    """(1 - t_s, t_s) for t_s = s / (steps - 1), each a correctly rounded float32 quotient.

    Computing 1 - t_s as (steps - 1 - s) / (steps - 1) rather than 1 - float32(t_s) keeps the small
    weight near t = 1 accurate to half an ulp (1 - t would carry t's absolute rounding error).
    """
    last = jnp.float32(steps - 1)
    s = jnp.asarray(s, jnp.float32)
    return (last - s) / last, s / last


def interpret_off_gpu() -> bool:
    """Whether a Pallas kernel must run in interpret mode: everywhere but on a GPU (tests on the CPU)."""
    return jax.default_backend() != "gpu"


def mosaic_interpret(interpret: bool) -> plgpu.InterpretGPUParams | None:
    """Mosaic GPU interpret settings: simulated SMEM/TMA on the CPU, fresh buffers filled with NaN
    (so an output the kernel forgets to write fails the check) and out-of-bounds reads raising."""
    if not interpret:
        return None
    return plgpu.InterpretGPUParams(uninitialized_memory="nan", out_of_bounds_reads="raise")
