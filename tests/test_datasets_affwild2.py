"""Aff-Wild2: frames, ignore markers (-1 / -5), VA and AU targets, splits and header errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from fixtures_datasets import (
    cache_env_fixture,  # noqa: F401  (provides the cache_env fixture)
    level,
    make_affwild2,
    mean_levels,
)

from fer_bench.errors import FerBenchError
from fer_bench.prepare import prepare_dataset
from fer_bench.registry import create_dataset

FRAMES = {"v1": [0, -1, 4, 7, 2, 1], "v2_left": [3, 3, -1], "v3": [5, 6, 7]}
SPLIT_OF = {"v1": "Train_Set", "v2_left": "Train_Set", "v3": "Validation_Set"}


def make(root: Path) -> Path:
    return make_affwild2(root, FRAMES, SPLIT_OF, missing_frames={"v1": [6]})


def test_frames_labels_and_aux_targets(tmp_path: Path, cache_env: Path) -> None:
    make(tmp_path)
    result = prepare_dataset("affwild2", tmp_path, image_size=16, progress=False)
    data = create_dataset("affwild2", root=str(tmp_path))

    assert data.class_names == [
        "neutral",
        "anger",
        "disgust",
        "fear",
        "happiness",
        "sadness",
        "surprise",
        "other",
    ]
    assert data.train.names == [
        "v1/00001.jpg",
        "v1/00003.jpg",
        "v1/00004.jpg",
        "v1/00005.jpg",
        "v2_left/00001.jpg",
        "v2_left/00002.jpg",
    ]
    assert data.train.labels.tolist() == [0, 4, 7, 2, 3, 3]
    assert mean_levels(data.train.images) == [level(x) for x in data.train.labels.tolist()]
    assert data.test.labels.tolist() == [5, 6, 7]  # Validation_Set is the test split
    assert data.val is None

    va = data.train.valence_arousal
    assert va[0].tolist() == pytest.approx([0.1, 0.5])  # frame 1
    assert va[1].tolist() == pytest.approx([0.3, 0.5])  # frame 3
    assert all(math.isnan(v) for v in va[5].tolist())  # v2_left frame 2 is -5,-5
    au = data.train.action_units
    assert au.shape == (6, 12) and data.au_names[0] == "AU1" and data.au_names[-1] == "AU26"
    assert all(math.isnan(v) for v in au[0].tolist())  # frame 1 is -1 (ignore)
    assert au[1].tolist() == [1.0] * 12

    dropped = result.manifest["notes"]["dropped"]
    assert dropped["train"] == {"ignored": 2, "no_cropped_frame": 1}
    assert data.asymmetric_map["other"] == "neutral"


def test_seven_classes_and_frame_step(tmp_path: Path, cache_env: Path) -> None:
    make(tmp_path)
    options = {"classes": 7, "frame_step": 2}
    prepare_dataset("affwild2", tmp_path, options, image_size=16, progress=False)
    data = create_dataset("affwild2", root=str(tmp_path), **options)
    assert data.num_classes == 7
    # frames 1, 3, 5 of each video; Other (7) dropped
    assert data.train.names == ["v1/00001.jpg", "v1/00003.jpg", "v1/00005.jpg", "v2_left/00001.jpg"]
    assert data.test.labels.tolist() == [5]  # v3 frames 1 and 3; frame 3 is Other
    with pytest.raises(FerBenchError, match="frame_step=0 for 'affwild2' must be >= 1"):
        create_dataset("affwild2", root=str(tmp_path), frame_step=0)


def test_missing_va_file_leaves_nan(tmp_path: Path, cache_env: Path) -> None:
    make(tmp_path)
    (tmp_path / "Annotations" / "VA_Estimation_Challenge" / "Validation_Set" / "v3.txt").unlink()
    prepare_dataset("affwild2", tmp_path, image_size=16, progress=False)
    data = create_dataset("affwild2", root=str(tmp_path))
    assert data.test.valence_arousal.isnan().all()
    assert not data.test.action_units[1:].isnan().any()  # frame 1 is the -1 marker


def test_bad_header_and_values_name_file_and_line(tmp_path: Path, cache_env: Path) -> None:
    make(tmp_path)
    expr = tmp_path / "Annotations" / "EXPR_Classification_Challenge" / "Train_Set" / "v1.txt"
    text = expr.read_text()
    expr.write_text(text.replace("Neutral,Anger", "Neutral,Angry"))
    with pytest.raises(FerBenchError, match=r"v1\.txt:1: expected header 'neutral,anger,"):
        prepare_dataset("affwild2", tmp_path, progress=False)
    expr.write_text(text.replace("\n7\n", "\n9\n"))
    with pytest.raises(FerBenchError, match=r"v1\.txt:5: expression 9 outside -1\.\.7"):
        prepare_dataset("affwild2", tmp_path, progress=False)
    expr.write_text(text)
    va = tmp_path / "Annotations" / "VA_Estimation_Challenge" / "Train_Set" / "v2_left.txt"
    va.write_text("valence,arousal\n1.5,0.2\n")
    with pytest.raises(FerBenchError, match=r"v2_left\.txt:2: valence/arousal 1\.5 outside"):
        prepare_dataset("affwild2", tmp_path, progress=False)


def test_missing_annotations_or_frames(tmp_path: Path, cache_env: Path) -> None:
    with pytest.raises(FerBenchError, match="no Aff-Wild2 expression annotations"):
        prepare_dataset("affwild2", tmp_path, progress=False)
    make(tmp_path)
    (tmp_path / "cropped_aligned").rename(tmp_path / "frames")
    with pytest.raises(FerBenchError, match="missing Aff-Wild2 frame folder .*cropped_aligned"):
        prepare_dataset("affwild2", tmp_path, progress=False)
