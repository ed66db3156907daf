"""The generic one-folder-per-class loader: class order, optional val split, bad folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_datasets import (
    cache_env_fixture,  # noqa: F401  (provides the cache_env fixture)
    level,
    mean_levels,
    write_image,
    write_truncated_jpeg,
)

from fer_bench.errors import FerBenchError
from fer_bench.prepare import prepare_dataset
from fer_bench.registry import create_dataset


def make_folders(root: Path) -> Path:
    for split, per_class in (("train", 2), ("val", 1), ("test", 1)):
        for label, name in enumerate(["anger", "happiness", "neutral"]):
            for i in range(per_class):
                write_image(root / split / name / f"{i}.png", level(label), fmt="PNG")
    write_truncated_jpeg(root / "train" / "happiness" / "broken.jpg")
    (root / "train" / "happiness" / "notes.txt").write_text("not an image")
    return root


def test_sorted_classes_splits_and_corrupt_file(tmp_path: Path, cache_env: Path) -> None:
    make_folders(tmp_path)
    result = prepare_dataset("imagefolder", tmp_path, align="none", image_size=16, progress=False)
    data = create_dataset("imagefolder", root=str(tmp_path))
    assert data.class_names == ["anger", "happiness", "neutral"]
    assert data.train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.train.names[2] == "happiness/0.png"
    assert mean_levels(data.train.images) == [level(x) for x in data.train.labels.tolist()]
    assert data.val is not None and data.val.labels.tolist() == [0, 1, 2]
    assert data.test.labels.tolist() == [0, 1, 2]
    assert result.manifest["splits"]["train"]["listed"] == 7  # notes.txt is not an image
    assert [c["file"] for c in result.manifest["corrupt"]] == ["train/happiness/broken.jpg"]
    # only confusions between classes the folders have: anger->disgust has no disgust here
    assert data.asymmetric_map == {"happiness": "neutral"}


def test_classes_txt_sets_the_order(tmp_path: Path, cache_env: Path) -> None:
    make_folders(tmp_path)
    (tmp_path / "classes.txt").write_text("neutral\nhappiness\nanger\nsadness\n")
    prepare_dataset("imagefolder", tmp_path, align="none", image_size=16, progress=False)
    data = create_dataset("imagefolder", root=str(tmp_path))
    assert data.class_names == ["neutral", "happiness", "anger", "sadness"]
    assert data.test.labels.tolist() == [2, 1, 0]
    assert data.asymmetric_map["sadness"] == "neutral"


def test_unknown_class_folder_and_duplicate_class(tmp_path: Path, cache_env: Path) -> None:
    make_folders(tmp_path)
    write_image(tmp_path / "test" / "contempt" / "0.png", 5, fmt="PNG")
    with pytest.raises(FerBenchError, match=r"class folder .*test/contempt is not a known class"):
        prepare_dataset("imagefolder", tmp_path, align="none", progress=False)
    (tmp_path / "classes.txt").write_text("anger\nhappiness\n\nanger\n")
    with pytest.raises(FerBenchError, match=r"classes\.txt:4: class 'anger' listed twice"):
        prepare_dataset("imagefolder", tmp_path, align="none", progress=False)


def test_missing_test_folder(tmp_path: Path, cache_env: Path) -> None:
    write_image(tmp_path / "train" / "anger" / "0.png", 1, fmt="PNG")
    with pytest.raises(
        FerBenchError, match=r"missing folder .*/test \(expected <root>/test/<class>/\*\.jpg\)"
    ):
        prepare_dataset("imagefolder", tmp_path, progress=False)
