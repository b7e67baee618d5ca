"""The pure block step and its memory-sized, sharded plan, driven by the stand-in decoder."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lerpnet.allpairs import plan as plan_module
from lerpnet.allpairs.plan import device_mesh, plan_blocks, put_pairs
from tests.allpairs.standin import OPERANDS, STEP, STEPS, operand_specs


def test_block_step_scores_a_sliding_box_in_closed_form():
    i, j = jnp.array([0, 1, 4, 2], jnp.int32), jnp.array([1, 0, 3, 2], jnp.int32)
    s = jax.jit(STEP)(*OPERANDS, i, j)

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


def test_the_constant_path_of_a_shape_needs_no_decoder():
    i = jnp.array([0, 2], jnp.int32)
    constant = jax.jit(lambda *a: STEP(*a, interior=None))(*OPERANDS, i, i)
    decoded = jax.jit(STEP)(*OPERANDS, i, i)
    for key, value in decoded.items():
        np.testing.assert_array_equal(np.asarray(constant[key]), np.asarray(value), err_msg=key)


def test_a_block_comes_back_as_one_array_that_holds_every_score_unchanged():
    mesh = device_mesh(1)
    plan = plan_blocks(STEP, operand_specs(), 8, block_pairs=8, memory_budget_bytes=2**30, mesh=mesh)
    pairs = np.array([[0, 1], [1, 0], [4, 3], [2, 2], [0, 4]], np.int32)
    rows = plan.step(*plan.operands(*OPERANDS), put_pairs([(plan, pairs)])[0])
    assert isinstance(rows, jax.Array) and rows.dtype == jnp.uint32 and rows.shape[0] == 8
    got = plan.host_scores(rows, len(pairs))
    want = jax.jit(STEP)(*OPERANDS, jnp.asarray(pairs[:, 0]), jnp.asarray(pairs[:, 1]))
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        np.testing.assert_array_equal(got[key], np.asarray(value), err_msg=key)


def test_operands_already_on_the_one_device_mesh_are_not_placed_again():
    pairs = np.array([[0, 1], [4, 3], [2, 2]], np.int32)
    plan = plan_blocks(STEP, operand_specs(), 8, block_pairs=8, memory_budget_bytes=2**30, mesh=device_mesh(1))
    on_device = jax.tree.map(jnp.asarray, OPERANDS)
    placed = plan.operands(*on_device)
    assert all(a is b for a, b in zip(jax.tree.leaves(placed), jax.tree.leaves(on_device)))
    from_host = plan.operands(*jax.tree.map(np.asarray, OPERANDS))  # host arrays are placed
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(from_host))
    [block] = put_pairs([(plan, pairs)])
    np.testing.assert_array_equal(plan.step(*placed, block), plan.step(*from_host, block))


def test_a_score_that_is_not_32_bit_is_refused_by_name():
    with pytest.raises(TypeError, match="'flag' is bool"):
        plan_module._as_rows({"flag": jnp.zeros((4,), bool)})


def test_block_size_is_chosen_within_the_budget_and_a_tiny_budget_is_refused():
    mesh = device_mesh(1)
    plan = plan_blocks(STEP, operand_specs(), 10_000, block_pairs=0, memory_budget_bytes=64 * 2**20, mesh=mesh)
    assert plan.memory_bytes <= 64 * 2**20
    assert plan.block_pairs >= 8 and plan.block_pairs % 8 == 0
    with pytest.raises(ValueError, match="too small for one block"):
        plan_blocks(STEP, operand_specs(), 10_000, block_pairs=0, memory_budget_bytes=2**16, mesh=mesh)
    with pytest.raises(ValueError, match="over the memory budget"):
        plan_blocks(STEP, operand_specs(), 10_000, block_pairs=4096, memory_budget_bytes=2**22, mesh=mesh)


def test_few_pairs_that_fit_are_one_block_planned_with_one_compile(monkeypatch):
    sizes, compile_block = [], plan_module._compile

    def counted(step, specs, size, mesh):
        sizes.append(size)
        return compile_block(step, specs, size, mesh)

    monkeypatch.setattr(plan_module, "_compile", counted)
    mesh = device_mesh(1)
    plan = plan_blocks(STEP, operand_specs(), 45, block_pairs=0, memory_budget_bytes=64 * 2**20, mesh=mesh)
    assert (plan.block_pairs, sizes) == (45, [45])  # all the pairs, compiled once
    sizes.clear()
    whole = plan.memory_bytes
    plan = plan_blocks(STEP, operand_specs(), 45, block_pairs=0, memory_budget_bytes=whole - 1, mesh=mesh)
    assert sizes[:2] == [45, 11]  # then one probe at a quarter of them: the line runs through the two
    assert plan.block_pairs < 45 and plan.memory_bytes < whole


def test_many_pairs_that_fit_take_the_first_block_with_one_compile(monkeypatch):
    # N = 1000 has 499,500 pairs: a block of 32,768 a device fits 8 GiB, so nothing else is compiled.
    sizes = []

    def compiled(step, specs, size, mesh):
        sizes.append(size)
        return plan_module.Plan(None, size, int((58 + max(290, 0.1094 * size)) * 2**20), mesh, ())

    monkeypatch.setattr(plan_module, "_compile", compiled)
    plan = plan_blocks(STEP, operand_specs(), 499_500, block_pairs=0, memory_budget_bytes=2**33, mesh=device_mesh(1))
    assert sizes == [plan_module._FIRST_BLOCK] and plan.block_pairs == plan_module._FIRST_BLOCK


def test_a_first_block_too_large_is_shrunk_past_a_fixed_workspace_with_one_compile_after_the_probe(monkeypatch):
    # Memory as a GPU reported it at N = 1000: a fixed workspace hides the per-pair buffers of small
    # blocks (347.6 and 348.4 MiB at 8 and 32 pairs, 7,820 MiB at 68,344). A probe of a quarter of the
    # large first block sees the per-pair slope, so the block fitted next is within the budget: no
    # compile for a smaller one.
    mib = 2**20
    sizes = []

    def compiled(step, specs, size, mesh):
        sizes.append(size)
        memory = int((58 + max(290, 0.1094 * size)) * mib)
        return plan_module.Plan(None, size, memory, mesh, ())

    monkeypatch.setattr(plan_module, "_compile", compiled)
    plan = plan_blocks(STEP, operand_specs(), 499_500, block_pairs=0, memory_budget_bytes=2048 * mib,
                       mesh=device_mesh(1))
    assert sizes[:2] == [32768, 8192] and len(sizes) == 3
    assert 0.9 * 2048 * mib < plan.memory_bytes <= 2048 * mib and plan.block_pairs % 8 == 0


MULTI_DEVICE_SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from tests.allpairs.standin import OPERANDS, POSITIONS, STEP, operand_specs
    from lerpnet.allpairs.plan import device_mesh, plan_blocks, put_pairs
    from lerpnet.allpairs.shapes import pair_list
    assert len(jax.devices()) == 4, jax.devices()
    pairs = pair_list(len(POSITIONS), "all")[:16]
    out = {}
    for n in (1, 4):
        plan = plan_blocks(STEP, operand_specs(), 16, block_pairs=16, memory_budget_bytes=2**30, mesh=device_mesh(n))
        rows = plan.step(*plan.operands(*OPERANDS), put_pairs([(plan, pairs)])[0])
        assert len(rows.sharding.device_set) == n
        out[n] = plan.host_scores(rows, len(pairs))
    for key in out[1]:
        np.testing.assert_array_equal(out[1][key], out[4][key], err_msg=key)
    print("SHARDED-OK")
    """
)


def test_pairs_shard_over_four_forced_cpu_devices_with_the_same_scores():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = subprocess.run([sys.executable, "-c", MULTI_DEVICE_SCRIPT], cwd=root, env=env, capture_output=True,
                         text=True, timeout=300)
    assert "SHARDED-OK" in run.stdout, run.stderr[-3000:]
