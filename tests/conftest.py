"""Shared fixtures: a private cache directory and tiny synthetic datasets."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# Keep generated synthetic sets and prepared caches out of the user's home during tests; the
# directory made here goes when the session ends (one set by the caller is left alone).
if "FER_BENCH_CACHE" not in os.environ:
    _TEST_CACHE = tempfile.mkdtemp(prefix="fer-bench-test-cache-")
    os.environ["FER_BENCH_CACHE"] = _TEST_CACHE
    atexit.register(shutil.rmtree, _TEST_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_synthetic():
    """A small synthetic set: enough to learn from in seconds on a CPU."""
    from fer_bench.registry import create_dataset

    return create_dataset("synthetic", num_train=480, num_test=140, size=32)


TINY_RUN = dict(
    dataset="synthetic",
    epochs=3,
    batch_size=32,
    image_size=32,
    backbone="test_resnet",
    dataset_options={"num_train": 240, "num_test": 70, "size": 32},
    progress=False,
)


@pytest.fixture
def tiny_run_config(tmp_path):
    """A RunConfig factory for runs that finish in a few seconds, writing under tmp_path."""
    from fer_bench.config import RunConfig

    def make(**overrides):
        values = {**TINY_RUN, "output_dir": str(tmp_path / "runs"), **overrides}
        return RunConfig(**values)

    return make
