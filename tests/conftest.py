"""Shared test setup: CPU-friendly JAX settings and the path to the real data in ../shared."""

import os
import pathlib

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("LERPNET_SHARED_DATA", ROOT.parent / "shared" / "data"))

if jax.default_backend() == "cpu":
    # CI has 2 cores and no GPU: compile fast, run small.
    jax.config.update("jax_disable_most_optimizations", True)

ON_GPU = jax.default_backend() == "gpu"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """The real voxel data directory, or a skip saying why it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real voxel data not found at {SHARED_DATA} (it lives in ../shared/data beside the checkout)")
    return SHARED_DATA
