"""`score_pairs`: Algorithm 1 on N latents, every path decoded and scored in bounded device memory.

The one all-pairs function: the program (lerpnet.allpairs.program), the benchmarks and `import
lerpnet` callers all call it. Each distinct shape is decoded once for both pair modes: the N shapes'
own grids (t = 0 and t = 1 of every path) in one pass, then only the interior steps of the pairs
i < j, block by block, fused, thresholded and bit-packed on the chip, scored on the device. In
"all" mode the path j -> i is i -> j reversed and (i, i) is shape i at every step, so their scores
are derived (lerpnet.allpairs.scores.OrderedPairScores, filled as each block arrives) rather than
decoded again.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from lerpnet import distributed
from lerpnet.allpairs.plan import Plan, block_step, device_mesh, num_blocks, plan_blocks
from lerpnet.allpairs.scores import OrderedPairScores, as_packed, reference_matrix
from lerpnet.allpairs.shapes import PAIR_MODES, pair_list
from lerpnet.allpairs.stream import Segment, Store, stream_blocks, stream_share
from lerpnet.bitpack import unpack_voxels
from lerpnet.models import Autoencoder
from lerpnet.ops.lerp_decode import XlaLaunch, lerp_decode
from lerpnet.ops.lerp_decode.api import resolve_implementation

_SHAPES_AT_ONCE = 256  # the N shapes' own grids are decoded at most this many at a time
_COMPILED: dict[tuple, "_Compiled"] = {}  # by what the compiled code depends on; a repeated call compiles nothing


@dataclasses.dataclass(frozen=True)
class PairScores:
    """Per-pair scores (`scores.path_scores` + `midpoint_novelty`), row k scoring `pairs[k]` = (i, j),
    and what computing them took."""

    pairs: np.ndarray  # (K, 2) int32, in `shapes.pair_list(N, mode)` order
    scores: dict[str, np.ndarray]
    implementation: str
    block_pairs: int
    memory_bytes: int  # per device, of the pair step (its arguments, outputs and temporaries)
    num_devices: int  # that computed the blocks, over every process
    num_blocks: int
    blocks_computed: int  # not found in the store
    decodes: int  # distinct shapes decoded by this call: the N shapes and the interior steps computed
    seconds: float  # the shapes' decode and the block stream (compiling excluded)
    compile_seconds: float  # tracing and compiling this call's programs (0 when an earlier call compiled them)


@dataclasses.dataclass(frozen=True)
class _Compiled:
    # (params, z, inputs, reference) -> the shapes' own packed grids, the packed inputs and
    # `reference_matrix(reference)`: one compiled call, so a call's set-up is one dispatch, not dozens
    prepare: jax.stages.Compiled
    pairs: Plan  # unique pairs i < j
    diagonal: Plan | None  # the constant paths (i, i), "all" mode only


def score_pairs(model: Autoencoder, params, z, inputs, *, reference, pairs: str = "all", steps: int = 11,
                threshold: float = 0.5, implementation: str | None = None, tolerance: float = 0.0,
                memory_budget_mb: float = 8192.0, block_pairs: int = 0, num_devices: int = 0,
                store: Store | None = None, progress: bool = False) -> PairScores | None:
    """Decode and score the path between every pair of the N latents `z` (N, *latent).

    inputs: the N input shapes (bool (N, 32, 32, 32) or packed (N, 32, 32)), for endpoint fidelity;
    reference: M shapes likewise (the training set), for novelty. pairs: "all" (every ordered pair,
    N^2 paths, the study's Algorithm 1) or "unique" (i < j). A voxel is full where sigmoid(logit) >
    threshold; `tolerance` is the IoU change monotonicity ignores. The pairs are cut into blocks that
    fit `memory_budget_mb` per device (or `block_pairs` a block, a multiple of the device count) and
    sharded over `num_devices` local devices (0 = all). store (e.g. `store.BlockStore`): blocks it
    holds are reused, the others saved to it, so an interrupted call resumes.

    Several processes (lerpnet.distributed) share one store: every process calls this with the same
    arguments and computes its share of the blocks on its own devices; then process 0 reads them
    all back and returns the scores, and the other processes return None.
    """
    n = z.shape[0]
    _check(n, pairs, steps, memory_budget_mb)
    processes = jax.process_count()
    if processes > 1 and store is None:
        raise ValueError(f"score_pairs on {processes} processes shares its blocks through a store: pass store= "
                         "(a BlockStore in a folder every process sees)")
    implementation = resolve_implementation(model, params, implementation)
    mesh = device_mesh(num_devices)
    start = time.perf_counter()
    compiled = _compile(model, params, z, inputs, reference, pairs, steps, threshold, implementation, tolerance,
                        int(memory_budget_mb * 2**20), block_pairs, mesh)
    compile_seconds = time.perf_counter() - start
    unique = pair_list(n, "unique")
    plan = compiled.pairs
    distributed.check_same(plan.block_pairs, "the block size (pairs a block)")
    if store is not None:
        store.start(plan.block_pairs)

    start = time.perf_counter()
    operands = plan.operands(params, z, *compiled.prepare(params, z, inputs, reference))
    # the unique pairs, then the constant paths: one stream, so the device never waits between them
    segments = [Segment(plan, unique)]
    if compiled.diagonal is not None:
        same = np.repeat(np.arange(n, dtype=np.int32), 2).reshape(n, 2)
        segments.append(Segment(compiled.diagonal, same, num_blocks(len(unique), plan.block_pairs)))
    shared_blocks = shared_pairs = 0  # what the processes' shares computed, all of them together
    if processes > 1:
        shares = stream_share(segments, operands, store=store, progress=progress and distributed.is_primary())
        # Summing over the processes waits for all of them: past this, every block is in the store.
        shared_blocks = distributed.total(sum(share.blocks_computed for share in shares))
        shared_pairs = distributed.total(shares[0].pairs_computed)
        if not distributed.is_primary():
            return None
    ordered = OrderedPairScores(n) if pairs == "all" else None
    results = stream_blocks(segments, operands, store=store, progress=progress,
                            sink=None if ordered is None else ordered.add)
    scores = results[0][0] if ordered is None else ordered.result()
    computed = shared_blocks + sum(stats.blocks_computed for _, stats in results)
    interior = (shared_pairs + results[0][1].pairs_computed) * (steps - 2)
    return PairScores(pair_list(n, pairs), scores, implementation, plan.block_pairs, plan.memory_bytes,
                      int(mesh.devices.size) * processes, sum(stats.blocks for _, stats in results), computed,
                      n + interior, time.perf_counter() - start, compile_seconds)


def compile_score_pairs(model: Autoencoder, params, z, inputs, *, reference, pairs: str = "all", steps: int = 11,
                        threshold: float = 0.5, implementation: str | None = None, tolerance: float = 0.0,
                        memory_budget_mb: float = 8192.0, block_pairs: int = 0, num_devices: int = 0) -> float:
    """Compile what `score_pairs` runs on operands of these shapes (arrays or jax.ShapeDtypeStruct) and
    settings, so that its call compiles nothing; the seconds it took.

    A program knows N before it has read its shapes: compiling on a background thread meanwhile takes the
    compile (seconds on a GPU, the Pallas kernel's mostly) off the critical path.
    """
    _check(z.shape[0], pairs, steps, memory_budget_mb)
    start = time.perf_counter()
    _compile(model, params, z, inputs, reference, pairs, steps, threshold,
             resolve_implementation(model, params, implementation), tolerance, int(memory_budget_mb * 2**20),
             block_pairs, device_mesh(num_devices))
    return time.perf_counter() - start


def path_grids(model: Autoencoder, params, z, *, steps: int, threshold: float, implementation: str,
               batch: int = 16):
    """(i (B,), j (B,)) -> the bool grids (B, steps, 32, 32, 32) of those paths, for pictures and exports.

    Compiled here, once, for `batch` pairs a call (any B is decoded `batch` at a time), so that a
    program can compile it in the background while the device works on something else.
    """
    def grids(p, zz, i, j):
        return unpack_voxels(lerp_decode(model, p, zz, i, j, steps=steps, threshold=threshold,
                                         implementation=implementation, launch=_launch(implementation, batch)))

    index = jax.ShapeDtypeStruct((batch,), jnp.int32)
    compiled = jax.jit(grids).lower(params, z, index, index).compile()

    def decode(i, j) -> np.ndarray:
        pairs = np.stack([np.asarray(i, np.int32).reshape(-1), np.asarray(j, np.int32).reshape(-1)], axis=1)
        out = []
        for start in range(0, len(pairs), batch):
            chunk = pairs[start : start + batch]
            padded = np.zeros((batch, 2), np.int32)
            padded[: len(chunk)] = chunk
            out.append(np.asarray(compiled(params, z, padded[:, 0], padded[:, 1]))[: len(chunk)])
        return np.concatenate(out) if out else np.zeros((0, steps, 32, 32, 32), bool)

    return decode


def _check(n: int, pairs: str, steps: int, memory_budget_mb: float) -> None:
    """score_pairs' and compile_score_pairs' arguments, refused before any work."""
    if pairs not in PAIR_MODES:
        raise ValueError(f"pairs must be one of {PAIR_MODES}, got {pairs!r}")
    if n < 2 or steps < 2:
        raise ValueError(f"score_pairs needs at least 2 shapes and 2 steps, got {n} shapes and steps={steps}")
    if not math.isfinite(memory_budget_mb) or memory_budget_mb <= 0:
        raise ValueError(f"memory_budget_mb must be a finite number > 0, got {memory_budget_mb}")


def _compile(model, params, z, inputs, reference, pairs, steps, threshold, implementation, tolerance, budget,
             block_pairs, mesh) -> _Compiled:
    """The shapes' decode and the block plans for these operand shapes and settings, compiled once."""
    given = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)),
                         (params, z, inputs, reference))
    key = (model.config.to_json(), pairs, steps, threshold, implementation, tolerance, budget, block_pairs,
           tuple(d.id for d in mesh.devices.flat), str(jax.tree.structure(given)),
           tuple((s.shape, str(s.dtype)) for s in jax.tree.leaves(given)))
    if key in _COMPILED:
        return _COMPILED[key]
    def decode(p, zz, i, j, *, step_range):
        return lerp_decode(model, p, zz, i, j, steps=steps, threshold=threshold, step_range=step_range,
                           implementation=implementation, launch=_launch(implementation, i.shape[0]))

    def prepare(p, zz, shapes, reference):
        # the shapes in chunks of indices into all the latents (the last chunk's padding repeats the first
        # shapes), so that the kernels see the same latents as every other program of the run
        n = zz.shape[0]
        at_once = min(n, _SHAPES_AT_ONCE)
        chunks = jnp.arange(-(-n // at_once) * at_once, dtype=jnp.int32).reshape(-1, at_once) % n
        own = jax.lax.map(lambda c: decode(p, zz, c, c, step_range=(0, 1)), chunks)
        return own.reshape(-1, 32, 32)[:n], as_packed(shapes), *reference_matrix(reference)

    prepare = jax.jit(prepare).lower(*given)
    specs = (*given[:2], *prepare.out_info)
    interior = functools.partial(decode, step_range=(1, steps - 1)) if steps > 2 else None
    step = functools.partial(block_step, steps=steps, tolerance=tolerance,
                             reverse_midpoint=pairs == "all" and steps % 2 == 0)
    n = z.shape[0]
    devices = mesh.devices.size
    # The three programs are compiled side by side (compiling releases the GIL; on a GPU each is mostly
    # the lerp_decode kernel's compile). The constant paths' block is planned on its own: at most the N
    # paths, within the same budget (their step decodes nothing, so it is no larger than the pairs').
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        prepared = pool.submit(prepare.compile)
        plan = pool.submit(plan_blocks, functools.partial(step, interior=interior), specs, n * (n - 1) // 2,
                           block_pairs=block_pairs, memory_budget_bytes=budget, mesh=mesh)
        diagonal = pool.submit(plan_blocks, functools.partial(step, interior=None), specs, n,
                               block_pairs=min(block_pairs, -(-n // devices) * devices),
                               memory_budget_bytes=budget, mesh=mesh) if pairs == "all" else None
        compiled = _Compiled(prepared.result(), plan.result(), diagonal and diagonal.result())
    if len(_COMPILED) >= 4:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[key] = compiled
    return compiled


def _launch(implementation: str, pairs: int) -> XlaLaunch | None:
    """The fused XLA jit decodes `chunk` pairs a step, padding to it: no more than a call has."""
    return XlaLaunch(chunk=min(XlaLaunch().chunk, pairs)) if implementation == "xla" else None
