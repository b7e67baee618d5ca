"""lerp_decode as one Triton-lowered Pallas kernel: bf16 dots with float32 accumulation, packed bits out.

Each program owns an interpolant at a time: it lerps the two rows of H = fc(z) once into a
zero-bordered 10^3 slot, runs up1 as eight exact per-parity dots over shifted views of it, keeps
the 16^3 activation in a per-program scratch slot (global memory, in a parity-plane layout), loads
each of up2's 64 shifted views of it once, the 8 views of a plane one after another (10% faster
at the study's widths than the views in shift order), and dots it with the weights of every output
phase that reads it, then thresholds (the threshold's logit is taken off up2's bias) and packs in
registers.
A persistent grid of `programs` programs loops over the items; the item count is read at run time,
so one compiled kernel serves every N.

Channel counts come from the weights: any decoder_features (C0, C1) of powers of two >= 16
(Triton's arrays are powers of two, its dots need dimensions >= 16), e.g. the study's (16, 32) and
configs/modelnet_chairs.py:wide_decoder's (64, 64).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from lerpnet import models
from lerpnet.ops.common import Launch, step_weights
from lerpnet.ops.lerp_decode.common import GRID, PARITIES, decoder_channels, decoder_params, fc_rows, up1_parity_taps

ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu")  # those the kernel applies (models.ACTIVATIONS)


def _view_digit(b, q):
    """Per axis, up2's view of plane q' at 8-grid shift c = b - q' (b = 0, 1): its digit 0..3."""
    return 2 * b + 1 - q


# up2 reads the 16^3 activation at 16-grid offsets that, in the parity-plane layout the kernel keeps
# (plane q' of the 8^3 grid holds 16-grid positions 2u + q'), are (8-grid shift c, plane q') per axis,
# listed by view digit: ((-1, 1), (0, 0), (0, 1), (1, 0))
_VIEWS = tuple(view for _, view in sorted((_view_digit(b, q), (b - q, q)) for b in (0, 1) for q in (0, 1)))


@dataclasses.dataclass(frozen=True)
class TritonLaunch(Launch):
    """Launch shape: `programs` persistent programs of `num_warps` warps; up1 in slabs of `up1_rows`
    and up2 in slabs of `rows` 8-grid rows (smaller slabs: smaller accumulators, fewer registers);
    `num_stages` software-pipelines the tap and view loops.

    The defaults are the fastest launch measured on an H100 and an H200 for the study's widths
    (results/bench_model/README.md): 255 registers a thread, so 2 programs (8 warps) share an SM and
    loads wait (Nsight Compute); smaller slabs free registers but ran slower. `default_launch` picks
    the launch measured fastest for a model's widths.
    """

    powers_of_two: ClassVar[tuple[str, ...]] = ("rows", "up1_rows", "num_warps")
    programs: int = 528
    rows: int = 4
    up1_rows: int = 8
    num_warps: int = 4
    num_stages: int = 1

    def __post_init__(self):
        super().__post_init__()
        if GRID % self.rows or GRID % self.up1_rows:
            raise ValueError(f"TritonLaunch.rows and up1_rows must divide {GRID}, got {self.rows} and {self.up1_rows}")


LAUNCH = TritonLaunch
# The fastest launch the benchmark's sweep measured for each decoder width (C0, C1) (benchmarks.bench_model,
# launch_sweep; results/bench_model/README.md); other widths take the class defaults. At (64, 64) an up1
# slab of 8 rows spills its accumulator to local memory; slabs of 4 run the kernel 1.9x faster.
MEASURED_LAUNCHES: dict[tuple[int, int], TritonLaunch] = {(16, 32): TritonLaunch(), (64, 64): TritonLaunch(up1_rows=4)}


def default_launch(params) -> TritonLaunch:
    """The launch `lerp_decode` runs when given none: the measured fastest for the decoder's widths."""
    return MEASURED_LAUNCHES.get(decoder_channels(params), TritonLaunch())


def unsupported(activation: str, params) -> str:
    """Why the kernel cannot decode this model ('' when it can)."""
    if activation not in ACTIVATIONS:
        return f"the triton lerp_decode implements activations {', '.join(ACTIVATIONS)}; the model uses {activation!r}"
    channels = decoder_channels(params)
    if any(c < 16 or c & (c - 1) for c in channels):
        return (f"the triton lerp_decode needs decoder_features that are powers of two >= 16 (Triton arrays "
                f"and dots), got {channels}")
    return ""


def _up2_selector() -> np.ndarray:
    """sel[v, m, k] = 1 where up2's output phase m (= 2p + q within a 4-voxel block of the 32-grid)
    reads view v through tap k = q + 2e: source 16-grid offset p + q + e - 1 = 2c + q' (per axis)."""
    sel = np.zeros((4, 4, 4), np.float32)
    for p, q, e in itertools.product((0, 1), repeat=3):
        src = p + q + e - 1
        sel[_VIEWS.index((src // 2, src % 2)), 2 * p + q, q + 2 * e] = 1.0
    return sel


def _kernel_weights(params, logit) -> tuple[jax.Array, ...]:
    """The transposed-conv kernels regrouped for the kernel's dots (bf16), the biases (float32).

    w1: (8 parities, 8 taps, C0, C1); w2: (64 views, C1, 64 output phases); b2 has the threshold's
    logit taken off, so a voxel is on where the accumulated logit + b2 > 0.
    """
    dec = decoder_params(params)
    w1 = up1_parity_taps(params)
    sel = _up2_selector()
    w2 = jnp.einsum("amk,bnl,cop,klpi->abcimno", sel, sel, sel, dec["up2"]["kernel"][..., 0])
    b2 = jnp.broadcast_to(dec["up2"]["bias"].astype(jnp.float32) - logit, (64,))
    return (w1.astype(jnp.bfloat16), dec["up1"]["bias"].astype(jnp.float32),
            w2.reshape(64, w1.shape[-1], 64).astype(jnp.bfloat16), b2)


def _bits3(idx, width: int):
    """Index -> per-axis digits (d, h, w) in base 2**width; works on Python ints and traced int32."""
    mask = (1 << width) - 1
    return idx >> (2 * width), (idx >> width) & mask, idx & mask


def _kernel(n_ref, i_ref, j_ref, h_ref, w1_ref, b1_ref, w2_ref, b2_ref, _scratch_in, _lerped_in, out_ref,
            scratch_ref, lerped_ref, *, steps, first, count, act, launch, interpret):
    g = pl.program_id(0)
    programs, rows, up1_rows = launch.programs, launch.rows, launch.up1_rows
    c0, c1 = w1_ref.shape[-2:]
    cols = w2_ref.shape[-1]  # the 64 output phases of a 4^3 voxel block of the 32-grid
    n8 = GRID
    # bit (4*uw + mw) of output word [.., (ud, uh), (jd, jh)] holds output voxel z = 4*uw + mw
    r = jax.lax.broadcasted_iota(jnp.int32, (rows * n8 * n8, cols), 0)
    c = jax.lax.broadcasted_iota(jnp.int32, (rows * n8 * n8, cols), 1)
    shift = (4 * (r & (n8 - 1)) + (c & 3)).astype(jnp.uint32)
    barrier = (lambda: None) if interpret else pltriton.debug_barrier

    def item_body(k, carry):
        item = g + k * programs
        pair, s = jax.lax.div(item, count), first + jax.lax.rem(item, count)
        u, t = step_weights(s, steps)
        zi, zj = i_ref[pair], j_ref[pair]

        # act(lerp(H_i, H_j)) once, into the interior of the program's zero-bordered 10^3 slot
        inner = (pl.ds(1, n8),) * 3 + (slice(None),)
        hi = h_ref[zi].astype(jnp.float32)
        hj = h_ref[zj].astype(jnp.float32)
        lerped_ref[(g, *inner)] = act(u * hi + t * hj).astype(lerped_ref.dtype)
        barrier()

        # up1: per output parity and slab of `up1_rows` 8-grid rows, eight taps over shifted views of
        # the lerped slot (a slab keeps the accumulator, and so the registers per thread, small).
        m1 = up1_rows * n8 * n8

        def up1_parity(k, carry):
            pidx, r0 = jax.lax.div(k, n8 // up1_rows), jax.lax.rem(k, n8 // up1_rows) * up1_rows
            pd, ph, pw = _bits3(pidx, 1)

            def tap(eidx, acc):
                ed, eh, ew = _bits3(eidx, 1)
                view = (pl.ds(pd + ed + r0, up1_rows), pl.ds(ph + eh, n8), pl.ds(pw + ew, n8), slice(None))
                x = lerped_ref[(g, *view)].reshape(m1, c0)
                return acc + jnp.dot(x, w1_ref[pidx, eidx], preferred_element_type=jnp.float32)

            acc = jax.lax.fori_loop(0, 8, tap, jnp.zeros((m1, c1), jnp.float32))
            a = act(acc + b1_ref[...][None, :]).astype(scratch_ref.dtype)
            scratch_ref[g, pidx, pl.ds(1 + r0, up1_rows), pl.ds(1, n8), pl.ds(1, n8), :] = a.reshape(up1_rows, n8, n8, c1)
            return carry

        jax.lax.fori_loop(0, 8 * (n8 // up1_rows), up1_parity, 0)
        barrier()

        # up2 for `rows` 8-grid slabs: each shifted view of the activation is loaded once and feeds
        # one dot giving all 64 output phases.
        def up2_slab(slab, carry):
            r0 = slab * rows

            # plane-major: the 8 views of one activation plane follow each other (per axis, plane q'
            # is read at 8-grid shifts c = b - q' for b = 0, 1)
            def plane(pidx, acc):
                qd, qh, qw = _bits3(pidx, 1)
                for bd, bh, bw in PARITIES:
                    v = scratch_ref[g, pidx, pl.ds(1 + bd - qd + r0, rows), pl.ds(1 + bh - qh, n8),
                                    pl.ds(1 + bw - qw, n8), :].reshape(rows * n8 * n8, c1)
                    view = 16 * _view_digit(bd, qd) + 4 * _view_digit(bh, qh) + _view_digit(bw, qw)
                    acc = acc + jnp.dot(v, w2_ref[view], preferred_element_type=jnp.float32)
                return acc

            acc = jax.lax.fori_loop(0, 8, plane, jnp.zeros((rows * n8 * n8, cols), jnp.float32))
            bits = ((acc + b2_ref[...][None, :]) > 0).astype(jnp.uint32) << shift
            words = jnp.sum(bits.reshape(rows * n8, n8, cols), axis=1, dtype=jnp.uint32)
            words = jnp.sum(words.reshape(rows * n8, cols // 4, 4), axis=2, dtype=jnp.uint32)
            out_ref[item, pl.ds(r0 * n8, rows * n8), :] = words
            return carry

        jax.lax.fori_loop(0, n8 // rows, up2_slab, 0)
        barrier()  # the next item overwrites the scratch slot this one just read
        return carry

    jax.lax.fori_loop(0, jax.lax.div(n_ref[0] - g + programs - 1, programs), item_body, 0)


@functools.partial(jax.jit, static_argnames=("steps", "span", "activation", "launch", "interpret"))
def _lerp_decode(params, z, i, j, logit, *, steps: int, span: tuple[int, int], activation: str,
                 launch: TritonLaunch, interpret: bool) -> jax.Array:
    h = fc_rows(params, z).astype(jnp.bfloat16)
    w1, b1, w2, b2 = _kernel_weights(params, logit)
    c1 = w1.shape[-1]
    first, stop = span
    total = i.shape[0] * (stop - first)
    slot = (GRID + 2,) * 3
    scratch = jnp.zeros((launch.programs, 8, *slot, c1), jnp.bfloat16)
    lerped = jnp.zeros((launch.programs, *slot, h.shape[-1]), jnp.bfloat16)
    kernel = functools.partial(_kernel, steps=steps, first=first, count=stop - first,
                               act=models.ACTIVATIONS[activation], launch=launch, interpret=interpret)
    words, _, _ = pl.pallas_call(
        kernel,
        out_shape=(jax.ShapeDtypeStruct((total, GRID * GRID, 16), jnp.uint32),
                   jax.ShapeDtypeStruct(scratch.shape, scratch.dtype), jax.ShapeDtypeStruct(lerped.shape, lerped.dtype)),
        grid=(launch.programs,),
        input_output_aliases={8: 1, 9: 2},
        compiler_params=None if interpret else pltriton.CompilerParams(num_warps=launch.num_warps,
                                                                       num_stages=launch.num_stages),
        interpret=interpret,
        name="lerp_decode",
    )(jnp.full((1,), total, jnp.int32), i.astype(jnp.int32), j.astype(jnp.int32), h, w1, b1, w2, b2, scratch, lerped)
    # words [item, (ud, uh), (jd, jh)] -> packed [item, x = 4 ud + jd, y = 4 uh + jh]
    words = words.reshape(-1, stop - first, GRID, GRID, 4, 4).transpose(0, 1, 2, 4, 3, 5)
    return words.reshape(-1, stop - first, 32, 32)


def lerp_decode(model: models.Autoencoder, params, z, i, j, *, steps: int, span: tuple[int, int], logit: float,
                launch: TritonLaunch, interpret: bool = False) -> jax.Array:
    """Packed (P, stop - first, 32, 32); ValueError when the kernel does not cover the model. `launch`:
    the caller's, or `default_launch(params)` as `api.resolve_launch` picks it."""
    reason = unsupported(model.config.activation, params)
    if reason:
        raise ValueError(reason)
    return _lerp_decode(params, z, i, j, logit, steps=steps, span=span, activation=model.config.activation,
                        launch=launch, interpret=interpret)
