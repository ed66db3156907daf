"""AffectNet: face-box crops, ids 8-10, 7/8 classes, valence/arousal, both releases, errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from fixtures_datasets import (
    cache_env_fixture,  # noqa: F401  (provides the cache_env fixture)
    level,
    make_affectnet_csv,
    make_affectnet_npy,
    mean_levels,
)

from fer_bench.errors import FerBenchError
from fer_bench.prepare import prepare_dataset
from fer_bench.registry import create_dataset

TRAIN = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
VAL = [1, 7, 10, 0]


def test_csv_release_crops_the_face_box_and_drops_non_emotions(
    tmp_path: Path, cache_env: Path
) -> None:
    make_affectnet_csv(tmp_path, TRAIN, VAL)
    result = prepare_dataset("affectnet", tmp_path, image_size=16, progress=False)
    data = create_dataset("affectnet", root=str(tmp_path))

    assert data.class_names[0] == "neutral" and data.class_names[-1] == "contempt"
    assert data.train.labels.tolist() == list(range(8))
    assert data.test.labels.tolist() == [1, 7, 0]  # the validation set is the test split
    assert data.val is None
    # the crop is exactly the grey face box, not the black photo around it
    assert mean_levels(data.train.images) == [level(x) for x in range(8)]
    assert data.train.names[1] == "2/train001.png"
    va = data.train.valence_arousal
    assert math.isnan(va[0, 0]) and math.isnan(va[0, 1])  # -2 = not rated
    assert va[3].tolist() == pytest.approx([0.3, -0.5])
    notes = result.manifest["notes"]
    assert notes["dropped"]["train"] == {"none": 1, "uncertain": 1, "no_face": 1}
    assert notes["dropped"]["test"] == {"no_face": 1}
    assert data.meta["recommended"] == {"balanced_sampling": True}
    assert set(result.manifest["sources"]) == {"training.csv", "validation.csv"}


def test_seven_classes_drop_contempt(tmp_path: Path, cache_env: Path) -> None:
    make_affectnet_csv(tmp_path, TRAIN, VAL)
    prepare_dataset("affectnet", tmp_path, {"classes": 7}, image_size=16, progress=False)
    data = create_dataset("affectnet", root=str(tmp_path), classes=7)
    assert data.num_classes == 7 and "contempt" not in data.class_names
    assert data.train.labels.tolist() == list(range(7))
    assert data.test.labels.tolist() == [1, 0]
    assert "contempt" not in data.asymmetric_map


def test_mtcnn_without_a_face_falls_back_to_the_box(tmp_path: Path, cache_env: Path) -> None:
    make_affectnet_csv(tmp_path, [0, 1, 2], [3])
    result = prepare_dataset("affectnet", tmp_path, align="mtcnn", image_size=16, progress=False)
    data = create_dataset("affectnet", root=str(tmp_path))
    assert data.meta["align"] == "mtcnn"
    assert result.manifest["splits"]["train"]["no_face"] == 3
    assert result.manifest["no_face"][0] == "Manually_Annotated_Images/1/train000.png"
    assert mean_levels(data.train.images) == [level(x) for x in range(3)]  # kept, box crop


def test_headerless_validation_csv_is_read(tmp_path: Path, cache_env: Path) -> None:
    make_affectnet_csv(tmp_path, TRAIN, VAL)
    path = tmp_path / "validation.csv"
    path.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")
    prepare_dataset("affectnet", tmp_path, image_size=16, progress=False)
    assert create_dataset("affectnet", root=str(tmp_path)).test.labels.tolist() == [1, 7, 0]


def test_wrong_header_and_bad_rows_name_file_and_line(tmp_path: Path, cache_env: Path) -> None:
    make_affectnet_csv(tmp_path, TRAIN, VAL)
    path = tmp_path / "training.csv"
    original = path.read_text()
    path.write_text(original.replace("expression", "emotion", 1))
    with pytest.raises(
        FerBenchError, match=r"training\.csv:1: expected columns .*missing expression"
    ):
        prepare_dataset("affectnet", tmp_path, progress=False)
    lines = original.splitlines()
    lines[4] = lines[4].replace(",3,0.3,", ",11,0.3,")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FerBenchError, match=r"training\.csv:5: expression 11 outside 0\.\.10"):
        prepare_dataset("affectnet", tmp_path, progress=False)
    lines[4] = lines[4].replace(",11,0.3,", ",3,high,")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FerBenchError, match=r"training\.csv:5: valence 'high' is not a number"):
        prepare_dataset("affectnet", tmp_path, progress=False)


def test_npy_release(tmp_path: Path, cache_env: Path) -> None:
    make_affectnet_npy(tmp_path, [0, 3, 9, 7, 10, 2, 1, 1, 4, 5, 6], [1, 2])
    result = prepare_dataset("affectnet", tmp_path, image_size=16, progress=False)
    data = create_dataset("affectnet", root=str(tmp_path))
    assert data.meta["layout"] == "npy"
    assert data.train.names[:3] == ["0.jpg", "1.jpg", "3.jpg"]  # numeric order, 2.jpg is id 9
    assert data.train.names[-1] == "10.jpg"
    assert data.train.labels.tolist() == [0, 3, 7, 2, 1, 1, 4, 5, 6]
    assert mean_levels(data.train.images) == [level(x) for x in data.train.labels.tolist()]
    assert data.test.valence_arousal[0].tolist() == pytest.approx([0.25, -0.75])
    assert result.manifest["notes"]["dropped"]["train"] == {"uncertain": 1, "no_face": 1}

    (tmp_path / "val_set" / "annotations" / "1_exp.npy").unlink()
    with pytest.raises(
        FerBenchError, match=r"missing AffectNet annotation .*val_set/annotations/1_exp\.npy"
    ):
        prepare_dataset("affectnet", tmp_path, image_size=16, progress=False, force=True)
