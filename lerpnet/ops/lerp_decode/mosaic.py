"""lerp_decode as one Mosaic GPU Pallas kernel: the activations stay in shared memory.

Each program (one warpgroup, one per SM) decodes an interpolant at a time, 16-grid row by row:
- act(lerp(H_i, H_j)) goes once into a slot in shared memory of 8 planes (8 x 8 x C0), each with a zero
  h row above and below it, and zero planes around them;
- up1, one 16-grid row (one output d parity of an 8-grid row, its four (h, w) parities) at a time: the
  18 views of the slot it reads (a view is 64 rows, one 8 x 8 plane, read at a row offset; its rows that
  cross the plane's w edge masked to zero, its h edge reading the zero rows), each loaded and masked
  once and multiplied by the tap weights of every parity that reads it, with synchronous MMA (mma.sync)
  from registers; the 16^3 activation is kept as 4 (h, w) parity planes of the 8-grid, zero-bordered
  in h too, for each of the last 4 16-grid rows, a ring in shared memory (rows outside the grid are zero
  slots, so up2 reads them unmasked);
- up2, whose 32-grid voxel 2x + r (x on the 16-grid, r its parity, per axis) sums A16[x + delta]
  W[2 delta - r + 2] over delta in {r - 1, r}. Along h and w an output plane (Q, r) sums over the 3
  shifts, zero weights where r skips one; along d the output is taken at y = x + r, so that
  out[2y - r] sums A16[y - 1 + e] W[2e + r] over e in {0, 1} and every r uses every shift. Up2 of 8-grid
  row m makes the 16-grid planes y = 2m, 2m + 1 from 16-grid rows 2m - 1 .. 2m + 1: each of their 48
  distinct views (plane, 8-grid shift) is read once and multiplied by the (C1 x 8) weights of each
  (output plane, tap) that reads it. That is 2.5x the useful work (the Triton kernel: 8x; with 3 shifts
  along d too, 3.4x and 10% slower) over 9 rows (past the grid, plane y = 16 holds only voxel 31 and
  y = 17 nothing); its 18 weight blocks stay in registers;
- thresholds (the threshold's logit taken off up2's bias) and writes one byte a voxel; XLA picks the
  voxels and packs bits.
A launch reads its interpolants (i, j, step) from lists and their count from an operand, so that every call
on the same latents (an all-pairs run's five programs) runs one kernel, lowered once a process and compiled
once: Mosaic GPU compiles its kernels when a program loads, in every process.
The slot's and the ring's rows are padded out of shared-memory bank conflicts and their views read with
ldmatrix: unpadded, the kernel was bound by shared-memory reads; now it is bound by latency, one warpgroup
an SM waiting on its own instructions, the most frequent of them the views' masking (results/profile/),
fewer with the zero h rows. Versions timed: results/bench_model/nvidia_h200_up2_d_taps/.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import threading

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from lerpnet import models
from lerpnet.bitpack import pack_voxels
from lerpnet.ops.common import Launch, step_weights
from lerpnet.ops.lerp_decode.common import (GRID, PARITIES, decoder_channels, decoder_params, fc_rows,
                                            up1_parity_taps)

_BF16 = jnp.bfloat16
_TAPS = tuple(itertools.product((0, 1), (-1, 0, 1), (-1, 0, 1)))  # up2's weight blocks (e_d, delta_h, delta_w)
_PLANE = 80  # rows of a plane in the slot and the ring: 8 h rows of 8 w, a zero h row above and below
_MARGIN = 8  # rows around the slot's planes -1 .. 8 (-1 and 8 zero): a view reads 1 row beyond a plane
_RING_MARGIN = 16  # rows around the ring: its views, like the slot's, read 1 row beyond a plane (8 would do)
# Rows of the lerped slot and the ring are 8 channels wider than they hold: with 32- or 64-byte rows the
# 8 rows that one MMA fragment load reads would share 8 or 4 of the 32 banks (2- or 4-way conflicts);
# with 48 or 80 bytes they fall in distinct banks
_PAD = 8
_SMEM_BYTES = 227 * 1024  # an H100 / H200 SM's shared memory for one block
# Mosaic GPU lowers no custom_jvp, so the kernel writes its activations out
ACTIVATIONS = {"relu": lambda x: jnp.maximum(x, jnp.zeros_like(x)),
               "leaky_relu": lambda x: jnp.where(x > 0, x, x * 0.01)}


@dataclasses.dataclass(frozen=True)
class MosaicLaunch(Launch):
    """`programs` persistent programs (one per SM fits the shared memory) share a kernel launch's `items`
    interpolants (each leaves the kernel as 32 KiB of bytes before XLA packs it to 4 KiB). A launch reads
    its interpolants' (i, j, step) from lists and how many there are from an operand, so every call on the
    same latents with the same steps and launch runs one kernel, whatever its pairs and steps."""

    programs: int = 132
    items: int = 8192


LAUNCH = MosaicLaunch


def default_launch(params) -> MosaicLaunch:
    """The launch `lerp_decode` runs when given none: one for every width the kernel covers (one program
    an SM, as the shared memory allows)."""
    del params
    return MosaicLaunch()


def _slot_shapes(c0: int, c1: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The lerped slot's and the ring's (rows, padded columns), rows rounded up to 64 so that a warpgroup
    zeroes them in whole vectors."""
    def rows(n):
        return -(-n // 64) * 64
    return ((rows((GRID + 2) * _PLANE + 2 * _MARGIN), c0 + _PAD),
            (rows(4 * 4 * _PLANE + 2 * _RING_MARGIN), c1 + _PAD))


def shared_memory_bytes(c0: int, c1: int) -> int:
    """up1's weights, the lerped slot and the ring of 4 16-grid activation rows (4 planes each)."""
    (slot_rows, slot_cols), (ring_rows, ring_cols) = _slot_shapes(c0, c1)
    return 2 * (64 * c0 * c1 + slot_rows * slot_cols + ring_rows * ring_cols)


def unsupported(activation: str, params) -> str:
    """Why the kernel cannot decode this model ('' when it can)."""
    if activation not in ACTIVATIONS:
        return f"the mosaic lerp_decode implements activations {', '.join(ACTIVATIONS)}; the model uses {activation!r}"
    c0, c1 = decoder_channels(params)
    if c0 % 16 or c1 % 16:
        return f"the mosaic lerp_decode needs decoder_features that are multiples of 16 (MMA tiles), got {(c0, c1)}"
    if shared_memory_bytes(c0, c1) > _SMEM_BYTES:
        return (f"the mosaic lerp_decode keeps up1's weights and the activations in shared memory: "
                f"decoder_features {(c0, c1)} need {shared_memory_bytes(c0, c1) // 1024} KiB, over an SM's "
                f"{_SMEM_BYTES // 1024} KiB")
    return ""


def on_hopper() -> bool:
    """Whether the default device is a Hopper GPU (compute capability 9.x), where the kernel is measured and
    tested (it needs TMA and an SM's 227 KiB of shared memory)."""
    return getattr(jax.devices()[0], "compute_capability", "").startswith("9.")


def _kernel_weights(params, logit) -> tuple[jax.Array, ...]:
    """w1t (8 parities, 8 taps, C1, C0) and w2t (18 taps, 8 r, C1) in bf16, stored (n, k) as MMA's
    right operand wants; b1 and b2 (the threshold's logit taken off) float32, broadcast to a tile."""
    dec = decoder_params(params)
    w1 = up1_parity_taps(params)
    w2 = dec["up2"]["kernel"][..., 0]  # (4,4,4,C1): out[2x + r] += A16[x + delta] W[2 delta - r + 2]
    # along d the output is taken at y = x + r: out[2y - r] = sum over e of A16[y - 1 + e] W[2e + r]
    zero = jnp.zeros(w2.shape[-1:], w2.dtype)
    w2t = jnp.stack([jnp.stack([w2[2 * ed + rd, 2 * dh - rh + 2, 2 * dw - rw + 2]
                                if all(0 <= s - r + 1 <= 1 for s, r in ((dh, rh), (dw, rw))) else zero
                                for rd, rh, rw in PARITIES]) for ed, dh, dw in _TAPS])
    c1 = w2.shape[-1]
    b1 = jnp.broadcast_to(dec["up1"]["bias"].astype(jnp.float32), (64, c1))
    b2 = jnp.full((64, 8), dec["up2"]["bias"][0].astype(jnp.float32) - logit)
    return jnp.swapaxes(w1, -1, -2).astype(_BF16), b1, w2t.astype(_BF16), b2


def _ops(interpret: bool):
    """(mma, load with a layout, layout cast, int32 iota with a layout); in interpret mode plain jnp.
    Loads from shared memory are `optimized` (ldmatrix where the layout allows); from global memory not."""
    if interpret:
        return ((lambda acc, a, b: acc + jnp.dot(a, b, preferred_element_type=jnp.float32)),
                (lambda ref, layout, optimized=True: ref[...]), (lambda x, layout: x),
                (lambda shape, dim, layout: jax.lax.broadcasted_iota(jnp.int32, shape, dim)))
    return (plgpu.mma,
            (lambda ref, layout, optimized=True: plgpu.load(ref, layout=layout, optimized=optimized)),
            plgpu.layout_cast,
            (lambda shape, dim, layout: plgpu.broadcasted_iota(jnp.int32, shape, dim, layout=layout)))


def _kernel(count_ref, i_ref, j_ref, s_ref, h_ref, w1_ref, b1_ref, w2_ref, b2_ref, out_ref, w1_smem, lerped, ring,
            barrier, *, steps, programs, act, interpret):
    g = jax.lax.axis_index("program")
    c1, c0 = w1_ref.shape[2:]
    lhs, rhs, acc_layout = plgpu.Layout.MMA_LHS(_BF16), plgpu.Layout.MMA_RHS(_BF16), plgpu.Layout.MMA_ACC(_BF16)
    mma, load, cast, iota = _ops(interpret)

    plgpu.copy_gmem_to_smem(w1_ref, w1_smem, barrier)
    lerped[...] = jnp.zeros(lerped.shape, lerped.dtype)
    ring[...] = jnp.zeros(ring.shape, ring.dtype)
    plgpu.barrier_wait(barrier)
    w2 = [load(w2_ref.at[k].T, rhs, optimized=False) for k in range(len(_TAPS))]  # from global memory
    b1, b2 = load(b1_ref, acc_layout, optimized=False), load(b2_ref, acc_layout, optimized=False)
    masks = {}  # per loop body (a 16-grid row): the rows of a view that stay inside the plane, by w shift

    def view(ref, start, sh, sw, cols):
        """The 64 rows of the plane whose data starts at row `start`, seen from (h + sh, w + sw) (shifts known
        when tracing): rows past its h edge are the zero rows around it, those past its w edge masked to zero."""
        a = load(ref.at[pl.ds(start + 8 * sh + sw, 64), pl.ds(0, cols)], lhs)
        if not sw:
            return a
        if (sw, cols) not in masks:
            w = (iota((64, cols), 0, lhs) & 7) + sw
            masks[sw, cols] = (w >= 0) & (w < GRID)
        return jnp.where(masks[sw, cols], a, jnp.zeros_like(a))

    def slot_start(d):
        """The first data row of plane d (-1 .. 8; -1 and 8 stay zero) of the lerped slot."""
        return _MARGIN + _PLANE * (d + 1) + 8

    def ring_start(half_row, p):
        """The first data row of plane p (2 h + w parity) of the 16-grid row `half_row` in the ring (4 slots)."""
        return _RING_MARGIN + _PLANE * (4 * (half_row % 4) + p) + 8

    def up1_half(r):
        # 16-grid row r: the output parities pd = r % 2 of 8-grid row d = r // 2; each of the 18 views they read
        # is loaded and masked once (its shifts known when tracing) into four independent MMA chains
        d, pd = r >> 1, r & 1
        masks.clear()
        accs = {hw: cast(jnp.zeros((64, c1), jnp.float32), acc_layout) for hw in itertools.product((0, 1), repeat=2)}
        for ed, sh, sw in itertools.product((0, 1), (-1, 0, 1), (-1, 0, 1)):
            a = view(lerped, slot_start(d + pd + ed - 1), sh, sw, c0)
            for (ph, pw), acc in accs.items():
                eh, ew = sh - ph + 1, sw - pw + 1
                if 0 <= eh <= 1 and 0 <= ew <= 1:
                    accs[ph, pw] = mma(acc, a, load(w1_smem.at[4 * pd + 2 * ph + pw, 4 * ed + 2 * eh + ew].T, rhs))
        for (ph, pw), acc in accs.items():
            ring[pl.ds(ring_start(r, 2 * ph + pw), 64), pl.ds(0, c1)] = act(acc + b1).astype(_BF16)

    def up2_row(item, m):
        # the output planes (y = 2m + pd along d, Q along h and w) from 16-grid rows y - 1 and y
        masks.clear()
        accs = [cast(jnp.zeros((64, 8), jnp.float32), acc_layout) for _ in PARITIES]
        for o, sh, sw in itertools.product((-1, 0, 1), (-1, 0, 1, 2), (-1, 0, 1, 2)):  # o = pd - 1 + e_d
            a = view(ring, ring_start(2 * m + o, 2 * (sh % 2) + sw % 2), sh // 2, sw // 2, c1)
            for q, (pd, qh, qw) in enumerate(PARITIES):
                ed, dh, dw = o - pd + 1, sh - qh, sw - qw
                if 0 <= ed <= 1 and -1 <= dh <= 1 and -1 <= dw <= 1:
                    accs[q] = mma(accs[q], a, w2[_TAPS.index((ed, dh, dw))])
        for q in range(len(PARITIES)):
            out_ref[item, m, q] = jnp.where(accs[q] + b2 > 0, jnp.int32(1), jnp.int32(0)).astype(jnp.int8)

    def zero_half_row(half_row):
        for p in range(4):
            ring[pl.ds(ring_start(half_row, p), 64), pl.ds(0, c1)] = jnp.zeros((64, c1), _BF16)

    def item_body(k, carry):
        item = g + k * programs
        u, t = step_weights(s_ref[item], steps)
        for d in range(GRID):  # plane by plane, between each plane's zero rows
            hi = h_ref[i_ref[item], pl.ds(64 * d, 64)].astype(jnp.float32)
            hj = h_ref[j_ref[item], pl.ds(64 * d, 64)].astype(jnp.float32)
            lerped[pl.ds(slot_start(d), 64), pl.ds(0, c0)] = act(u * hi + t * hj).astype(_BF16)

        # 16-grid row r of the activation, then (r odd) up2 of 8-grid row (r - 1) / 2, which reads 16-grid rows
        # r - 2 .. r. The ring's 4 slots hold 16-grid rows r - 3 .. r; the rows outside the grid (-1, 16, 17)
        # are zero slots: 16 and 17 zeroed before up2 of row 8, 15 after it (as -1 for the next item). The
        # first and last rows are branches of this one body: peeled copies doubled the code and its compiling.
        def row_body(r, c):
            pl.when(r < 2 * GRID)(lambda: up1_half(r))
            pl.when(r >= 2 * GRID)(lambda: zero_half_row(r))
            pl.when(r % 2 == 1)(lambda: up2_row(item, r // 2))
            pl.when(r == 2 * GRID + 1)(lambda: zero_half_row(2 * GRID - 1))
            return c

        jax.lax.fori_loop(0, 2 * GRID + 2, row_body, 0)
        return carry

    jax.lax.fori_loop(0, (count_ref[0] - g + programs - 1) // programs, item_body, 0)


def _launch(count, i, j, s, h, w1t, b1, w2t, b2, *, steps, programs, act, interpret):
    """One kernel launch: interpolants 0..count-1 of the lists (i, j, s), as bytes (items, 9 m, 8 (pd, Qh,
    Qw), 64 (mh, mw), 8 r) (`_packed` says which voxel each is); the rows from `count` on are left unwritten."""
    c0, c1 = h.shape[-1], w1t.shape[2]
    kernel = functools.partial(_kernel, steps=steps, programs=programs, act=act, interpret=interpret)
    return plgpu.kernel(
        kernel,
        out_type=jax.ShapeDtypeStruct((i.shape[0], GRID + 1, 8, 64, 8), jnp.int8),
        grid=(programs,), grid_names=("program",), kernel_name="lerp_decode",
        scratch_types=[plgpu.SMEM(w1t.shape, _BF16), *(plgpu.SMEM(shape, _BF16) for shape in _slot_shapes(c0, c1)),
                       plgpu.Barrier()],
        compiler_params=plgpu.CompilerParams(lowering_semantics=plgpu.LoweringSemantics.Lane),
        **({"interpret": plgpu.InterpretGPUParams()} if interpret else {}),
    )(count, i, j, s, h, w1t, b1, w2t, b2)


_EXPORTED_LOCK = threading.Lock()


@functools.lru_cache(maxsize=16)
def _exported_launch(operands: tuple[jax.ShapeDtypeStruct, ...], steps: int, programs: int,
                     activation: str) -> jax.export.Exported:
    """The launch lowered once a process for these operand shapes: every program that holds it (a run
    compiles several, each calling the kernel with the same operands) inlines this lowering instead of
    lowering the unrolled kernel in Python again, and all of them run one compiled kernel."""
    launch = functools.partial(_launch, steps=steps, programs=programs, act=ACTIVATIONS[activation], interpret=False)
    return jax.export.export(jax.jit(launch), platforms=("cuda",))(*operands)


def _launcher(operands: tuple, steps: int, programs: int, activation: str, interpret: bool):
    if interpret:
        return functools.partial(_launch, steps=steps, programs=programs, act=ACTIVATIONS[activation], interpret=True)
    specs = tuple(jax.ShapeDtypeStruct(x.shape, x.dtype) for x in operands)
    with _EXPORTED_LOCK:  # a program's compiles run side by side: the first lowers, the others wait for it
        return _exported_launch(specs, steps, programs, activation).call


def _packed(raw: jax.Array) -> jax.Array:
    """Bytes (items, 9 m, 8 (pd, Qh, Qw), 64 (mh, mw), 8 r) -> packed (items, 32, 32)."""
    # raw[., m, (pd, Qh, Qw), (mh, mw), (rd, rh, rw)] is voxel (2 (2 m + pd) - rd, 4 mh + 2 Qh + rh, 4 mw + 2 Qw + rw)
    r = raw.reshape(-1, 2 * (GRID + 1), 2, 2, 8, 8, 2, 2, 2)  # (., y, Qh, Qw, mh, mw, rd, rh, rw)
    d = jnp.stack([r[:, 0:2 * GRID, :, :, :, :, 0], r[:, 1:2 * GRID + 1, :, :, :, :, 1]], axis=2)
    voxels = d.transpose(0, 1, 2, 5, 3, 7, 6, 4, 8)  # (., k, rd, mh, Qh, rh, mw, Qw, rw): d = 2 k + rd
    return pack_voxels(voxels.reshape(-1, 32, 32, 32) > 0)


@functools.partial(jax.jit, static_argnames=("steps", "span", "activation", "launch", "interpret"))
def _lerp_decode(params, z, i, j, logit, *, steps: int, span: tuple[int, int], activation: str,
                 launch: MosaicLaunch, interpret: bool) -> jax.Array:
    h = fc_rows(params, z).astype(_BF16)
    h = h.reshape(h.shape[0], GRID ** 3, h.shape[-1])
    weights = _kernel_weights(params, logit)
    first, stop = span
    count, p = stop - first, i.shape[0]
    # the interpolants (i, j, step), pair by pair, cut into launches of `launch.items` (the last one partly used)
    total = p * count
    launches = -(-total // launch.items)
    lists = [jnp.pad(x, (0, launches * launch.items - total)).reshape(launches, launch.items)
             for x in (jnp.repeat(i, count), jnp.repeat(j, count), jnp.tile(jnp.arange(first, stop, dtype=jnp.int32), p))]
    used = jnp.minimum(total - launch.items * jnp.arange(launches, dtype=jnp.int32), launch.items)[:, None]
    operands = (used[0], *(x[0] for x in lists), h, *weights)
    run = _launcher(operands, steps, launch.programs, activation, interpret)
    packed = jax.lax.map(lambda a: _packed(run(*a, h, *weights)), (used, *lists))
    return packed.reshape(-1, 32, 32)[:total].reshape(p, count, 32, 32)


def lerp_decode(model: models.Autoencoder, params, z, i, j, *, steps: int, span: tuple[int, int], logit: float,
                launch: MosaicLaunch, interpret: bool = False) -> jax.Array:
    """Packed (P, stop - first, 32, 32); ValueError when the kernel does not cover the model. `launch`:
    the caller's, or `default_launch(params)` as `api.resolve_launch` picks it."""
    reason = unsupported(model.config.activation, params)
    if reason:
        raise ValueError(reason)
    return _lerp_decode(params, z, i, j, logit, steps=steps, span=span, activation=model.config.activation,
                        launch=launch, interpret=interpret)
