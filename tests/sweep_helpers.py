"""Helpers for the sweep, status and Slurm tests: tiny sweep files and waiting on records."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

#: Run options that make a real run finish in a few seconds on a CPU.
TINY_GRID: dict[str, Any] = {
    "method": "ce",
    "dataset": "synthetic",
    "epochs": 1,
    "batch_size": 32,
    "image_size": 32,
    "backbone": "test_resnet",
    "dataset_options": {"num_train": 120, "num_test": 42, "size": 32},
    "progress": False,
    "device": "cpu",
}

#: A grid point whose run passes the pre-flight checks, starts, and then fails in training (an
#: absurd learning rate diverges in the first epoch). Bad input never gets this far.
FAILING_GRID: dict[str, Any] = {**TINY_GRID, "lr": 1e30}
FAILING_ERROR = "training diverged at epoch 1"


def write_sweep(
    path: Path,
    grid: dict[str, Any] | list[dict[str, Any]],
    output_dir: Path,
    executor: dict[str, Any] | None = None,
    name: str | None = None,
) -> Path:
    data: dict[str, Any] = {"output_dir": str(output_dir), "grid": grid}
    if name:
        data["name"] = name
    data["executor"] = {"kind": "inprocess", **(executor or {})}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def wait_until(predicate, timeout: float, what: str, poll: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test on time-out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
