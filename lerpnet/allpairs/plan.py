"""The pure block step of the all-pairs stream and its memory-sized, sharded, compiled plan.

For N = 1000 and 11 steps Algorithm 1 decodes 11 million 32^3 grids (1.4 TB of float logits), so
nothing may be materialised for all pairs at once. The pairs are cut into blocks of P; one jitted,
pure step decodes a block's interior steps, puts each path together with the shapes' own decoded
grids (its steps t = 0 and t = 1, decoded once for all pairs), and scores the paths on the device
from packed bits, returning only per-pair scores (a few hundred bytes a path). The block size is
chosen from XLA's own memory analysis of the compiled step, so a run stays under its memory
budget whatever N is. Blocks are sharded over a process's devices (`shard_map` over a "pairs" mesh
axis; every device holds the parameters, latents, decoded shapes and reference shapes); several
processes split the blocks between them (`stream.stream_share`). The compiled step returns every
score of a pair as one row of 32-bit words, so a block comes back to the host in one transfer rather
than one per score (each transfer is a synchronisation the device waits through).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lerpnet.allpairs.scores import midpoint_novelty, path_scores

AXIS = "pairs"
_MIN_SHARD = 8  # pairs per device in an automatically sized block are a multiple of this
# The first block tried holds this many pairs per device (or all the pairs, when fewer); when it fits
# the budget it is the plan, compiled once. A larger block is not faster (at N = 1000 on a GPU, blocks
# of 32,768 pairs took 2.24 s, of 68,016 2.32 s: results/profile/score_pairs/block_size/) and cost two
# probe compiles before its own. Only a block that does not fit is shrunk, along a line through it and
# a probe of a quarter of it.
_FIRST_BLOCK = 32768
_FIRST_AIM = 0.95  # the share of the budget the first fitted block aims at (and each retry)

# (params, z, i, j) -> the packed interior steps 1..T-2 of each path, uint32 (P, T - 2, 32, 32)
Interior = Callable[[object, jax.Array, jax.Array, jax.Array], jax.Array]


def paths(params, z, endpoints, i, j, *, interior: Interior | None, steps: int) -> jax.Array:
    """Packed paths (P, steps, 32, 32): shape i's decoded grid, the interior steps, shape j's.

    interior None: nothing to decode, for steps = 2 (the path is the two shapes) and for the constant
    paths (i, i) of every-ordered-pair mode (pass j = i: every step is shape i's grid).
    """
    first, last = endpoints[i][:, None], endpoints[j][:, None]
    if interior is None:
        middle = jnp.broadcast_to(first, (first.shape[0], steps - 2, *first.shape[2:]))
    else:
        middle = interior(params, z, i, j)
    return jnp.concatenate([first, middle, last], axis=1)


def block_step(params, z, endpoints, inputs, reference_bits, reference_counts, i, j, *, interior: Interior | None,
               steps: int, tolerance: float, reverse_midpoint: bool = False) -> dict[str, jax.Array]:
    """Scores of the paths between shapes i[p] and j[p] (`scores.path_scores` and `midpoint_novelty`).

    endpoints: (N, 32, 32) the shapes' own decoded grids, packed; inputs: (N, 32, 32) the input
    shapes, packed; reference_*: the training shapes from `scores.reference_matrix` (novelty is the
    midpoint's highest IoU with any of them); reverse_midpoint: also score the reversed path's
    midpoint (see `midpoint_novelty`). Pure: the same block always gives the same scores.
    """
    packed = paths(params, z, endpoints, i, j, interior=interior, steps=steps)
    scores = path_scores(packed, inputs[i], inputs[j], tolerance)
    return scores | midpoint_novelty(packed, reference_bits, reference_counts, reverse=reverse_midpoint)


def num_blocks(num_pairs: int, block_pairs: int) -> int:
    return -(-num_pairs // block_pairs)


# (name, dtype, per-pair shape) of each score, in the order `_as_rows` lays them out in a row
Layout = tuple[tuple[str, str, tuple[int, ...]], ...]


def _as_rows(scores: dict[str, jax.Array]) -> tuple[jax.Array, Layout]:
    """Every score of a pair in one uint32 row (P, words), the scores in name order, and that layout."""
    names = sorted(scores)
    for name in names:
        if scores[name].dtype.itemsize != 4:
            raise TypeError(f"score {name!r} is {scores[name].dtype}: a block's scores travel as 32-bit words")
    rows = jnp.concatenate([jax.lax.bitcast_convert_type(scores[name], jnp.uint32).reshape(scores[name].shape[0], -1)
                            for name in names], axis=1)
    return rows, tuple((name, str(scores[name].dtype), tuple(scores[name].shape[1:])) for name in names)


@dataclasses.dataclass(frozen=True)
class Plan:
    """A compiled block step and what it costs: `block_pairs` pairs a call, `memory_bytes` a device.

    `step(*operands, pairs)` takes the per-run operands (`operands`) and a block's pairs (`put_pairs`) and
    returns the block's scores as rows of 32-bit words (`layout` says which); `host_scores` brings them
    back as named host arrays.
    """

    step: jax.stages.Compiled
    block_pairs: int
    memory_bytes: int
    mesh: Mesh
    layout: Layout

    def host_scores(self, rows: jax.Array, count: int) -> dict[str, np.ndarray]:
        """The named scores of the first `count` pairs of a block's `step` output, in one transfer."""
        words = np.asarray(rows)[:count]
        out, start = {}, 0
        for name, dtype, shape in self.layout:
            width = math.prod(shape)
            column = np.ascontiguousarray(words[:, start : start + width]).view(dtype)
            out[name] = column.reshape(count, *shape)
            start += width
        return out

    def operands(self, *operands) -> tuple:
        """Place the per-run operands on every device (replicated), as the step expects them. An array
        already placed so (on a one-device mesh, any array on that device) is passed as it is: placing the
        parameters again at every call was host time the device waited through at small N."""
        replicated = NamedSharding(self.mesh, P())

        def placed(x):
            if isinstance(x, jax.Array) and x.sharding.is_equivalent_to(replicated, x.ndim):
                return x
            return jax.device_put(x, replicated)

        return jax.tree.map(placed, operands)


def put_pairs(blocks: list[tuple[Plan, np.ndarray]]) -> list[jax.Array]:
    """Blocks of pairs, each (K <= its plan's block_pairs, 2), padded to its plan's block_pairs and sharded over
    its plan's devices (each its step's last operand), in one transfer: each transfer is a wait the host sits
    through (results/profile/score_pairs/)."""
    padded = []
    for plan, block in blocks:
        padded.append(np.zeros((plan.block_pairs, 2), np.int32))
        padded[-1][: len(block)] = block
    return jax.device_put(padded, [NamedSharding(plan.mesh, P(AXIS)) for plan, _ in blocks])


def device_mesh(num_devices: int = 0) -> Mesh:
    """A 1-D mesh over this process's first `num_devices` devices (0 = all of them)."""
    devices = jax.local_devices()
    if num_devices > len(devices):
        raise ValueError(f"num_devices={num_devices} but only {len(devices)} local {devices[0].platform} devices "
                         "exist")
    return Mesh(np.array(devices[: num_devices or len(devices)]), (AXIS,))


def _compile(step: Callable, operand_specs: tuple, block_pairs: int, mesh: Mesh) -> Plan:
    replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P(AXIS))
    specs = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=replicated), operand_specs)
    layouts = []  # filled when `lower` traces the step (once)

    def rows(*args):  # the operands, then the block's pairs (P, 2): i, j
        *operands, pairs = args
        words, layout = _as_rows(step(*operands, pairs[:, 0], pairs[:, 1]))
        layouts.append(layout)
        return words

    sharded_step = jax.shard_map(rows, mesh=mesh, in_specs=(P(),) * len(specs) + (P(AXIS),), out_specs=P(AXIS),
                                 check_vma=False)
    block = jax.ShapeDtypeStruct((block_pairs, 2), jnp.int32, sharding=sharded)
    compiled = jax.jit(sharded_step).lower(*specs, block).compile()
    stats = compiled.memory_analysis()
    memory = (stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
              - stats.alias_size_in_bytes)
    return Plan(compiled, block_pairs, int(memory), mesh, layouts[-1])


def _one_pair_too_large(budget_mib: float, plan: Plan) -> ValueError:
    return ValueError(f"memory budget of {budget_mib:.1f} MiB is too small for one block: one pair per device "
                      f"needs {plan.memory_bytes / 2**20:.1f} MiB; raise memory_budget_mb")


def plan_blocks(step: Callable, operand_specs: tuple, num_pairs: int, *, block_pairs: int, memory_budget_bytes: int,
                mesh: Mesh) -> Plan:
    """Compile `step` (a `block_step` with its keywords bound) for blocks that fit the budget.

    block_pairs > 0 is taken as given (a multiple of the device count) and checked; 0 takes all the
    pairs, or `_FIRST_BLOCK` pairs a device when there are more, if that block fits, else the largest
    smaller block that fits, from a line through the memory XLA reports for that block and a probe of a
    quarter of it. Either way the compiled step's reported memory (arguments + outputs + temporaries,
    per device) is checked against the budget here, before any work: a budget too small for one block
    is an error.
    """
    devices = mesh.devices.size
    budget_mib = memory_budget_bytes / 2**20
    if block_pairs:
        if block_pairs % devices:
            raise ValueError(f"block_pairs={block_pairs} must be a multiple of the device count ({devices})")
        plan = _compile(step, operand_specs, block_pairs, mesh)
        if plan.memory_bytes > memory_budget_bytes:
            raise ValueError(f"a block of {block_pairs} pairs needs {plan.memory_bytes / 2**20:.1f} MiB per device, "
                             f"over the memory budget of {budget_mib:.1f} MiB: lower block_pairs or raise "
                             "memory_budget_mb")
        return plan
    most_useful = max(-(-num_pairs // devices), 1)  # no point in a block larger than all the pairs
    first = min(most_useful, _FIRST_BLOCK)
    plan = _compile(step, operand_specs, first * devices, mesh)
    if plan.memory_bytes <= memory_budget_bytes:
        return plan
    if first == 1:
        raise _one_pair_too_large(budget_mib, plan)
    # Memory is affine in the block size once the block's own buffers outgrow the fixed workspace (on
    # a GPU, the kernel's scratch slots), so the line is fitted through large blocks, not small ones:
    # on an H100 at N = 1000 blocks of 8 and 32 pairs took 347.6 and 348.4 MiB, one of 68,344 pairs
    # 7,820 MiB, and the line through the small two put the first block at 210,248 pairs (23.9 GB).
    small = max(first // 4, 1)
    m_small = _compile(step, operand_specs, small * devices, mesh).memory_bytes
    tried = [(small, m_small), (first, plan.memory_bytes)]  # (pairs a device, bytes a device) of each compile
    per_pair = max(plan.memory_bytes - m_small, 1) / (first - small)  # per device, for each pair it holds
    fixed = max(m_small - small * per_pair, 0)
    if fixed + per_pair > memory_budget_bytes:
        raise ValueError(f"memory budget of {budget_mib:.1f} MiB is too small for one block: the model, latents, "
                         f"reference shapes and workspace take {fixed / 2**20:.1f} MiB and each pair "
                         f"{per_pair / 2**20:.2f} MiB per device; raise memory_budget_mb")
    # aimed a little under the budget: each recompile for a smaller block costs seconds of compiling
    per_device = min(int((_FIRST_AIM * memory_budget_bytes - fixed) / per_pair), first)
    while True:
        if _MIN_SHARD <= per_device < most_useful:
            per_device -= per_device % _MIN_SHARD
        plan = _compile(step, operand_specs, per_device * devices, mesh)
        tried.append((per_device, plan.memory_bytes))
        if plan.memory_bytes <= memory_budget_bytes:
            logging.info("blocks of %d pairs, %.0f MiB a device of the %.0f MiB budget; compiled for (pairs a device, "
                         "MiB): %s", plan.block_pairs, plan.memory_bytes / 2**20, budget_mib,
                         ", ".join(f"({p}, {m / 2**20:.1f})" for p, m in tried))
            return plan
        if per_device == 1:
            raise _one_pair_too_large(budget_mib, plan)
        per_device = max(1, int(per_device * _FIRST_AIM * memory_budget_bytes / plan.memory_bytes))
