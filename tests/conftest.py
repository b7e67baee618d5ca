"""Shared test setup: CPU-friendly JAX settings and a compilation cache, the path to the real data in
../shared, the `gpu` and `interpret` markers, and lowering for CUDA on an abstract H100."""

import atexit
import os
import pathlib
import shutil
import tempfile

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("LERPNET_SHARED_DATA", ROOT.parent / "shared" / "data"))

if jax.default_backend() == "cpu":
    # CI has 2 cores and no GPU: compile fast, run small, in this process and in the programs tests start.
    jax.config.update("jax_disable_most_optimizations", True)
    os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "true")
    # Tests compile the same programs again and again (each train_and_evaluate call jits afresh): a
    # compilation cache of this test process turns the repeats into loads.
    _COMPILED = tempfile.mkdtemp(prefix="lerpnet_tests_jax_cache_")
    atexit.register(shutil.rmtree, _COMPILED, ignore_errors=True)
    jax.config.update("jax_compilation_cache_dir", _COMPILED)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

ON_GPU = jax.default_backend() == "gpu"
H100 = jax.sharding.AbstractDevice(device_kind="NVIDIA H100 80GB HBM3", num_cores=132, platform="cuda")


def pytest_configure(config):
    config.addinivalue_line("markers", "interpret: Pallas kernels in interpret mode, the CPU stand-in "
                                       "(skipped on a GPU, where the compiled kernels are tested)")


def pytest_collection_modifyitems(config, items):
    """Skip `gpu` tests off the GPU and `interpret` tests on it (jax's tests/pallas split)."""
    for item in items:
        if item.get_closest_marker("gpu") and not ON_GPU:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if item.get_closest_marker("interpret") and ON_GPU:
            item.add_marker(pytest.mark.skip(reason="interpret mode is the CPU stand-in for the GPU kernels"))


@pytest.fixture
def lower_for_h100():
    """lower(fn, *args) -> the StableHLO text of jit(fn) lowered for CUDA inside an abstract H100 mesh.

    Interpret mode ignores the GPU backends' constraints (Triton's power-of-two arrays and dot sizes,
    Mosaic GPU's register layouts, TMA and the shared-memory budget); this runs the real Pallas ->
    Triton / Mosaic GPU lowering with no GPU present. It cannot catch what happens later, at XLA
    compile time on a device (ptxas, the Triton compiler proper).
    """

    def lower(fn, *args) -> str:
        with jax.sharding.use_abstract_mesh(jax.sharding.AbstractMesh((1,), ("x",), abstract_device=H100)):
            return jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).as_text()

    return lower


@pytest.fixture(scope="package")
def shared_data() -> pathlib.Path:
    """The real voxel data directory, or a skip saying why it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real voxel data not found at {SHARED_DATA} (it lives in ../shared/data beside the checkout)")
    return SHARED_DATA
