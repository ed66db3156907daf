"""FER2013: Usage splits, class-name mapping, pixel decoding and line-numbered CSV errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_datasets import (
    FER_ROWS,
    cache_env_fixture,  # noqa: F401  (provides the cache_env fixture)
    fer_pixels,
    mean_levels,
    write_fer2013,
)

from fer_bench.errors import FerBenchError
from fer_bench.prepare import prepare_dataset
from fer_bench.registry import create_dataset


def test_usage_splits_labels_and_pixels(tmp_path: Path, cache_env: Path) -> None:
    write_fer2013(tmp_path / "fer2013" / "fer2013.csv", FER_ROWS)  # Kaggle's nested folder
    result = prepare_dataset("fer2013", tmp_path, image_size=48, progress=False)
    data = create_dataset("fer2013", root=str(tmp_path))

    assert data.class_names == [
        "anger",
        "disgust",
        "fear",
        "happiness",
        "sadness",
        "surprise",
        "neutral",
    ]
    assert data.meta["class_name_mapping"]["happy"] == "happiness"
    assert data.train.labels.tolist() == [6, 0, 6, 4, 5]
    assert data.val is not None and data.val.labels.tolist() == [3, 6]  # PublicTest
    assert data.test.labels.tolist() == [2, 3]  # PrivateTest
    assert data.train.names == ["row00000", "row00001", "row00002", "row00003", "row00004"]
    assert data.test.names == ["row00007", "row00008"]
    assert data.train.images.shape == (5, 3, 48, 48)
    # grey pixels of row i are 10*i, copied to all three channels
    assert mean_levels(data.test.images) == [70, 80]
    assert (data.train.images[1, 0] == data.train.images[1, 2]).all()
    assert result.manifest["splits"]["val"]["listed"] == 2
    assert result.manifest["notes"]["official_counts"] == {
        "train": 28709,
        "val": 3589,
        "test": 3589,
    }


def test_kaggle_header_with_spaces_is_accepted(tmp_path: Path, cache_env: Path) -> None:
    write_fer2013(
        tmp_path / "icml_face_data.csv", FER_ROWS, header=["emotion", " Usage", " pixels"]
    )
    # columns in another order: values are read by name, not position
    text = (tmp_path / "icml_face_data.csv").read_text().splitlines()
    rows = [text[0]] + [
        ",".join([r.split(",")[0], r.split(",")[2], r.split(",")[1]]) for r in text[1:]
    ]
    (tmp_path / "icml_face_data.csv").write_text("\n".join(rows) + "\n")
    prepare_dataset("fer2013", tmp_path, image_size=16, progress=False)
    assert len(create_dataset("fer2013", root=str(tmp_path)).train) == 5


def test_wrong_header_fails_on_line_one(tmp_path: Path, cache_env: Path) -> None:
    write_fer2013(tmp_path / "fer2013.csv", FER_ROWS, header=["label", "pixels", "Usage"])
    with pytest.raises(
        FerBenchError,
        match=r"fer2013\.csv:1: expected columns emotion,pixels,Usage; missing emotion",
    ):
        prepare_dataset("fer2013", tmp_path, progress=False)


def test_emotion_out_of_range_names_the_line(tmp_path: Path, cache_env: Path) -> None:
    write_fer2013(tmp_path / "fer2013.csv", FER_ROWS[:3] + [(7, "Training")])
    with pytest.raises(FerBenchError, match=r"fer2013\.csv:5: emotion 7 outside 0\.\.6"):
        prepare_dataset("fer2013", tmp_path, progress=False)


def test_short_pixel_row_and_bad_usage_name_the_line(tmp_path: Path, cache_env: Path) -> None:
    path = write_fer2013(tmp_path / "fer2013.csv", FER_ROWS)
    lines = path.read_text().splitlines()
    lines[3] = f"6,{fer_pixels(3)[:-2]},Training"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        FerBenchError, match=r"fer2013\.csv:4: pixels has 2303 values, expected 48x48=2304"
    ):
        prepare_dataset("fer2013", tmp_path, progress=False)
    lines[3] = f"6,{fer_pixels(3)},Train"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FerBenchError, match=r"fer2013\.csv:4: Usage 'Train' is not one of"):
        prepare_dataset("fer2013", tmp_path, progress=False)


def test_missing_csv_is_one_clear_line(tmp_path: Path, cache_env: Path) -> None:
    with pytest.raises(FerBenchError, match=r"no fer2013\.csv under"):
        prepare_dataset("fer2013", tmp_path, progress=False)
    with pytest.raises(FerBenchError, match=r"does not exist"):
        prepare_dataset("fer2013", tmp_path / "nowhere", progress=False)
