"""`fer-bench run --method scn|mtac` trains on every real dataset, from its own format on disk."""

import json
from pathlib import Path

import pytest
from fixtures_datasets import (
    cache_env_fixture,  # noqa: F401  (fixture)
    make_affectnet_csv,
    make_affwild2,
    make_ferplus_csv,
    make_rafdb,
)

from fer_bench.cli import main

TINY = [
    "--epochs",
    "2",
    "--batch-size",
    "4",
    "--image-size",
    "32",
    "--backbone",
    "test_resnet",
    "--val-fraction",
    "0.25",
    "--no-progress",
]


def _prepare_and_run(tmp_path: Path, dataset: str, root: Path, *run_args: str) -> dict:
    assert (
        main(
            [
                "prepare",
                "--dataset",
                dataset,
                "--data-root",
                str(root),
                "--image-size",
                "16",
                "--workers",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    out = tmp_path / "runs"
    assert (
        main(
            [
                "run",
                "--dataset",
                dataset,
                "--data-root",
                str(root),
                "--output-dir",
                str(out),
                *TINY,
                *run_args,
            ]
        )
        == 0
    )
    [record] = [json.loads(p.read_text()) for p in out.glob("*/record.json")]
    assert record["status"] == "done"
    return record


def test_scn_on_rafdb_with_symmetric_noise(tmp_path, cache_env):
    record = _prepare_and_run(
        tmp_path,
        "rafdb",
        make_rafdb(tmp_path / "RAF-DB", truncated=None),
        "--method",
        "scn",
        "--noise",
        "30",
        "-M",
        "relabel_epoch=1",
    )
    assert record["dataset"]["class_names"][0] == "surprise"
    assert record["diagnostics"]["relabel"] is not None


def test_mtac_on_ferplus_with_its_real_noise(tmp_path, cache_env):
    record = _prepare_and_run(
        tmp_path,
        "ferplus",
        make_ferplus_csv(tmp_path / "FERPlus"),
        "--method",
        "mtac",
        "--noise-type",
        "real",
        "--batch-size",  # the fixture's training split has 3 faces: larger batches are refused
        "3",
    )
    assert record["noise"]["type"] == "real"
    assert record["dataset"]["val_source"] == "dataset"  # PublicTest, not a held-out part


def test_mtac_on_affwild2_uses_its_au_and_va_labels(tmp_path, cache_env):
    root = make_affwild2(
        tmp_path / "AffWild2",
        {"v1": [0, 1, 2, 3, 4, 5, 6, 4], "v2": [4, 5, 1, 0]},
        {"v1": "Train_Set", "v2": "Validation_Set"},
    )
    record = _prepare_and_run(tmp_path, "affwild2", root, "--method", "mtac", "--noise", "10")
    logs = record["history"][-1]["train"]
    assert "au" in logs and "va" in logs


def test_ce_on_affectnet_with_balanced_sampling(tmp_path, cache_env):
    root = tmp_path / "AffectNet"
    root.mkdir()
    make_affectnet_csv(root, train=[0, 1, 2, 3, 4, 5, 6, 7, 1, 1, 1, 8], val=[0, 1, 2, 3])
    record = _prepare_and_run(tmp_path, "affectnet", root, "--method", "ce", "--balanced-sampling")
    assert record["config"]["balanced_sampling"] is True


@pytest.mark.parametrize("method", ["scn", "mtac"])
def test_smallest_batch_trains_and_a_batch_of_one_is_refused(tmp_path, method, capsys):
    args = [
        "run",
        "--method",
        method,
        "--output-dir",
        str(tmp_path),
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--backbone",
        "test_resnet",
        "-D",
        "num_train=20",
        "-D",
        "num_test=10",
        "-D",
        "size=32",
        "--no-progress",
    ]
    assert main([*args, "--batch-size", "2"]) == 0
    assert main([*args, "--batch-size", "1"]) == 2
    assert "--batch-size must be >= 2" in capsys.readouterr().err


def test_annotator_noise_on_ferplus_draws_from_the_votes(tmp_path, cache_env):
    record = _prepare_and_run(
        tmp_path,
        "ferplus",
        make_ferplus_csv(tmp_path / "FERPlus"),
        "--method",
        "ce",
        "--noise-type",
        "annotator",
        "--batch-size",
        "2",
    )
    assert record["noise"]["type"] == "annotator"
    assert 0 <= record["noise"]["rate_actual"] < 100


@pytest.mark.parametrize(
    "args, message",
    [
        (["--noise-type", "annotator"], "dataset 'synthetic' has no annotator noisy labels"),
        (["--noise-type", "real"], "needs one that has (ferplus)"),
        (["--noise-type", "bernoulli", "--noise", "100"], "percentage in [0, 100)"),
        (["--noise-type", "annotator", "--noise", "20"], "takes no --noise rate"),
    ],
)
def test_impossible_noise_protocols_are_one_line_and_leave_no_record(
    tmp_path, capsys, args, message
):
    assert main(["run", "--output-dir", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not list(tmp_path.rglob("record.json"))
