"""The streaming engine, driven by a stand-in decoder whose decoded shapes are known exactly.

The stand-in decodes a latent filled with the number c to an 8^3 box whose low x corner is at c,
so interpolating between boxes at x = 0 and x = 10 in 11 steps slides the box one voxel a step.
Corners are multiples of 10, so every interpolated corner is a whole number (give or take
rounding, which the half-voxel margin of the box absorbs).
"""

import functools
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.interpolate import get_config
from lerpnet.bitpack import pack_voxels
from lerpnet.data import Dataset
from lerpnet.allpairs.scores import reference_matrix
from lerpnet.allpairs.program import (
    block_step,
    collect_blocks,
    dataset_parts,
    decoded_paths,
    device_mesh,
    largest_part,
    num_blocks,
    pair_list,
    plan_blocks,
    plausible,
    run_blocks,
    select_shapes,
    stream_scores,
)

STEPS = 11
POSITIONS = np.array([0.0, 20.0, 10.0, 0.0, 10.0])  # box corners; 10 is the midpoint of the first two


def box_logits(params, z):
    """(B, 2,2,2,8) latents filled with c -> logits > 0 exactly on the box x in [c, c+8), y, z in [4, 12)."""
    c = jnp.mean(z.reshape(z.shape[0], -1), axis=1) * params["scale"]
    x = jnp.arange(32, dtype=jnp.float32)
    along_x = 4 - jnp.abs(x[None, :] - c[:, None] - 3.5)
    across = 4 - jnp.abs(x - 7.5)
    return jnp.minimum(along_x[:, :, None, None], jnp.minimum(across[:, None], across[None, :])[None])


def box_grid(c: float) -> np.ndarray:
    grid = np.zeros((32, 32, 32), bool)
    grid[int(c) : int(c) + 8, 4:12, 4:12] = True
    return grid


PARAMS = {"scale": jnp.float32(1.0)}
LATENTS = jnp.asarray(np.broadcast_to(POSITIONS[:, None, None, None, None], (len(POSITIONS), 2, 2, 2, 8)), jnp.float32)
INPUTS = pack_voxels(np.stack([box_grid(c) for c in POSITIONS]))
REFERENCE = reference_matrix(INPUTS)
PATHS = functools.partial(decoded_paths, decode=box_logits, steps=STEPS, threshold_logit=0.0, backend="jnp")
STEP = functools.partial(block_step, paths=PATHS, tolerance=0.0)


def operand_specs():
    return jax.eval_shape(lambda: (PARAMS, LATENTS, INPUTS, *REFERENCE))


def test_pair_list_counts_and_order():
    assert pair_list(3, "all").tolist() == [[i, j] for i in range(3) for j in range(3)]
    assert pair_list(4, "unique").tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    with pytest.raises(ValueError, match="pair mode"):
        pair_list(3, "some")


def test_block_step_scores_a_sliding_box_in_closed_form():
    i, j = jnp.array([0, 1, 4, 2], jnp.int32), jnp.array([1, 0, 3, 2], jnp.int32)
    s = jax.jit(STEP)(PARAMS, LATENTS, INPUTS, *REFERENCE, i, j)

    def overlap(shift):  # an 8-cube vs its translate along x
        return np.clip(8 - shift, 0, None) / (8 + np.minimum(shift, 8))

    s2 = 2 * np.arange(STEPS)  # 0 -> 20 moves two voxels a step, 10 -> 0 one voxel a step
    np.testing.assert_allclose(np.asarray(s["iou_to_start"][0]), overlap(s2), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(s["iou_to_end"][1]), overlap(s2)[::-1], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(s["iou_to_start"][2]), overlap(s2 // 2), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(s["smoothness"]), [6 / 10, 6 / 10, 7 / 9, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(s["iou_start"]), 1.0)
    np.testing.assert_array_equal(np.asarray(s["iou_end"]), 1.0)
    np.testing.assert_array_equal(np.asarray(s["monotonicity"]), 1.0)
    np.testing.assert_allclose(np.asarray(s["occupancy"]), 512 / 32768)
    # The midpoint of 0 -> 20 is the box at 10: reference shape 2 (the first of two copies).
    np.testing.assert_array_equal(np.asarray(s["nearest_reference"])[[0, 1, 3]], [2, 2, 2])
    np.testing.assert_array_equal(np.asarray(s["novelty_iou"])[[0, 1, 3]], 1.0)
    # The midpoint of 10 -> 0 is the box at 5, 3/13 of the way into both boxes at 0 and 10.
    np.testing.assert_allclose(float(s["novelty_iou"][2]), 3 / 13, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(s["step_iou"][3]), 1.0)


def test_blocks_persist_resume_and_do_not_depend_on_the_block_size(tmp_path):
    pairs = pair_list(len(POSITIONS), "all")  # 25 pairs
    results = {}
    for block in (8, 16):
        plan = plan_blocks(STEP, operand_specs(), len(pairs), block_pairs=block, memory_budget_bytes=2**30,
                           mesh=device_mesh(1))
        operands = plan.operands(PARAMS, LATENTS, INPUTS, *REFERENCE)
        done, done_pairs, _ = run_blocks(plan, operands, pairs, tmp_path / str(block), progress=False)
        assert done_pairs == 25
        assert done == num_blocks(25, block)
        results[block] = collect_blocks(tmp_path / str(block), done)
    for key, value in results[8].items():
        assert len(value) == 25
        np.testing.assert_array_equal(value, results[16][key], err_msg=key)
    # Resume: only the missing block is computed again, and it comes out the same.
    (tmp_path / "8" / "block_000002.npz").unlink()
    (tmp_path / "8" / "block_000003.npz.tmp").write_bytes(b"half a write")
    done, done_pairs, _ = run_blocks(plan_blocks(STEP, operand_specs(), 25, block_pairs=8, memory_budget_bytes=2**30,
                                     mesh=device_mesh(1)), operands, pairs, tmp_path / "8", progress=False)
    assert (done, done_pairs) == (1, 8) and not list((tmp_path / "8").glob("*.tmp"))
    again = collect_blocks(tmp_path / "8", 4)
    for key, value in results[16].items():
        np.testing.assert_array_equal(again[key], value, err_msg=key)
    last = stream_scores(plan, operands, pairs)  # the last block's scores, padded to the block size
    start = (num_blocks(25, plan.block_pairs) - 1) * plan.block_pairs
    np.testing.assert_array_equal(np.asarray(last["smoothness"])[: 25 - start], results[8]["smoothness"][start:])


def test_block_size_is_chosen_within_the_budget_and_a_tiny_budget_is_refused():
    mesh = device_mesh(1)
    plan = plan_blocks(STEP, operand_specs(), 10_000, block_pairs=0, memory_budget_bytes=64 * 2**20, mesh=mesh)
    assert plan.memory_bytes <= 64 * 2**20
    assert plan.block_pairs >= 8 and plan.block_pairs % 8 == 0
    with pytest.raises(ValueError, match="too small for one block"):
        plan_blocks(STEP, operand_specs(), 10_000, block_pairs=0, memory_budget_bytes=2**16, mesh=mesh)
    with pytest.raises(ValueError, match="over the memory budget"):
        plan_blocks(STEP, operand_specs(), 10_000, block_pairs=4096, memory_budget_bytes=2**22, mesh=mesh)


MULTI_DEVICE_SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from tests.test_pipeline import STEP, PARAMS, LATENTS, INPUTS, REFERENCE, POSITIONS, operand_specs
    from lerpnet.allpairs.program import device_mesh, pair_list, plan_blocks
    assert len(jax.devices()) == 4, jax.devices()
    pairs = pair_list(len(POSITIONS), "all")[:16]
    out = {}
    for n in (1, 4):
        plan = plan_blocks(STEP, operand_specs(), 16, block_pairs=16, memory_budget_bytes=2**30, mesh=device_mesh(n))
        scores = plan.step(*plan.operands(PARAMS, LATENTS, INPUTS, *REFERENCE), *plan.pairs(pairs))
        assert len(scores["smoothness"].sharding.device_set) == n
        out[n] = jax.tree.map(np.asarray, scores)
    for key in out[1]:
        np.testing.assert_array_equal(out[1][key], out[4][key], err_msg=key)
    print("SHARDED-OK")
    """
)


def test_pairs_shard_over_four_forced_cpu_devices_with_the_same_scores():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run([sys.executable, "-c", MULTI_DEVICE_SCRIPT], cwd=root, env=env, capture_output=True,
                         text=True, timeout=300)
    assert "SHARDED-OK" in run.stdout, run.stderr[-3000:]


def test_largest_part_and_plausible_paths():
    two_pieces = np.zeros((32, 32, 32), bool)
    two_pieces[:8, :8, :8] = True
    two_pieces[20:24, 20:24, 20:24] = True
    assert largest_part(two_pieces) == 512 / (512 + 64)
    assert largest_part(np.zeros((32, 32, 32), bool)) == 1.0
    cfg = get_config().plausible
    scores = {
        "i": np.array([0, 0, 0, 0, 1]), "j": np.array([1, 1, 1, 1, 1]),
        "smoothness": np.array([0.9, 0.1, 0.9, 0.9, 1.0]),
        "iou_start": np.array([0.8, 0.8, 0.2, 0.8, 1.0]), "iou_end": np.full(5, 0.8),
        "occupancy_start": np.full(5, 0.05), "occupancy_end": np.full(5, 0.10),
        "occupancy": np.array([[0.05, 0.07, 0.1], [0.05, 0.07, 0.1], [0.05, 0.07, 0.1], [0.05, 0.3, 0.1],
                               [0.1, 0.1, 0.1]]),
    }
    # ok; jumps; input not reconstructed; midpoint three times fuller than either input; i == j
    np.testing.assert_array_equal(plausible(scores, cfg), [True, False, False, False, False])


def test_shapes_come_from_splits_in_order_with_rotated_copies_last():
    grid = lambda k: np.full((32, 32, 32), k % 2 == 0)  # noqa: E731
    canonical = Dataset(np.stack([grid(0), grid(1)]), ("a", "b"), np.stack([grid(2)]), ("v",))
    rotated = Dataset(np.stack([grid(k) for k in range(4)]), ("a_1", "a_2", "b_1", "b_2"), canonical.val_voxels,
                      ("v",))
    cfg = get_config().shapes
    cfg.split = "val+train+rotated"
    shapes = select_shapes(cfg, 4, dataset_parts(canonical, rotated))
    assert shapes.ids == ("v", "a", "b", "a_2") and shapes.splits == ("val", "train", "train", "rotated")
    with pytest.raises(ValueError, match="num_shapes=9 but split 'val\\+train\\+rotated' of the dataset has only 5"):
        select_shapes(cfg, 9, dataset_parts(canonical, rotated))
    cfg.split = "val+rotated"
    with pytest.raises(ValueError, match="shapes.split must be splits from \\('val', 'train'\\)"):
        select_shapes(cfg, 0, dataset_parts(canonical))
