"""FERPlus: vote rules, row-order join, nameless rows, both layouts and real FER2013 noise."""

from __future__ import annotations

from pathlib import Path

import pytest
from fer_bench.datasets.ferplus import votes_to_target
from fixtures_datasets import (
    PLUS_ROWS,
    cache_env_fixture,  # noqa: F401  (provides the cache_env fixture)
    make_ferplus_csv,
    make_ferplus_folders,
    mean_levels,
    write_ferplus_csv,
)

from fer_bench.errors import FerBenchError
from fer_bench.noise import inject_noise
from fer_bench.prepare import prepare_dataset
from fer_bench.registry import create_dataset

#      neu hap sur sad ang dis fea con unk NF


def test_majority_discards_single_votes_before_counting() -> None:
    # anger 5 of 10 raw votes is not > 50 %, but after dropping the five single votes it is 5/5
    label, soft = votes_to_target([1, 1, 0, 1, 5, 1, 0, 0, 1, 0], "majority", 8)
    assert label == 4
    assert soft[4] == pytest.approx(5 / 9)  # soft labels keep the raw emotion votes
    assert votes_to_target([4, 4, 0, 0, 0, 0, 0, 0, 2, 0], "majority", 8) == "no_majority"


def test_nine_vote_row_needs_more_than_half_of_nine() -> None:
    assert votes_to_target([0, 0, 0, 5, 0, 0, 0, 0, 4, 0], "majority", 8)[0] == 3
    assert votes_to_target([0, 0, 0, 4, 0, 0, 0, 0, 3, 2], "majority", 8) == "no_majority"


def test_unknown_or_not_a_face_winners_are_dropped() -> None:
    assert votes_to_target([0, 0, 0, 0, 0, 0, 0, 1, 7, 2], "majority", 8) == "unknown_or_not_face"
    assert votes_to_target([2, 0, 0, 0, 0, 0, 0, 0, 0, 8], "argmax", 8) == "unknown_or_not_face"
    assert (
        votes_to_target([0, 0, 0, 0, 0, 0, 0, 1, 7, 2], "probability", 8) == "unknown_or_not_face"
    )


def test_probability_mode_keeps_the_top_classes_as_a_distribution() -> None:
    label, soft = votes_to_target([0, 0, 3, 0, 0, 0, 7, 0, 0, 0], "probability", 8)
    assert label == 6
    assert soft.tolist() == pytest.approx([0, 0, 0.3, 0, 0, 0, 0.7, 0])
    # the unknown votes after an emotion are not part of the distribution
    label, soft = votes_to_target([0, 0, 0, 5, 0, 0, 0, 0, 4, 0], "probability", 8)
    assert label == 3 and soft[3] == pytest.approx(1.0)
    # four classes tied at 2 votes each are too many to trust
    assert votes_to_target([2, 2, 2, 2, 1, 1, 0, 0, 0, 0], "probability", 8) == "no_agreement"


def test_argmax_and_seven_classes() -> None:
    assert votes_to_target([4, 4, 0, 0, 0, 0, 0, 0, 2, 0], "argmax", 8)[0] == 0  # ties: first
    assert votes_to_target([2, 0, 0, 0, 0, 0, 0, 8, 0, 0], "majority", 8)[0] == 7
    assert votes_to_target([2, 0, 0, 0, 0, 0, 0, 8, 0, 0], "majority", 7) == "contempt"
    label, soft = votes_to_target([3, 0, 0, 0, 0, 0, 0, 2, 0, 0], "argmax", 7)
    assert label == 0 and len(soft) == 7 and soft.sum() == pytest.approx(1.0)


def test_csv_layout_joins_by_row_order_with_real_noise(tmp_path: Path, cache_env: Path) -> None:
    make_ferplus_csv(tmp_path)
    result = prepare_dataset("ferplus", tmp_path, image_size=48, progress=False)
    data = create_dataset("ferplus", root=str(tmp_path))

    assert data.num_classes == 8 and data.class_names[-1] == "contempt"
    # the nameless row 2 and the unknown-majority row 4 are dropped
    assert data.train.names == ["fer0000000.png", "fer0000001.png", "fer0000002.png"]
    assert data.train.labels.tolist() == [1, 4, 3]
    # pixels come from the same *row* of fer2013.csv (rows 0, 1, 3), not from the name's number
    assert mean_levels(data.train.images) == [0, 10, 30]
    assert data.val is not None and data.val.labels.tolist() == [1, 7]  # PublicTest
    assert data.test.labels.tolist() == [6]  # PrivateTest; the 4/4/2 row has no majority
    assert data.train.soft_labels.shape == (3, 8)
    # FER2013 said neutral for row 0, angry and sad for the others
    assert data.train.real_noisy_labels.tolist() == [0, 4, 3]
    assert data.meta["real_noise_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert result.manifest["notes"]["nameless_rows"] == 1
    assert result.manifest["notes"]["dropped"]["train"] == {"unknown_or_not_face": 1}
    assert set(result.manifest["sources"]) == {"fer2013new.csv", "fer2013.csv"}

    noisy = inject_noise(
        data.train.labels,
        data.class_names,
        dataset="ferplus",
        noise_type="real",
        rate_percent=0,
        seed=0,
        real_noisy_labels=data.train.real_noisy_labels,
    )
    assert noisy.flipped.tolist() == [True, False, False]


def test_label_modes_and_classes_are_separate_caches(tmp_path: Path, cache_env: Path) -> None:
    make_ferplus_csv(tmp_path)
    options = {"label_mode": "probability", "classes": 7}
    prepare_dataset("ferplus", tmp_path, options, image_size=16, progress=False)
    data = create_dataset("ferplus", root=str(tmp_path), **options)
    assert data.num_classes == 7
    assert data.val.labels.tolist() == [1]  # contempt dropped
    assert data.test.labels.tolist() == [6, 0]  # the 4/4 tie survives as a 50/50 distribution
    assert data.test.soft_labels[1, :2].tolist() == pytest.approx([0.5, 0.5])
    with pytest.raises(FerBenchError, match="--dataset-option label_mode=argmax"):
        create_dataset("ferplus", root=str(tmp_path), label_mode="argmax")
    with pytest.raises(FerBenchError, match="classes=9 for 'ferplus': expected one of 8, 7"):
        create_dataset("ferplus", root=str(tmp_path), classes=9)


def test_folder_layout_matches_the_csv_layout(tmp_path: Path, cache_env: Path) -> None:
    make_ferplus_folders(tmp_path / "folders")
    prepare_dataset("ferplus", tmp_path / "folders", image_size=48, progress=False)
    folders = create_dataset("ferplus", root=str(tmp_path / "folders"))
    assert folders.meta["layout"] == "folders"
    assert folders.train.names == ["fer0000000.png", "fer0000001.png", "fer0000002.png"]
    assert folders.train.labels.tolist() == [1, 4, 3]
    assert mean_levels(folders.train.images) == [0, 10, 30]
    assert folders.test.labels.tolist() == [6]
    assert folders.train.real_noisy_labels is None  # no fer2013.csv beside it
    assert "unavailable" in folders.meta["real_noisy_labels"]

    # with both CSVs present too, the folders still get FER2013's labels through the names
    make_ferplus_csv(tmp_path / "folders")
    opts = {"layout": "folders"}
    prepare_dataset("ferplus", tmp_path / "folders", opts, image_size=16, progress=False)
    both = create_dataset("ferplus", root=str(tmp_path / "folders"), **opts)
    assert both.train.real_noisy_labels.tolist() == [0, 4, 3]


def test_malformed_vote_and_label_rows_name_file_and_line(tmp_path: Path, cache_env: Path) -> None:
    make_ferplus_folders(tmp_path)
    label_csv = tmp_path / "FER2013Valid" / "label.csv"
    lines = label_csv.read_text().splitlines()
    label_csv.write_text("\n".join([lines[0].replace(",9,", ",x,"), lines[1]]) + "\n")
    with pytest.raises(
        FerBenchError, match=r"FER2013Valid/label\.csv:1: vote count 'x' is not a number"
    ):
        prepare_dataset("ferplus", tmp_path, progress=False)
    label_csv.write_text(lines[0] + ",3\n")
    with pytest.raises(
        FerBenchError, match=r"label\.csv:1: expected name, box and 10 votes; got 13"
    ):
        prepare_dataset("ferplus", tmp_path, progress=False)


def test_csv_files_must_be_row_aligned(tmp_path: Path, cache_env: Path) -> None:
    make_ferplus_csv(tmp_path)
    write_ferplus_csv(tmp_path / "fer2013new.csv", PLUS_ROWS[:-1])
    with pytest.raises(FerBenchError, match=r"has 8 data rows but .*fer2013\.csv has 9"):
        prepare_dataset("ferplus", tmp_path, progress=False)
    swapped = list(PLUS_ROWS)
    swapped[5] = ("PrivateTest", *swapped[5][1:])
    write_ferplus_csv(tmp_path / "fer2013new.csv", swapped)
    with pytest.raises(FerBenchError, match=r"fer2013new\.csv:7: Usage 'PrivateTest' but row 6"):
        prepare_dataset("ferplus", tmp_path, progress=False)


def test_wrong_ferplus_header(tmp_path: Path, cache_env: Path) -> None:
    make_ferplus_csv(tmp_path)
    path = tmp_path / "fer2013new.csv"
    path.write_text(path.read_text().replace(",NF", ",notface", 1))
    with pytest.raises(FerBenchError, match=r"fer2013new\.csv:1: expected columns .*missing NF"):
        prepare_dataset("ferplus", tmp_path, progress=False)
    assert not any(cache_env.glob("ferplus/*/manifest.json"))  # and no cache was left behind
