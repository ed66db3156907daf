"""``fer-bench prepare`` end to end through ``fer_bench.cli.main``, and ``run`` without a cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_datasets import (
    cache_env_fixture,  # noqa: F401  (provides the cache_env fixture)
    make_rafdb,
    write_image,
)
from PIL import Image

from fer_bench.cli import main
from fer_bench.registry import create_dataset


def test_prepare_command_end_to_end(
    tmp_path: Path, cache_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_rafdb(tmp_path / "RAF-DB")
    cache = tmp_path / "elsewhere"
    argv = [
        "prepare",
        "--dataset",
        "rafdb",
        "--data-root",
        str(root),
        "--image-size",
        "16",
        "--workers",
        "2",
        "--cache-dir",
        str(cache),
        "--no-progress",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "train: 7 stored of 8 listed (1 corrupt, 0 missing, 0 without a detected face)" in out
    assert "note: the official train split has 12271 samples, this copy lists 8" in out
    assert (
        f"run: fer-bench run --method scn --dataset rafdb --data-root {root} "
        f"--dataset-option cache_dir={cache} --noise 20"
    ) in out

    [manifest_path] = cache.glob("rafdb/*/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["image_size"] == 16 and manifest["align"] == "none"
    assert manifest["corrupt"][0]["file"] == "Image/aligned/train_00003_aligned.jpg"
    assert "truncated" in manifest["corrupt"][0]["error"].lower()
    assert manifest["identity"]["root"] == str(root.resolve())
    assert len(manifest["sources"]["EmoLabel/list_patition_label.txt"]) == 40
    data = create_dataset("rafdb", root=str(root), cache_dir=str(cache))
    assert len(data.train) == 7

    assert main(argv) == 0
    assert "already prepared" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--dataset", "rafdb", "--data-root", "/no/such/dir"],
            "data root /no/such/dir for 'rafdb' does not exist",
        ),
        (
            ["--dataset", "rafdb", "--data-root", ".", "--dataset-option", "bogus=1"],
            "unknown dataset option(s) bogus for 'rafdb'; known: images='aligned'",
        ),
        (
            ["--dataset", "synthetic", "--data-root", "."],
            "dataset 'synthetic' is not read from raw files",
        ),
        (
            ["--dataset", "fer2013", "--data-root", ".", "--align", "mtcnn"],
            "align='mtcnn' for 'fer2013': expected one of none",
        ),
        (["--dataset", "nope", "--data-root", "."], "unknown dataset 'nope'"),
    ],
)
def test_prepare_errors_are_one_line(
    argv: list[str], message: str, cache_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prepare", *argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fer-bench: error: ") and err.count("\n") == 1
    assert message in err


def test_run_without_cache_names_the_prepare_command(
    tmp_path: Path, cache_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_rafdb(tmp_path / "RAF-DB")
    code = main(
        [
            "run",
            "--method",
            "ce",
            "--dataset",
            "rafdb",
            "--data-root",
            str(root),
            "--noise",
            "20",
            "--device",
            "cpu",
            "--output-dir",
            str(tmp_path / "runs"),
            "--no-progress",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"no prepared cache for rafdb under {cache_env / 'rafdb'}" in err
    assert f"run: fer-bench prepare --dataset rafdb --data-root {root}" in err


def test_mtcnn_prepare_in_worker_processes(
    tmp_path: Path, cache_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    root = tmp_path / "photos"
    photo = Image.fromarray(skimage_data.astronaut()).resize((256, 256))
    (root / "train" / "happiness").mkdir(parents=True)
    photo.save(root / "train" / "happiness" / "astronaut.jpg")
    write_image(root / "train" / "neutral" / "blank.png", 128, fmt="PNG")
    write_image(root / "test" / "neutral" / "blank.png", 90, fmt="PNG")
    argv = [
        "prepare",
        "--dataset",
        "imagefolder",
        "--data-root",
        str(root),
        "--image-size",
        "32",
        "--workers",
        "2",
        "--no-progress",
    ]
    assert main(argv) == 0
    assert (
        "train: 2 stored of 2 listed (0 corrupt, 0 missing, 1 without a detected face)"
        in capsys.readouterr().out
    )
    data = create_dataset("imagefolder", root=str(root))
    assert data.meta["align"] == "mtcnn"
    [manifest_path] = cache_env.glob("imagefolder/*/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["no_face"] == ["train/neutral/blank.png", "test/neutral/blank.png"]
    # the face was warped onto the template, not just centre-cropped like the blank images
    centre = np.asarray(photo.resize((32, 32), Image.Resampling.BICUBIC)).transpose(2, 0, 1)
    assert np.abs(data.train.images[0].numpy().astype(int) - centre).mean() > 20
    assert data.train.images[1].float().mean().round() == 128
