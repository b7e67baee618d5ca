"""Interpolate-and-decode in one pass: latents and pairs in, bit-packed 32^3 shapes out.

The decoder's first layer is affine, so fc((1-t) z_i + t z_j) = (1-t) fc(z_i) + t fc(z_j): H = fc(z)
is computed once per shape (N x 8192, one small matmul), and each interpolant starts from a lerp of
two rows of H. Everything after that -- activation, the two stride-2 transposed convolutions,
the threshold and the bit-packing (lerpnet.bitpack's layout) -- runs per block of interpolants, and
only 4 KiB per shape is written.

`lerp_decode_all_pairs` gives Algorithm 1's every-ordered-pair result decoding each distinct shape
once (2.5x fewer decodes at N = 50).

Backends (one `backend=` argument, as in lerpnet.interpolation):
- "pallas": one Triton kernel (below). Each program owns an interpolant at a time: it lerps the
  two H rows once into a zero-bordered slot, runs up1 as eight exact per-parity bf16 dots over
  shifted views of it, keeps the 16^3 activation in a per-program scratch slot (global memory),
  loads each of up2's 64 shifted views of it once and dots it with the weights of the output-phase
  groups that read it, then thresholds and packs in registers. A persistent grid of `programs`
  programs loops over the items.
- "xla": the same math in one jit (sub-pixel convolutions from lerpnet.models, chunked with
  `lax.map`); the fast non-Pallas formulation and the Pallas kernel's correctness reference.
- "reference": the unfused path -- materialise the interpolated latents, `Autoencoder.decode`,
  threshold, `pack_voxels`. Slow, plain, the definition of the result.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from lerpnet import models
from lerpnet.ops.lerp import api as interpolation
from lerpnet.bitpack import pack_voxels
from lerpnet.ops.common import step_weights

BACKENDS = ("pallas", "xla", "reference")
_GRID = 8  # the decoder's first spatial grid (8^3); up1 -> 16^3, up2 -> 32^3
# up2 reads the 16^3 activation at 16-grid offsets that, in the parity-plane layout the kernel keeps
# (plane q' of the 8^3 grid holds 16-grid positions 2u + q'), are (8-grid shift c, plane q') per axis:
_VIEWS = ((-1, 1), (0, 0), (0, 1), (1, 0))
_PARITIES = tuple(itertools.product((0, 1), repeat=3))


def _decoder(params) -> dict:
    dec = params["params"]["decoder"]
    k = dec["up1"]["kernel"].shape[0]
    if k != 4 or dec["up2"]["kernel"].shape[-1] != 1:
        raise ValueError(f"the fused decoder needs kernel size 4 and 1 output channel, got kernel {k}")
    return dec


def _step_span(steps: int, step_range: tuple[int, int] | None) -> tuple[int, int]:
    """(first, stop) of the steps to decode: all of them, or `step_range` checked against `steps`."""
    first, stop = step_range or (0, steps)
    if not 0 <= first < stop <= steps:
        raise ValueError(f"step_range must satisfy 0 <= first < stop <= steps={steps}, got {step_range}")
    return first, stop


def fc_rows(params, z: jax.Array) -> jax.Array:
    """H = fc(z) before the activation: (N, 8, 8, 8, C0) float32, lerped per interpolant."""
    dec = _decoder(params)
    n = z.shape[0]
    h = z.reshape(n, -1).astype(jnp.float32) @ dec["fc"]["kernel"] + dec["fc"]["bias"]
    return h.reshape(n, _GRID, _GRID, _GRID, -1)


# ---------------------------------------------------------------------------------------------
# "reference" and "xla"


def lerp_decode_reference(model: models.Autoencoder, params, z, i, j, *, steps: int = 11,
                          step_range: tuple[int, int] | None = None) -> jax.Array:
    """Unfused: interpolated latents -> Autoencoder.decode -> logits > 0 -> packed (P, steps, 32, 32)."""
    first, stop = _step_span(steps, step_range)
    lat = interpolation.interpolate_pairs(z.astype(jnp.float32), i, j, steps=steps, backend="jnp")[:, first:stop]
    logits = model.apply(params, lat.reshape(-1, *z.shape[1:]), method=models.Autoencoder.decode)
    return pack_voxels(logits > 0).reshape(len(i), stop - first, 32, 32)


@functools.partial(jax.jit, static_argnames=("steps", "step_range", "activation", "dtype", "chunk"))
def lerp_decode_xla(params, z, i, j, *, steps: int = 11, step_range: tuple[int, int] | None = None,
                    activation: str = "relu", dtype=jnp.bfloat16, chunk: int = 256) -> jax.Array:
    """Fused lerp + decode + threshold + pack in one jit, `chunk` pairs at a time."""
    dec = _decoder(params)
    act = models.ACTIVATIONS[activation]
    h = fc_rows(params, z)
    first, stop = _step_span(steps, step_range)
    u, t = (w[None, :, None, None, None, None] for w in step_weights(jnp.arange(first, stop), steps))
    p = i.shape[0]
    pad = -p % chunk
    ij = jnp.stack([jnp.pad(i, (0, pad)), jnp.pad(j, (0, pad))], -1).reshape(-1, chunk, 2)

    def one_chunk(ij_c):
        x = act(u * h[ij_c[:, 0]][:, None] + t * h[ij_c[:, 1]][:, None])
        x = x.reshape(-1, *h.shape[1:]).astype(dtype)
        for name in ("up1", "up2"):
            kernel = dec[name]["kernel"].astype(dtype)
            x = models.subpixel_conv_transpose(x, kernel, 2) + dec[name]["bias"].astype(dtype)
            x = act(x) if name == "up1" else x
        return pack_voxels(x[..., 0] > 0).reshape(chunk, stop - first, 32, 32)

    return jax.lax.map(one_chunk, ij).reshape(-1, stop - first, 32, 32)[:p]


# ---------------------------------------------------------------------------------------------
# "pallas"


def _up2_selector() -> np.ndarray:
    """sel[v, m, k] = 1 where up2's output phase m (= 2p + q within a 4-voxel block of the 32-grid)
    reads view v through tap k = q + 2e: source 16-grid offset p + q + e - 1 = 2c + q' (per axis)."""
    sel = np.zeros((4, 4, 4), np.float32)
    for p, q, e in itertools.product((0, 1), repeat=3):
        src = p + q + e - 1
        sel[_VIEWS.index((src // 2, src % 2)), 2 * p + q, q + 2 * e] = 1.0
    return sel


def _group_views(split: int) -> list[tuple[int, ...]]:
    """Per phase group along one axis (`split` groups of 4 // split phases): the views it reads."""
    used = _up2_selector().any(axis=2)  # (view, phase)
    size = 4 // split
    return [tuple(int(v) for v in np.flatnonzero(used[:, h * size:(h + 1) * size].any(axis=1)))
            for h in range(split)]


def _pallas_weights(params, split: int):
    """Regroup the transposed-conv kernels for the kernel's dots (bf16).

    up2's weights are (split^2 phase groups, 64 views, C1, 64 / split^2 phases): the output phases
    along d and h are cut into `split` groups each, so a group's dot skips the views it never reads.
    """
    dec = _decoder(params)
    w1 = dec["up1"]["kernel"]  # (4,4,4,C0,C1); parity p, tap e use W[p + 2e] per axis
    w1 = jnp.stack([jnp.stack([w1[pd + 2 * ed, ph + 2 * eh, pw + 2 * ew] for ed, eh, ew in _PARITIES])
                    for pd, ph, pw in _PARITIES])  # (8 parities, 8 taps, C0, C1)
    sel = _up2_selector()
    w2 = jnp.einsum("amk,bnl,cop,klpi->abcimno", sel, sel, sel, dec["up2"]["kernel"][..., 0])
    c1, size = w1.shape[-1], 4 // split
    # phases (md, mh, mw) -> (group hd, jd), (group hh, jh), mw
    w2 = w2.reshape(64, c1, split, size, split, size, 4).transpose(2, 4, 0, 1, 3, 5, 6)
    return dict(w1=w1.astype(jnp.bfloat16), b1=dec["up1"]["bias"].astype(jnp.float32),
                w2=w2.reshape(split * split, 64, c1, size * size * 4).astype(jnp.bfloat16),
                b2=jnp.broadcast_to(dec["up2"]["bias"].astype(jnp.float32), (size * size * 4,)))


def _bits3(idx, width: int):
    """Index -> per-axis digits (d, h, w) in base 2**width; works on Python ints and traced int32."""
    mask = (1 << width) - 1
    return idx >> (2 * width), (idx >> width) & mask, idx & mask


def _view(x):
    """up2 view digit x in 0..3 -> (8-grid shift c, source plane q'), the order of _VIEWS."""
    return ((x + 1) >> 1) - 1, 1 - (x & 1)


def _accumulate(body, count: int, acc, pipelined: bool):
    """acc = body(k, acc) for k < count: a Triton loop (software-pipelined by num_stages) or unrolled."""
    if pipelined:
        return jax.lax.fori_loop(0, count, body, acc)
    for k in range(count):
        acc = body(k, acc)
    return acc


def _fused_kernel(n_ref, i_ref, j_ref, h_ref, w1_ref, b1_ref, w2_ref, b2_ref, _scratch_in, _lerped_in, out_ref,
                  scratch_ref, lerped_ref, *, steps, first, count, programs, rows, up1_rows, split, pipelined, stages,
                  interpret):
    # The item count is read at run time, not baked in, so one compiled kernel serves every N.
    g = pl.program_id(0)
    c0, c1 = w1_ref.shape[-2:]
    cols = w2_ref.shape[-1]  # phases per group: (4 // split)^2 x 4
    n8 = _GRID
    groups = [(hd, hh) for hd in range(split) for hh in range(split)]
    views = _group_views(split)
    # bit (4*uw + mw) of output word [.., (ud, uh), group, (jd, jh)] holds output voxel z = 4*uw + mw
    r = jax.lax.broadcasted_iota(jnp.int32, (rows * n8 * n8, cols), 0)
    c = jax.lax.broadcasted_iota(jnp.int32, (rows * n8 * n8, cols), 1)
    shift = (4 * (r & (n8 - 1)) + (c & 3)).astype(jnp.uint32)
    barrier = (lambda: None) if interpret else pltriton.debug_barrier

    def item_body(k, carry):
        item = g + k * programs
        pair, s = jax.lax.div(item, count), first + jax.lax.rem(item, count)
        u, t = step_weights(s, steps)
        zi, zj = i_ref[pair], j_ref[pair]

        # relu(lerp(H_i, H_j)) once, into the interior of the program's zero-bordered 10^3 slot
        inner = (pl.ds(1, n8),) * 3 + (slice(None),)
        hi = h_ref[zi].astype(jnp.float32)
        hj = h_ref[zj].astype(jnp.float32)
        lerped_ref[(g, *inner)] = jnp.maximum(u * hi + t * hj, 0.0).astype(lerped_ref.dtype)
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

            acc = _accumulate(tap, 8, jnp.zeros((m1, c1), jnp.float32), pipelined)
            a = jnp.maximum(acc + b1_ref[...][None, :], 0.0).astype(scratch_ref.dtype)
            scratch_ref[g, pidx, pl.ds(1 + r0, up1_rows), pl.ds(1, n8), pl.ds(1, n8), :] = a.reshape(up1_rows, n8, n8, c1)
            return carry

        if "up1" in stages:
            jax.lax.fori_loop(0, 8 * (n8 // up1_rows), up1_parity, 0)
        barrier()

        # up2 for `rows` 8-grid slabs: each shifted view of the activation is loaded once and feeds
        # one dot per phase group that reads it (all 64 phases at once when split = 1).
        def up2_slab(slab, carry):
            r0 = slab * rows
            accs = tuple(jnp.zeros((rows * n8 * n8, cols), jnp.float32) for _ in groups)
            for vd, vh in itertools.product(range(4), repeat=2):
                (cd, qd), (ch, qh) = _view(vd), _view(vh)
                readers = [gi for gi, (hd, hh) in enumerate(groups) if vd in views[hd] and vh in views[hh]]

                def view(vw, accs, vd=vd, vh=vh, cd=cd, qd=qd, ch=ch, qh=qh, readers=readers):
                    cw, qw = _view(vw)
                    v = scratch_ref[g, 4 * qd + 2 * qh + qw, pl.ds(1 + cd + r0, rows), pl.ds(1 + ch, n8),
                                    pl.ds(1 + cw, n8), :].reshape(rows * n8 * n8, c1)
                    accs = list(accs)
                    for gi in readers:
                        w = w2_ref[gi, 16 * vd + 4 * vh + vw]
                        accs[gi] = accs[gi] + jnp.dot(v, w, preferred_element_type=jnp.float32)
                    return tuple(accs)

                accs = _accumulate(view, 4, accs, pipelined)
            for gi, acc in enumerate(accs):
                bits = ((acc + b2_ref[...][None, :]) > 0).astype(jnp.uint32) << shift
                words = jnp.sum(bits.reshape(rows * n8, n8, cols), axis=1, dtype=jnp.uint32)
                words = jnp.sum(words.reshape(rows * n8, cols // 4, 4), axis=2, dtype=jnp.uint32)
                out_ref[item, pl.ds(r0 * n8, rows * n8), gi, :] = words
            return carry

        if "up2" in stages:
            jax.lax.fori_loop(0, n8 // rows, up2_slab, 0)
        barrier()  # the next item overwrites the scratch slot this one just read
        return carry

    jax.lax.fori_loop(0, jax.lax.div(n_ref[0] - g + programs - 1, programs), item_body, 0)


@functools.partial(jax.jit, static_argnames=("steps", "step_range", "programs", "rows", "up1_rows", "split",
                                             "pipelined", "num_warps", "num_stages", "stages", "interpret"))
def lerp_decode_pallas(params, z, i, j, *, steps: int = 11, step_range: tuple[int, int] | None = None,
                       programs: int = 528, rows: int = 4, up1_rows: int = 8, split: int = 1,
                       pipelined: bool = True, num_warps: int = 4, num_stages: int = 1,
                       stages: tuple[str, ...] = ("up1", "up2"), interpret: bool = False) -> jax.Array:
    """The fused Triton kernel: relu activation, bf16 dots with float32 accumulation.

    Launch shape: `programs` persistent programs of `num_warps` warps; up1 in slabs of `up1_rows`
    and up2 in slabs of `rows` 8-grid rows (smaller slabs: smaller accumulators, fewer registers);
    up2's 64 output phases cut into split^2 groups (split = 2: 4.5x the useful up2 FLOPs instead of
    8x, same loads); `pipelined` makes the tap/view loops Triton loops that `num_stages`
    software-pipelines instead of unrolled code (seconds to compile instead of a minute). The defaults
    are the fastest launch measured on an H100 (results/perf/README.md, runs 4-6). It holds 255
    registers a thread, so 2 programs (8 warps) share an SM and loads wait (ncu, run 5); smaller
    slabs free registers but ran slower, and split = 2 saved FLOPs but lost too.
    `stages` leaves up1 or up2 out, for timing the other alone (the output is then wrong):
    experiments/bench_model.py's stage ablation places the time inside the kernel this way.
    """
    if split not in (1, 2):
        raise ValueError(f"split must be 1 or 2 (Triton dots need N >= 16), got {split}")
    if _GRID % rows or _GRID % up1_rows:
        raise ValueError(f"rows and up1_rows must divide {_GRID}, got {rows} and {up1_rows}")
    if not set(stages) <= {"up1", "up2"}:
        raise ValueError(f"stages must be a subset of ('up1', 'up2'), got {stages}")
    h = fc_rows(params, z).astype(jnp.bfloat16)
    w = _pallas_weights(params, split)
    c1 = w["w1"].shape[-1]
    first, stop = _step_span(steps, step_range)
    total = i.shape[0] * (stop - first)
    size = 4 // split
    scratch = jnp.zeros((programs, 8, _GRID + 2, _GRID + 2, _GRID + 2, c1), jnp.bfloat16)
    lerped = jnp.zeros((programs, _GRID + 2, _GRID + 2, _GRID + 2, h.shape[-1]), jnp.bfloat16)
    kernel = functools.partial(_fused_kernel, steps=steps, first=first, count=stop - first, programs=programs,
                               rows=rows, up1_rows=up1_rows, split=split, pipelined=pipelined, stages=stages,
                               interpret=interpret)
    words, _, _ = pl.pallas_call(
        kernel,
        out_shape=(jax.ShapeDtypeStruct((total, _GRID * _GRID, split * split, size * size), jnp.uint32),
                   jax.ShapeDtypeStruct(scratch.shape, scratch.dtype), jax.ShapeDtypeStruct(lerped.shape, lerped.dtype)),
        grid=(programs,),
        input_output_aliases={8: 1, 9: 2},
        compiler_params=None if interpret else pltriton.CompilerParams(num_warps=num_warps, num_stages=num_stages),
        interpret=interpret,
        name="lerp_decode",
    )(jnp.full((1,), total, jnp.int32), i.astype(jnp.int32), j.astype(jnp.int32), h, w["w1"], w["b1"], w["w2"], w["b2"], scratch, lerped)
    # words [item, (ud, uh), (hd, hh), (jd, jh)] -> packed [item, x = 4 ud + size hd + jd, y = 4 uh + size hh + jh]
    words = words.reshape(-1, stop - first, _GRID, _GRID, split, split, size, size).transpose(0, 1, 2, 4, 6, 3, 5, 7)
    return words.reshape(-1, stop - first, 32, 32)


def lerp_decode(model: models.Autoencoder, params, z, i, j, *, steps: int = 11, step_range=None,
                backend: str = "auto", **kwargs) -> jax.Array:
    """Decoded, thresholded (logit > 0), bit-packed interpolants: uint32 (P, steps, 32, 32).

    `out[p, s]` packs decode((1 - t_s) z[i[p]] + t_s z[j[p]]) > 0 with t_s = s / (steps - 1).
    `step_range=(first, stop)` decodes only steps first..stop-1: (P, stop - first, 32, 32).
    backend: "pallas" (GPU; `interpret=True` elsewhere), "xla", "reference", or "auto" (pallas on
    GPU, xla otherwise).
    """
    if backend == "auto":
        backend = "pallas" if jax.default_backend() == "gpu" else "xla"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or 'auto', got {backend!r}")
    i, j = jnp.asarray(i, jnp.int32), jnp.asarray(j, jnp.int32)
    if backend == "reference":
        return lerp_decode_reference(model, params, z, i, j, steps=steps, step_range=step_range)
    activation = model.config.activation
    if backend == "xla":
        return lerp_decode_xla(params, z, i, j, steps=steps, step_range=step_range, activation=activation, **kwargs)
    if activation != "relu":
        raise ValueError(f"the pallas fused decoder implements relu only, the model uses {activation!r}")
    return lerp_decode_pallas(params, z, i, j, steps=steps, step_range=step_range, **kwargs)


def _all_pairs_index(n: int, steps: int) -> np.ndarray:
    """Where lerp_decode_all_pairs finds (i, j, s): rows of [interior steps of pairs i < j ; shapes]."""
    pair = np.full((n, n), -1)
    iu, ju = np.triu_indices(n, 1)
    pair[iu, ju] = np.arange(len(iu))
    i, j, s = np.meshgrid(np.arange(n), np.arange(n), np.arange(steps), indexing="ij")
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    interior = (pair[lo, hi] * (steps - 2) + np.where(i < j, s, steps - 1 - s) - 1)
    shape = len(iu) * (steps - 2) + np.where(s == steps - 1, j, i)
    return np.where((i != j) & (s > 0) & (s < steps - 1), interior, shape)


def lerp_decode_all_pairs(model: models.Autoencoder, params, z, *, steps: int = 11, backend: str = "auto",
                          **kwargs) -> jax.Array:
    """Algorithm 1's result for every ordered pair, (N, N, steps, 32, 32) packed, decoding each
    distinct shape once: N (N - 1) / 2 x (steps - 2) interpolants and the N shapes, not N^2 x steps.

    Why this is the same function: step_weights is exactly symmetric (the weights of step s, swapped,
    are those of steps - 1 - s), so (i, j, s) and (j, i, steps - 1 - s) are one latent; t = 0 and 1
    are the shapes themselves; and every step of (i, i) is shape i. At N = 50 this is 11,075 decodes
    instead of 27,500. (The per-pair kernel rounds u z_i + t z_i, which is z_i in exact arithmetic,
    so a voxel with a logit at 0 may differ on the diagonal.)
    """
    n = z.shape[0]
    if steps < 3:
        raise ValueError(f"steps must be at least 3 (endpoints and an interior step), got {steps}")
    iu, ju = np.triu_indices(n, 1)
    shapes = lerp_decode(model, params, z, np.arange(n), np.arange(n), steps=steps, step_range=(0, 1),
                         backend=backend, **kwargs).reshape(n, 32, 32)
    parts = [shapes]
    if len(iu):
        inner = lerp_decode(model, params, z, iu, ju, steps=steps, step_range=(1, steps - 1), backend=backend,
                            **kwargs)
        parts.insert(0, inner.reshape(-1, 32, 32))
    return jnp.take(jnp.concatenate(parts), jnp.asarray(_all_pairs_index(n, steps)), axis=0)
