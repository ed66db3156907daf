"""FERPlus's real faces from ../shared/data/ferplus (never committed): skipped where absent."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fer_bench.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ferplus"

pytestmark = pytest.mark.skipif(
    not (SHARED / "make_ferplus_root.py").exists(), reason="no ../shared/data/ferplus here"
)


@pytest.fixture(scope="module")
def ferplus_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ferplus-root")
    subprocess.run([sys.executable, str(SHARED / "make_ferplus_root.py"), str(root)], check=True)
    args = ["prepare", "--dataset", "ferplus", "--data-root", str(root), "--image-size", "48"]
    assert main([*args, "--no-progress"]) == 0
    return root


@pytest.mark.parametrize(
    "noise_type, low, high",
    [("annotator", 17.0, 21.0), ("real", 30.0, 34.0)],  # about 19 % and 32 % (README)
)
def test_real_and_annotator_noise_on_real_ferplus(ferplus_root, tmp_path, noise_type, low, high):
    out = tmp_path / "runs"
    args = ["run", "--dataset", "ferplus", "--data-root", str(ferplus_root), "--noise-type"]
    args += [noise_type, "-D", "image_size=48", "--image-size", "48", "--backbone"]
    args += ["test_resnet", "--epochs", "1", "--output-dir", str(out), "--no-progress"]
    assert main(args) == 0
    [record] = [json.loads(p.read_text()) for p in out.glob("*/record.json")]
    assert record["status"] == "done"
    assert record["dataset"]["num_train"] == 25060 and record["dataset"]["val_labels"] == "clean"
    assert low < record["noise"]["rate_actual"] < high
    assert record["final"]["last"]["test"]["accuracy"] > 100 / 8  # learns something in 1 epoch
