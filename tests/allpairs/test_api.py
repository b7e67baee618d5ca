"""`score_pairs` on a real (tiny, untrained) model: every ordered pair's scores, derived from the unique
pairs and the shapes' own grids, equal the scores of decoding every path directly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lerpnet import models
from lerpnet.allpairs import api, score_pairs
from lerpnet.allpairs.scores import midpoint_novelty, path_scores, reference_matrix
from lerpnet.allpairs.shapes import pair_list
from lerpnet.allpairs.store import BlockStore
from lerpnet.bitpack import pack_voxels
from lerpnet.ops.lerp_decode import lerp_decode, lerp_decode_all_pairs

N = 4


@pytest.fixture(scope="module")
def tiny():
    model = models.Autoencoder(models.model_config(encoder_features=(4, 4), decoder_features=(4, 4)))
    params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32)))
    z = jax.random.normal(jax.random.key(1), (N, 2, 2, 2, 8))
    rng = np.random.default_rng(0)
    inputs = rng.random((N, 32, 32, 32)) < 0.3
    reference = rng.random((3, 32, 32, 32)) < 0.3
    return model, params, z, inputs, reference


def direct_scores(model, params, z, inputs, reference, pairs, steps, threshold):
    """Each path decoded whole by lerp_decode, scored as it is: no symmetry used."""
    i, j = pairs[:, 0], pairs[:, 1]
    path = lerp_decode(model, params, z, i, j, steps=steps, threshold=threshold, implementation="xla")
    packed = pack_voxels(inputs)
    scores = path_scores(path, packed[i], packed[j], 0.01) | midpoint_novelty(path, *reference_matrix(reference))
    return {k: np.asarray(v) for k, v in scores.items()}


@pytest.mark.parametrize("steps", [4, 5])
def test_every_ordered_pair_derived_equals_every_path_decoded(tiny, steps):
    model, params, z, inputs, reference = tiny
    threshold = 0.45
    got = score_pairs(model, params, z, inputs, reference=reference, pairs="all", steps=steps, threshold=threshold,
                      implementation="xla", tolerance=0.01, block_pairs=8)
    pairs = pair_list(N, "all")
    np.testing.assert_array_equal(got.pairs, pairs)
    want = direct_scores(model, params, z, inputs, reference, pairs, steps, threshold)
    assert got.scores.keys() == want.keys()
    other = pairs[:, 0] != pairs[:, 1]
    for key, value in want.items():
        np.testing.assert_array_equal(got.scores[key][other], value[other], err_msg=key)
        # (i, i) is shape i at every step, where a per-pair decode rounds u z_i + t z_i: equal to a voxel
        np.testing.assert_allclose(got.scores[key][~other], value[~other], atol=2e-3, err_msg=key)
    assert got.decodes == N + len(pair_list(N, "unique")) * (steps - 2)  # each distinct shape once
    unique = score_pairs(model, params, z, inputs, reference=reference, pairs="unique", steps=steps,
                         threshold=threshold, implementation="xla", tolerance=0.01, block_pairs=8)
    forward = pairs[:, 0] < pairs[:, 1]
    for key, value in unique.scores.items():
        np.testing.assert_array_equal(value, got.scores[key][forward], err_msg=key)


def test_a_store_is_resumed_from_and_its_blocks_reused(tiny, tmp_path):
    model, params, z, inputs, reference = tiny
    settings = dict(reference=reference, pairs="all", steps=3, implementation="xla", block_pairs=4)
    with BlockStore(tmp_path, {"run": "tiny"}, 4) as store:
        first = score_pairs(model, params, z, inputs, **settings, store=store)
    assert (first.num_blocks, first.blocks_computed) == (3, 3)  # 6 unique pairs in 2 blocks, 4 shapes in 1
    with BlockStore(tmp_path, {"run": "tiny"}) as store:
        again = score_pairs(model, params, z, inputs, **settings, store=store)
    assert again.blocks_computed == 0
    for key, value in first.scores.items():
        np.testing.assert_array_equal(again.scores[key], value, err_msg=key)


def test_compiling_ahead_from_shapes_alone_leaves_score_pairs_nothing_to_compile(tiny):
    model, params, z, inputs, reference = tiny
    settings = dict(pairs="all", steps=5, threshold=0.4, implementation="xla", block_pairs=8)
    specs = [jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)) for a in (z, inputs, reference)]
    api._COMPILED.clear()
    assert api.compile_score_pairs(model, params, *specs[:2], reference=specs[2], **settings) > 0
    compiled = dict(api._COMPILED)
    assert len(compiled) == 1
    got = score_pairs(model, params, z, inputs, reference=reference, **settings)
    assert api._COMPILED == compiled  # the same programs, found by the operands' shapes: no compile
    with pytest.raises(ValueError, match="memory_budget_mb must be a finite number > 0, got inf"):
        api.compile_score_pairs(model, params, *specs[:2], reference=specs[2], **settings,
                                memory_budget_mb=float("inf"))
    api._COMPILED.clear()
    want = score_pairs(model, params, z, inputs, reference=reference, **settings)  # compiled from the arrays
    for key, value in want.scores.items():
        np.testing.assert_array_equal(got.scores[key], value, err_msg=key)


def test_bad_arguments_are_refused(tiny):
    model, params, z, inputs, reference = tiny
    with pytest.raises(ValueError, match="pairs must be one of"):
        score_pairs(model, params, z, inputs, reference=reference, pairs="some")
    with pytest.raises(ValueError, match="implementation must be one of"):
        score_pairs(model, params, z, inputs, reference=reference, implementation="pallas")
    with pytest.raises(ValueError, match="memory_budget_mb must be a finite number"):
        score_pairs(model, params, z, inputs, reference=reference, memory_budget_mb=float("inf"))


@pytest.mark.gpu
def test_the_triton_kernel_paths_are_scored_as_decoded():
    """Widths the kernel covers (16, 32). The scores of every ordered pair are those of the paths
    `lerp_decode_all_pairs` decodes with the same kernel, scored directly. (Against another
    implementation they can't be compared score by score: on an untrained model a path changes by a few
    voxels a step, as few as bf16 rounding flips, so its monotonicity is noise; the ops' suites check
    the kernel's voxels against the float32 reference.)"""
    n, steps = 40, 11
    model = models.Autoencoder(models.model_config())
    params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32)))
    z = jax.random.normal(jax.random.key(1), (n, 2, 2, 2, 8))
    rng = np.random.default_rng(0)
    inputs, reference = rng.random((n, 32, 32, 32)) < 0.3, rng.random((50, 32, 32, 32)) < 0.3
    got = score_pairs(model, params, z, inputs, reference=reference, pairs="all", steps=steps,
                      implementation="triton", tolerance=0.01)
    pairs = pair_list(n, "all")
    path = lerp_decode_all_pairs(model, params, z, steps=steps, implementation="triton")[pairs[:, 0], pairs[:, 1]]
    packed = pack_voxels(inputs)
    want = path_scores(path, packed[pairs[:, 0]], packed[pairs[:, 1]], 0.01) | midpoint_novelty(
        path, *reference_matrix(reference))
    assert got.scores.keys() == want.keys()
    for key, value in want.items():
        # a block's decode may differ from the whole call's in a voxel whose logit is at the threshold
        same = np.isclose(got.scores[key], np.asarray(value), rtol=1e-6, atol=1e-6)
        assert same.mean() > 0.99, (key, same.mean())
