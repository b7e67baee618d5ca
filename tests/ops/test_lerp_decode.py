"""One suite for every lerp_decode implementation against the unfused float32 decode: the Triton kernel
in interpret mode (CPU), compiled (GPU) and lowered for CUDA on an abstract H100; and the fast layer
forms of benchmarks/fast_layers.py equal Flax's."""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from benchmarks import fast_layers
from lerpnet import models
from lerpnet.bitpack import unpack_voxels
from lerpnet.ops.lerp import interpolate_pairs
from lerpnet.ops.lerp_decode import (IMPLEMENTATIONS, MosaicLaunch, TritonLaunch, XlaLaunch, default_implementation,
                                     lerp_decode, lerp_decode_all_pairs)
from lerpnet.ops.lerp_decode import mosaic, triton
from lerpnet.ops.lerp_decode.api import resolve_launch
from lerpnet.ops.lerp_decode.common import threshold_logit
from tests.conftest import H100

STUDY, WIDE = (16, 32), (64, 64)  # decoder_features of the study (configs/modelnet_chairs.py too) and of its :wide_decoder


@pytest.mark.parametrize("formulation", sorted(fast_layers.CONV_TRANSPOSE))
@pytest.mark.parametrize("cin,cout", [(16, 32), (32, 1)])
def test_conv_transpose_formulations_equal_flax(formulation, cin, cout):
    layer = nn.ConvTranspose(cout, (4, 4, 4), (2, 2, 2), padding="SAME")
    x = jax.random.normal(jax.random.key(cin), (2, 6, 6, 6, cin))
    params = layer.init(jax.random.key(1), x)
    params = jax.tree.map(lambda a: jax.random.normal(jax.random.key(a.ndim), a.shape), params)
    # Full float32 arithmetic: on the GPU the default lets convolutions round operands to TF32,
    # differently in each formulation.
    with jax.default_matmul_precision("highest"):
        want = layer.apply(params, x)
        got = fast_layers.CONV_TRANSPOSE[formulation](x, params["params"]["kernel"], params["params"]["bias"])
    assert got.shape == want.shape
    assert jnp.linalg.norm(got - want) / jnp.linalg.norm(want) < 1e-5


@functools.cache
def model_and_latents(n: int, features=STUDY, activation: str = "relu"):
    model = models.Autoencoder(models.model_config(decoder_features=features, activation=activation))
    params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32)))
    # random biases too, so that a dropped bias shows
    params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(a.size), a.shape), params)
    z = jax.random.normal(jax.random.key(n), (n, 2, 2, 2, 8))
    return model, params, z


def every_pair(n: int):
    return tuple(a.ravel() for a in jnp.meshgrid(jnp.arange(n), jnp.arange(n), indexing="ij"))


def reference_logits(model, params, z, i, j, steps):
    with jax.default_matmul_precision("float32"):  # as the reference implementation: not TF32 on a GPU
        lat = interpolate_pairs(z, i, j, steps=steps, implementation="xla").reshape(-1, 2, 2, 2, 8)
        return model.apply(params, lat, method=models.Autoencoder.decode).reshape(len(i), steps, 32, 32, 32)


def check_against_reference(packed, logits, logit: float = 0.0):
    """Every voxel whose float32 logit is clear of the threshold must match; bf16 may flip the near ones."""
    got = np.asarray(unpack_voxels(packed))
    logits = np.asarray(logits)
    want = logits > logit
    clear = np.abs(logits - logit) > 0.05 * logits.std()
    assert got.shape == want.shape
    assert np.array_equal(got[clear], want[clear])
    assert (got != want).mean() < 5e-3
    assert 0.05 < want.mean() < 0.95  # the check is not on an all-empty or all-full grid


@dataclasses.dataclass(frozen=True)
class Case:
    implementation: str | None
    launch: object = None
    features: tuple[int, int] = STUDY
    activation: str = "relu"
    n: int = 3
    steps: int = 3
    step_range: tuple[int, int] | None = None
    threshold: float = 0.5


class LerpDecodeSuite:
    """The parameterized check; subclasses choose the implementations, launches, models and platform."""

    cases: list[Case] = []

    def test_matches_reference(self, case: Case):
        model, params, z = model_and_latents(case.n, case.features, case.activation)
        i, j = (jnp.array([0, 2, 1]), jnp.array([1, 0, 1])) if case.n == 3 else every_pair(case.n)
        packed = lerp_decode(model, params, z, i, j, steps=case.steps, threshold=case.threshold,
                             step_range=case.step_range, implementation=case.implementation, launch=case.launch)
        first, stop = case.step_range or (0, case.steps)
        assert packed.shape == (len(i), stop - first, 32, 32) and packed.dtype == jnp.uint32
        logits = reference_logits(model, params, z, i, j, case.steps)[:, first:stop]
        if case.implementation == "reference":  # the definition: exactly the thresholded decode
            np.testing.assert_array_equal(unpack_voxels(packed), logits > threshold_logit(case.threshold))
        else:
            check_against_reference(packed, logits, threshold_logit(case.threshold))


def pytest_generate_tests(metafunc):
    if metafunc.cls is not None and "case" in metafunc.fixturenames:
        metafunc.parametrize("case", metafunc.cls.cases, ids=_case_id)


def _case_id(case: Case) -> str:
    launch = "" if case.launch is None else "-" + "-".join(
        f"{f.name}{getattr(case.launch, f.name)}" for f in dataclasses.fields(case.launch)
        if getattr(case.launch, f.name) != f.default)
    span = "" if case.step_range is None else f"-steps{case.step_range[0]}to{case.step_range[1]}"
    return (f"{case.implementation}{launch}-{'x'.join(map(str, case.features))}-{case.activation}-n{case.n}"
            f"-T{case.steps}{span}-t{case.threshold}")


class TestHostImplementations(LerpDecodeSuite):
    """The reference and the fused XLA jit (and the default choice) wherever the suite runs."""

    cases = [Case(impl, launch, features, activation, steps=steps, step_range=span, threshold=threshold)
             for impl, launch in (("reference", None), ("xla", XlaLaunch(chunk=2)))
             for features, activation, steps, span, threshold in (
                 (STUDY, "relu", 3, None, 0.5), (WIDE, "relu", 3, None, 0.5),
                 (STUDY, "gelu", 3, None, 0.5), (STUDY, "relu", 5, (1, 3), 0.3))]
    cases += [Case(None), Case("auto", features=WIDE, threshold=0.7)]


@pytest.mark.interpret
class TestTritonInterpret(LerpDecodeSuite):
    """The Triton kernel run by the Pallas interpreter: 6 or 9 items over 3 or 4 programs, so the
    persistent loop runs unevenly; rows < 8 splits up2 (and up1_rows < 8 up1) into slabs."""

    cases = [
        Case("triton", TritonLaunch(programs=4, rows=4, up1_rows=8)),
        Case("triton", TritonLaunch(programs=4, rows=2, up1_rows=2)),
        Case("triton", TritonLaunch(programs=4, rows=4, up1_rows=4), features=WIDE),
        Case("triton", TritonLaunch(programs=3, rows=4), activation="gelu", steps=5, step_range=(1, 3),
             threshold=0.3),
    ]


@pytest.mark.interpret
class TestMosaicInterpret(LerpDecodeSuite):
    """The Mosaic GPU kernel run by its interpreter (its MMAs as jnp dots): 6 items over 4 programs, or
    launches of 4 items under lax.map (the last one partly used), and a step range with a threshold."""

    cases = [
        Case("mosaic", MosaicLaunch(programs=4)),
        Case("mosaic", MosaicLaunch(programs=3, items=4), activation="leaky_relu", steps=5, step_range=(1, 3),
             threshold=0.3),
    ]


@pytest.mark.gpu
class TestGPU(LerpDecodeSuite):
    """Every implementation compiled on the GPU: N = 7, every ordered pair (539 items over 528 or 1056
    programs, so the persistent loop runs unevenly or leaves programs idle), both widths, every
    activation the kernel implements, a threshold and a step range."""

    cases = [Case("triton", launch, n=7, steps=11) for launch in (
        None, TritonLaunch(rows=2, up1_rows=2), TritonLaunch(programs=1056, rows=1, up1_rows=1))]
    cases += [Case("triton", launch, WIDE, n=7, steps=11) for launch in (None, TritonLaunch(up1_rows=4))]
    cases += [Case("triton", None, STUDY, activation, n=7, steps=11) for activation in triton.ACTIVATIONS[1:]]
    cases += [Case(impl, None, features, n=7, steps=11, step_range=(2, 9), threshold=0.3)
              for impl in ("triton", "xla", "auto") for features in (STUDY, WIDE)]
    cases += [Case("mosaic", launch, STUDY, activation, n=7, steps=11) for launch, activation in (
        (None, "relu"), (MosaicLaunch(programs=264, items=100), "relu"), (None, "leaky_relu"))]
    cases += [Case("mosaic", None, STUDY, n=7, steps=11, step_range=(2, 9), threshold=0.3)]


@pytest.mark.gpu
@pytest.mark.parametrize("features", [STUDY, WIDE])
def test_gpu_all_pairs_equals_per_pair_kernel_on_most_bits(features):
    model, params, z = model_and_latents(9, features)
    i, j = every_pair(9)
    want = lerp_decode(model, params, z, i, j, implementation="triton")
    got = lerp_decode_all_pairs(model, params, z, implementation="triton").reshape(want.shape)
    # the same latents up to the kernel's rounding of u h_i + t h_j (fma contraction may differ when swapped)
    assert float(jax.lax.population_count(got ^ want).sum()) / (want.size * 32) < 1e-3


@pytest.mark.gpu
@pytest.mark.parametrize("features", [STUDY, WIDE])
@pytest.mark.parametrize("num_warps", [4, 2])
def test_gpu_triton_equals_xla_on_most_bits(features, num_warps):
    model, params, z = model_and_latents(6, features)
    i, j = every_pair(6)
    a = lerp_decode(model, params, z, i, j, implementation="triton",
                    launch=TritonLaunch(programs=264, rows=2, num_warps=num_warps))
    b = lerp_decode(model, params, z, i, j, implementation="xla")
    assert float(jax.lax.population_count(a ^ b).sum()) / (a.size * 32) < 5e-3


@pytest.mark.parametrize("implementation, n, steps", [("reference", 1, 3), ("reference", 4, 5), ("xla", 3, 4)])
def test_all_pairs_equals_every_ordered_pair_decoded(implementation, n, steps):
    """Decoding each distinct shape once gives the per-pair result at every (i, j, s)."""
    model, params, z = model_and_latents(n)
    i, j = every_pair(n)
    want = lerp_decode(model, params, z, i, j, steps=steps, implementation=implementation)
    got = lerp_decode_all_pairs(model, params, z, steps=steps, implementation=implementation)
    assert got.shape == (n, n, steps, 32, 32)
    diff = np.asarray(unpack_voxels(got.reshape(want.shape))) != np.asarray(unpack_voxels(want))
    logits = np.asarray(reference_logits(model, params, z, i, j, steps))
    # The two agree on every voxel whose logit is clear of the threshold. Near it they may not: on the
    # diagonal u z_i + t z_i may round away from z_i, and on a GPU the convolutions of the two calls
    # (different batch sizes, TF32) may round differently.
    assert not diff[np.abs(logits) > 0.05 * logits.std()].any()
    assert diff.mean() < 5e-3
    if jax.default_backend() == "cpu":  # the CPU's arithmetic does not depend on the batch: off the diagonal
        assert not diff[np.asarray(i != j)].any()  # the latents, hence the shapes, are bit-identical


def test_all_pairs_needs_an_interior_step():
    model, params, z = model_and_latents(2)
    with pytest.raises(ValueError, match="at least 3"):
        lerp_decode_all_pairs(model, params, z, steps=2, implementation="reference")


LOWERINGS = [(features, "relu", rows, up1_rows) for features in (STUDY, WIDE) for rows, up1_rows in ((2, 8), (1, 1))]
LOWERINGS += [(STUDY, activation, 2, 8) for activation in triton.ACTIVATIONS[1:]]


@pytest.mark.parametrize("features, activation, rows, up1_rows", LOWERINGS)
def test_triton_lowers_for_cuda_on_an_abstract_h100(lower_for_h100, features, activation, rows, up1_rows):
    """Interpret mode ignores Triton's constraints (power-of-2 shapes, dot sizes): lower for CUDA too."""
    model, params, z = model_and_latents(3, features, activation)
    i, j = jnp.array([0, 1]), jnp.array([2, 0])
    launch = TritonLaunch(programs=2, rows=rows, up1_rows=up1_rows)
    text = lower_for_h100(lambda p, z, i, j: triton.lerp_decode(model, p, z, i, j, steps=3, span=(0, 3), logit=0.0,
                                                                 launch=launch), params, z, i, j)
    assert "lerp_decode" in text and "triton" in text.lower()


@pytest.mark.parametrize("activation", sorted(mosaic.ACTIVATIONS))
def test_mosaic_lowers_for_cuda_on_an_abstract_h100(lower_for_h100, activation):
    """Its interpreter runs jnp dots for the MMAs and skips the layouts: lower for CUDA too."""
    model, params, z = model_and_latents(3, STUDY, activation)
    i, j = jnp.array([0, 1]), jnp.array([2, 0])
    text = lower_for_h100(lambda p, z, i, j: mosaic.lerp_decode(model, p, z, i, j, steps=3, span=(0, 3), logit=0.0,
                                                                 launch=MosaicLaunch(programs=2)), params, z, i, j)
    assert "mosaic_gpu" in text


def test_mosaic_calls_on_the_same_latents_share_one_lowered_kernel(lower_for_h100):
    """An all-pairs run's programs (the shapes' own grids, blocks of any size, the pictures' paths) call the
    kernel on the same latents with other pairs, steps and thresholds: the kernel is lowered once."""
    model, params, z = model_and_latents(5, STUDY)
    launch = mosaic.default_launch(params)  # what lerp_decode's resolve_launch gives these calls
    mosaic._exported_launch.cache_clear()
    for p, span, logit in ((3, (0, 1), 0.0), (10, (1, 10), 0.0), (4, (0, 11), 1.5)):
        i = j = jnp.zeros((p,), jnp.int32)
        text = lower_for_h100(lambda p_, z_, i_, j_, span=span, logit=logit: mosaic.lerp_decode(
            model, p_, z_, i_, j_, steps=11, span=span, logit=logit, launch=launch), params, z, i, j)
        assert text.count("mosaic_gpu_v2") == 1
    assert mosaic._exported_launch.cache_info()[:2] == (2, 1)  # (hits, misses)
    other_latents = jnp.zeros((6, 2, 2, 2, 8))
    lower_for_h100(lambda p_, z_: mosaic.lerp_decode(model, p_, z_, i, j, steps=11, span=(0, 1), logit=0.0,
                                                     launch=launch), params, other_latents)
    assert mosaic._exported_launch.cache_info().misses == 2


def test_mosaic_lowers_for_cuda_inside_a_two_device_shard_map():
    """score_pairs shards its blocks over a process's devices: the once-lowered kernel is inlined into each
    device's share (an exported one-device function may be called in any device context)."""
    model, params, z = model_and_latents(5, STUDY)
    mesh = jax.sharding.AbstractMesh((2,), ("pairs",), abstract_device=H100)
    launch = mosaic.default_launch(params)
    decode = jax.shard_map(lambda p, zz, i, j: mosaic.lerp_decode(model, p, zz, i, j, steps=11, span=(1, 10), logit=0.0,
                                                                  launch=launch),
                           mesh=mesh, in_specs=(P(), P(), P("pairs"), P("pairs")), out_specs=P("pairs"), check_vma=False)

    def spec(x, partition):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(mesh, partition))

    pairs = jnp.zeros((16,), jnp.int32)
    with jax.sharding.use_abstract_mesh(mesh):
        text = jax.jit(decode).trace(jax.tree.map(lambda a: spec(a, P()), params), spec(z, P()),
                                     spec(pairs, P("pairs")), spec(pairs, P("pairs"))).lower(
            lowering_platforms=("cuda",)).as_text()
    assert text.count("mosaic_gpu_v2") == 1 and "mhlo.num_partitions = 2" in text


def test_mosaic_covers_what_fits_in_shared_memory():
    study, params, _ = model_and_latents(2)
    wide, wide_params, _ = model_and_latents(2, WIDE)
    assert mosaic.unsupported("relu", params) == ""
    assert "over an SM's 227 KiB" in mosaic.unsupported("relu", wide_params)
    assert "the model uses 'gelu'" in mosaic.unsupported("gelu", params)
    with pytest.raises(ValueError, match="shared memory"):
        lerp_decode(wide, wide_params, jnp.zeros((2, 2, 2, 2, 8)), jnp.array([0]), jnp.array([1]),
                    implementation="mosaic")


@pytest.mark.parametrize("c0, c1", [STUDY, (16, 16), (32, 16)])
def test_mosaic_rows_put_one_fragment_loads_rows_in_distinct_banks(c0, c1):
    """An MMA fragment load reads 16 bytes from each of 8 consecutive rows: with the padded row strides
    those 8 x 4 banks (of 32, 4 bytes each) are all different, so the load has no bank conflict."""
    for rows, cols in mosaic._slot_shapes(c0, c1):
        assert rows % 64 == 0  # zeroed by a warpgroup in whole vectors
        stride = 2 * cols  # bytes, bf16
        banks = [(r * stride // 4 + k) % 32 for r in range(8) for k in range(4)]
        assert len(set(banks)) == 32, (cols, stride)
    assert mosaic.shared_memory_bytes(*STUDY) <= 227 * 1024


@pytest.mark.parametrize("hopper", [True, False])
def test_default_rule(monkeypatch, hopper):
    monkeypatch.setattr(mosaic, "on_hopper", lambda: hopper)
    study, params, _ = model_and_latents(2, STUDY)
    wide, wide_params, _ = model_and_latents(2, WIDE)
    tiny = models.Autoencoder(models.model_config(decoder_features=(4, 4)))
    tiny_params = tiny.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32)))
    assert default_implementation(study, params, "gpu") == ("mosaic" if hopper else "triton")
    assert default_implementation(wide, wide_params, "gpu") == "triton"  # (64, 64) does not fit an SM
    assert default_implementation(tiny, tiny_params, "gpu") == "xla"  # widths no kernel covers
    assert default_implementation(study, params, "cpu") == "xla"
    assert set(IMPLEMENTATIONS) == {"triton", "mosaic", "xla", "reference"}


@pytest.mark.parametrize("old_name", ["cuda", "pallas", "jnp"])
def test_unknown_implementations_are_refused(old_name):
    model, params, z = model_and_latents(2)
    with pytest.raises(ValueError, match=f"unknown implementation '{old_name}'"):
        lerp_decode(model, params, z, jnp.array([0]), jnp.array([1]), implementation=old_name)


@pytest.mark.parametrize("threshold", [0, 1, 1.5, -0.1, "0.5", True, None])
def test_bad_thresholds_are_refused(threshold):
    model, params, z = model_and_latents(2)
    with pytest.raises(ValueError, match="threshold must be a number strictly between 0 and 1"):
        lerp_decode(model, params, z, jnp.array([0]), jnp.array([1]), threshold=threshold, implementation="xla")


def test_bad_arguments_are_refused():
    model, params, z = model_and_latents(2)
    i = j = jnp.array([0])
    with pytest.raises(ValueError, match="step_range"):
        lerp_decode(model, params, z, i, j, steps=3, step_range=(2, 4), implementation="reference")
    with pytest.raises(ValueError, match=r"outside \[0, 2\)"):
        lerp_decode(model, params, z, i, jnp.array([2]), implementation="reference")
    with pytest.raises(ValueError, match="launch= for implementation 'xla' takes XlaLaunch, got TritonLaunch"):
        lerp_decode(model, params, z, i, j, implementation="xla", launch=TritonLaunch())
    with pytest.raises(ValueError, match="launch= for implementation 'reference' takes no launch"):
        lerp_decode(model, params, z, i, j, implementation="reference", launch=XlaLaunch())
    tanh = models.Autoencoder(models.model_config(activation="tanh"))
    with pytest.raises(ValueError, match="implements activations relu, .*; the model uses 'tanh'"):
        lerp_decode(tanh, params, z, i, j, implementation="triton")
    tiny = models.Autoencoder(models.model_config(decoder_features=(4, 4)))
    with pytest.raises(ValueError, match=r"powers of two >= 16 .*got \(4, 4\)"):
        lerp_decode(tiny, tiny.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32))), z, i, j, implementation="triton")


def test_resolve_launch_gives_what_each_implementation_runs():
    model, params, _ = model_and_latents(2, features=WIDE)
    assert resolve_launch(model, params, "triton") == ("triton", TritonLaunch(up1_rows=4))  # measured for (64, 64)
    assert resolve_launch(model, params, "xla") == ("xla", IMPLEMENTATIONS["xla"].default_launch(params))
    assert resolve_launch(model, params, "reference") == ("reference", None)
    given = TritonLaunch(programs=4)
    assert resolve_launch(model, params, "triton", given) == ("triton", given)
    assert resolve_launch(model, params, None)[0] == "xla"  # off the GPU


@pytest.mark.parametrize("knobs, match", [
    (dict(programs=0), "TritonLaunch.programs must be a positive integer, got 0"),
    (dict(rows=3), "TritonLaunch.rows must be a power of two, got 3"),
    (dict(up1_rows=16), "rows and up1_rows must divide 8, got 4 and 16"),
    (dict(num_warps=6), "TritonLaunch.num_warps must be a power of two, got 6"),
    (dict(num_stages=1.0), "TritonLaunch.num_stages must be a positive integer"),
])
def test_bad_launches_are_refused(knobs, match):
    with pytest.raises(ValueError, match=match):
        TritonLaunch(**knobs)
    with pytest.raises(dataclasses.FrozenInstanceError):
        TritonLaunch().rows = 2


def test_launches_parse_from_command_line_items_and_name_a_bad_one():
    assert TritonLaunch.parse(["programs=8", "rows=2"]) == TritonLaunch(programs=8, rows=2)
    assert MosaicLaunch.parse(["items=64"]) == MosaicLaunch(items=64)
    with pytest.raises(ValueError, match="launch item 'rows=2' is not k=<integer> for k in items, programs"):
        MosaicLaunch.parse(["rows=2"])
    with pytest.raises(ValueError, match="launch item 'items=-1' is not k=<integer>"):
        MosaicLaunch.parse(["items=-1"])
    with pytest.raises(ValueError, match="TritonLaunch.rows must be a power of two, got 3"):
        TritonLaunch.parse(["rows=3"])


def test_default_launch_is_the_measured_fastest_for_the_models_widths():
    for features, want in ((WIDE, triton.MEASURED_LAUNCHES[WIDE]), (STUDY, triton.MEASURED_LAUNCHES[STUDY]),
                           ((32, 32), TritonLaunch())):
        model = models.Autoencoder(models.model_config(decoder_features=features))
        params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 32)))  # shapes are enough
        assert triton.default_launch(params) == want
    assert triton.MEASURED_LAUNCHES[WIDE] != TritonLaunch()  # (64, 64) channels: the spill-free up1 slab


def test_every_implementation_with_a_launch_has_a_default_launch_of_its_class():
    model = models.Autoencoder(models.model_config(decoder_features=STUDY))
    params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 32)))
    with_launch = {name: module for name, module in IMPLEMENTATIONS.items() if module.LAUNCH is not None}
    assert sorted(with_launch) == ["mosaic", "triton", "xla"]
    for module in with_launch.values():
        assert isinstance(module.default_launch(params), module.LAUNCH)
