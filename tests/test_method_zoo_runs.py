"""Every registered method trains end to end on the synthetic set and on each real format.

The fixtures are prepared once per module (a private cache), then every method trains one short
run on each: a method that breaks on VA/AU-less data, 8 classes, a dataset's own validation
split or balanced sampling fails here, not in a user's sweep.
"""

import json
from pathlib import Path

import pytest
from fixtures_datasets import make_affectnet_csv, make_affwild2, make_ferplus_csv, make_rafdb

from fer_bench.cli import main
from fer_bench.registry import list_methods

TINY = ["--epochs", "2", "--batch-size", "4", "--image-size", "32", "--backbone", "test_resnet"]
TINY += ["--val-fraction", "0.25", "--no-progress"]

#: Method-specific settings that let the interesting part run inside two tiny epochs.
SHORT = {
    "scn": ["-M", "relabel_epoch=1"],
    "mtac": ["-M", "relabel_epoch=1"],
    "coteaching": ["-M", "num_gradual=1"],  # epoch 2 already forgets tau (the noise rate)
    "dividemix": ["-M", "warmup_epochs=1", "-M", "lambda_u=25"],  # epoch 2: GMM + MixMatch
}


def _formats(base: Path) -> dict[str, tuple[Path, list[str]]]:
    affectnet = base / "AffectNet"
    affectnet.mkdir()
    make_affectnet_csv(affectnet, train=[0, 1, 2, 3, 4, 5, 6, 7, 1, 1, 1, 8], val=[0, 1, 2, 3])
    affwild2 = make_affwild2(
        base / "AffWild2",
        {"v1": [0, 1, 2, 3, 4, 5, 6, 4], "v2": [4, 5, 1, 0]},
        {"v1": "Train_Set", "v2": "Validation_Set"},
    )
    return {
        "rafdb": (make_rafdb(base / "RAF-DB", truncated=None), ["--noise", "30"]),
        # The FERPlus fixture's training split has 3 faces: a batch of 2.
        "ferplus": (
            make_ferplus_csv(base / "FERPlus"),
            ["--noise-type", "real", "--batch-size", "2"],
        ),
        "affectnet": (affectnet, ["--balanced-sampling"]),
        "affwild2": (affwild2, ["--noise", "10"]),
    }


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("formats")
    mp = pytest.MonkeyPatch()
    mp.setenv("FER_BENCH_CACHE", str(base / "cache"))
    formats = _formats(base)
    for dataset, (root, _) in formats.items():
        args = ["prepare", "--dataset", dataset, "--data-root", str(root), "--image-size", "16"]
        assert main([*args, "--workers", "1", "--no-progress"]) == 0
    yield formats
    mp.undo()


def _run(out: Path, *args: str) -> dict:
    assert main(["run", "--output-dir", str(out), *TINY, *args]) == 0
    [record] = [json.loads(p.read_text()) for p in out.glob("*/record.json")]
    assert record["status"] == "done"
    return record


@pytest.mark.parametrize("method", list_methods())
def test_method_trains_on_synthetic_and_every_real_format(method, prepared, tmp_path):
    extra = SHORT.get(method, [])
    record = _run(
        tmp_path / "synthetic",
        *["--method", method, "--noise", "20", *extra],
        *["-D", "num_train=40", "-D", "num_test=12", "-D", "size=32"],
    )
    assert record["final"]["last"]["test"]["accuracy"] >= 0
    for dataset, (root, noise) in prepared.items():
        record = _run(
            tmp_path / dataset,
            *["--method", method, "--dataset", dataset, "--data-root", str(root), *noise, *extra],
        )
        assert record["config"]["method"] == method
        history = record["history"]
        assert len(history) == 2 and all(e["train"]["loss"] == e["train"]["loss"] for e in history)


def test_the_method_zoo_is_registered():
    zoo = {"ce", "scn", "mtac", "gce", "sce", "elr", "ce_aux", "eac", "rul", "coteaching"}
    assert zoo | {"dividemix"} <= set(list_methods())
