"""The all-pairs program keeps compiled programs in $LERPNET_CACHE: in tests, a folder of this test run."""

import os

import pytest


@pytest.fixture(scope="package", autouse=True)
def compilation_cache_of_the_test_run(tmp_path_factory):
    os.environ.setdefault("LERPNET_CACHE", str(tmp_path_factory.mktemp("lerpnet_cache")))
