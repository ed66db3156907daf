"""Pre-flight checks: bad input is one line and exit 2 before any record exists, and
``fer-bench sweep --dry-run`` runs the same checks over a whole grid, cheaply."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from fixtures_datasets import cache_env_fixture, make_rafdb  # noqa: F401  (fixture)
from sweep_helpers import TINY_GRID, write_sweep

from fer_bench.cli import main

TINY = ["--epochs", "1", "--batch-size", "32", "--image-size", "32", "--backbone", "test_resnet"]
TINY += ["-D", "num_train=120", "-D", "num_test=42", "-D", "size=32", "--no-progress"]


def _refused(capsys, argv: list[str], out_dir: Path) -> str:
    code = main([*argv, "--output-dir", str(out_dir)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("fer-bench: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "weights_only=False" not in err
    assert not list(out_dir.rglob("record.json")), "a refused run must leave no record"
    return err


def _weights(tmp_path: Path, kind: str) -> str:
    path = tmp_path / f"{kind}.pth"
    if kind == "junk":
        path.write_bytes(b"not a torch file")
    elif kind == "pickled":
        torch.save({"args": argparse.Namespace(lr=0.1)}, path)
    else:  # tensors, but not this backbone's
        torch.save({"fc.weight": torch.zeros(3, 3)}, path)
    return str(path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pretrained", "junk"], "not a loadable weights file (not a PyTorch file)"),
        (["--pretrained", "pickled"], "holds a pickled argparse.Namespace"),
        (["--pretrained", "other"], "does not fit the backbone: 90 missing"),
        (["--backbone", "resnet_nope"], "unknown timm backbone 'resnet_nope'"),
        (["--noise-type", "real"], "--noise-type real needs one that has"),
        (["--noise-type", "real", "--noise", "20"], "takes no --noise rate"),
        (["-D", "num_train=3"], "synthetic set needs num_train and num_test >= 7"),
        (["--batch-size", "500"], "--batch-size 500 is larger than the training split (108"),
        (["--image-size", "16"], "--image-size 16 is below what backbone 'test_resnet' accepts"),
        (["--noise-file", "/no/such/noise.txt", "--noise-type", "file"], "noise.txt"),
    ],
)
def test_bad_input_is_refused_before_any_record(argv, message, tmp_path, capsys):
    argv = [
        _weights(tmp_path, a) if i and argv[i - 1] == "--pretrained" else a
        for i, a in enumerate(argv)
    ]
    err = _refused(capsys, ["run", *TINY, *argv], tmp_path / "runs")
    assert message in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_an_absent_device_is_refused_before_any_record(tmp_path, capsys):
    err = _refused(capsys, ["run", *TINY, "--device", "cuda"], tmp_path / "runs")
    assert "--device cuda asked for, but no CUDA device is available" in err


def test_a_missing_data_root_is_named_not_a_prepare_command(tmp_path, capsys, cache_env):
    err = _refused(
        capsys, ["run", "--dataset", "rafdb", "--data-root", "/no/such/RAF-DB"], tmp_path / "runs"
    )
    assert "data root /no/such/RAF-DB for 'rafdb' does not exist" in err and "prepare" not in err


def test_a_failing_prepare_leaves_no_lock_file(tmp_path, capsys, cache_env):
    (tmp_path / "empty").mkdir()
    for root in (tmp_path / "empty", tmp_path / "absent"):
        assert main(["prepare", "--dataset", "rafdb", "--data-root", str(root)]) == 2
        assert capsys.readouterr().err.count("\n") == 1
    assert not list(cache_env.rglob(".lock-*"))
    assert not (cache_env / "rafdb").exists() or not any((cache_env / "rafdb").iterdir())
    # and a prepare that works leaves none either
    root = make_rafdb(tmp_path / "RAF-DB", truncated=None)
    assert main(["prepare", "--dataset", "rafdb", "--data-root", str(root), "--no-progress"]) == 0
    assert not list(cache_env.rglob(".lock-*"))


def test_yaml_errors_name_line_and_column(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid:\n  method: ce\n   seed: 1\n")
    assert main(["sweep", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "not valid YAML: line 3, column 8: mapping values are not allowed here" in err


def test_dry_run_checks_every_run_and_lists_the_refused(tmp_path, capsys):
    good = TINY_GRID["dataset_options"]
    grid = {
        **TINY_GRID,
        "dataset_options": [good, {**good, "num_train": 3}],
        "batch_size": [32, 500],
    }
    out_dir = tmp_path / "runs"
    path = write_sweep(tmp_path / "s.yaml", grid, out_dir)
    assert main(["sweep", str(path), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert "3 of 4 runs would be refused" in captured.err and captured.err.count("\n") == 1
    assert "pre-flight: 3 of 4 runs would be refused" in captured.out
    assert captured.out.count("num_train and num_test >= 7") == 2
    assert captured.out.count("--batch-size 500 is larger than the training split") == 1
    assert not out_dir.exists()


def test_dry_run_of_a_big_grid_builds_each_dataset_and_backbone_once(tmp_path, capsys, monkeypatch):
    import fer_bench.backbones
    import fer_bench.registry

    calls = {"dataset": 0, "backbone": 0}
    make_dataset, check_backbone = (
        fer_bench.registry.create_dataset,
        fer_bench.backbones.check_backbone,
    )

    def counting_dataset(*args, **kwargs):
        calls["dataset"] += 1
        return make_dataset(*args, **kwargs)

    def counting_backbone(*args, **kwargs):
        calls["backbone"] += 1
        return check_backbone(*args, **kwargs)

    monkeypatch.setattr(fer_bench.registry, "create_dataset", counting_dataset)
    monkeypatch.setattr(fer_bench.backbones, "check_backbone", counting_backbone)
    grid = {**TINY_GRID, "method": ["ce", "scn", "mtac"], "noise": [0, 10, 20, 30]}
    grid["seed"] = list(range(9))
    path = write_sweep(tmp_path / "s.yaml", grid, tmp_path / "runs")
    assert main(["sweep", str(path), "--dry-run"]) == 0
    assert "pre-flight: all 108 runs pass" in capsys.readouterr().out
    assert calls == {"dataset": 1, "backbone": 1}
