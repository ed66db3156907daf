"""RAF-DB: both layouts, the corrupt-file policy, resumable and atomic caching, error lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_datasets import (
    RAFDB_TEST,
    cache_env_fixture,  # noqa: F401  (provides the cache_env fixture)
    level,
    make_rafdb,
    make_rafdb_mirror,
    mean_levels,
)

import fer_bench.render as render_mod
from fer_bench.cache import MANIFEST
from fer_bench.data import RAFDB_CLASSES
from fer_bench.errors import FerBenchError
from fer_bench.prepare import prepare_dataset
from fer_bench.registry import create_dataset, dataset_run_defaults


def test_official_layout_counts_labels_and_corrupt_list(tmp_path: Path, cache_env: Path) -> None:
    make_rafdb(tmp_path / "RAF-DB" / "basic")  # the archive's basic/ folder under the root
    result = prepare_dataset("rafdb", tmp_path / "RAF-DB", image_size=20, progress=False)
    data = create_dataset("rafdb", root=str(tmp_path / "RAF-DB"))

    assert data.class_names == RAFDB_CLASSES
    assert data.train.images.shape == (7, 3, 20, 20)  # 8 listed, 1 truncated JPEG skipped
    assert data.train.names[:3] == ["train_00001.jpg", "train_00002.jpg", "train_00004.jpg"]
    # labels 1..7 -> 0..6 and every image still next to its label
    assert data.train.labels.tolist() == [0, 1, 3, 4, 5, 6, 3]
    assert mean_levels(data.train.images) == [level(x) for x in data.train.labels.tolist()]
    assert data.test.labels.tolist() == [x - 1 for x in RAFDB_TEST]
    assert data.val is None

    manifest = result.manifest
    assert manifest["splits"]["train"]["listed"] == 8
    assert manifest["splits"]["train"]["stored"] == 7
    assert manifest["splits"]["train"]["corrupt"] == 1
    assert [c["file"] for c in manifest["corrupt"]] == ["Image/aligned/train_00003_aligned.jpg"]
    assert "EmoLabel/list_patition_label.txt" in manifest["sources"]
    assert data.meta["cache"] == str(result.directory)
    assert str(result.directory).startswith(str(cache_env / "rafdb"))
    assert data.asymmetric_map["surprise"] == "fear"
    assert dataset_run_defaults("rafdb") == {"image_size": 224}


def test_images_are_memory_mapped(tmp_path: Path, cache_env: Path) -> None:
    make_rafdb(tmp_path / "raf")
    prepare_dataset("rafdb", tmp_path / "raf", progress=False)
    data = create_dataset("rafdb", root=str(tmp_path / "raf"))
    assert data.train.images.shape[-1] == 224  # the dataset's default stored size
    mapped = Path("/proc/self/maps").read_text()
    assert str(Path(data.meta["cache"]) / "train" / "images.npy") in mapped


def test_mirror_layout_names_match_the_official_list(tmp_path: Path, cache_env: Path) -> None:
    make_rafdb_mirror(tmp_path / "mirror")
    prepare_dataset("rafdb", tmp_path / "mirror", image_size=16, progress=False)
    data = create_dataset("rafdb", root=str(tmp_path / "mirror"))
    assert data.train.names[0] == "train_00001.jpg"
    assert len(data.train) == 8 and len(data.test) == 3
    assert mean_levels(data.train.images) == [level(x) for x in data.train.labels.tolist()]


def test_label_out_of_range_names_file_and_line(tmp_path: Path, cache_env: Path) -> None:
    root = make_rafdb(tmp_path / "raf", truncated=None)
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    lines = label_file.read_text().splitlines()
    lines[2] = "train_00003.jpg 8"
    label_file.write_text("\n".join(lines))
    with pytest.raises(
        FerBenchError, match=r"list_patition_label\.txt:3: label '8' outside 1\.\.7"
    ):
        prepare_dataset("rafdb", root, progress=False)


def test_bad_name_prefix_names_file_and_line(tmp_path: Path, cache_env: Path) -> None:
    root = make_rafdb(tmp_path / "raf", truncated=None)
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    label_file.write_text(label_file.read_text() + "valid_0001.jpg 3\n")
    with pytest.raises(FerBenchError, match=r":12: name 'valid_0001\.jpg' starts with neither"):
        prepare_dataset("rafdb", root, progress=False)


def test_missing_dataset_says_what_was_expected(tmp_path: Path, cache_env: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FerBenchError, match=r"list_patition_label\.txt.*DATASET/\{train,test\}"):
        prepare_dataset("rafdb", tmp_path / "empty", progress=False)


def test_run_without_cache_names_the_prepare_command(tmp_path: Path, cache_env: Path) -> None:
    make_rafdb(tmp_path / "raf")
    with pytest.raises(FerBenchError) as err:
        create_dataset("rafdb", root=str(tmp_path / "raf"), images="original")
    message = str(err.value)
    assert message.startswith(f"no prepared cache for rafdb under {cache_env / 'rafdb'}")
    assert message.endswith(
        f"run: fer-bench prepare --dataset rafdb --data-root {tmp_path / 'raf'} "
        "--dataset-option images=original"
    )
    assert "\n" not in message


def test_unknown_option_lists_the_known_ones(tmp_path: Path, cache_env: Path) -> None:
    with pytest.raises(
        FerBenchError,
        match=r"unknown dataset option\(s\) colour for 'rafdb'; known: images='aligned'",
    ):
        create_dataset("rafdb", root=str(tmp_path), colour="red")
    with pytest.raises(
        FerBenchError, match=r"images='cropped' for 'rafdb': expected one of aligned, original"
    ):
        create_dataset("rafdb", root=str(tmp_path), images="cropped")


def test_interrupted_prepare_is_not_used_and_resumes(
    tmp_path: Path, cache_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_rafdb(tmp_path / "raf")
    real_chunk = render_mod.process_chunk
    calls: list[int] = []

    def crash_on_third(refs, *args):
        calls.append(len(refs))
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user pressing Ctrl-C half way
        return real_chunk(refs, *args)

    monkeypatch.setattr(render_mod, "process_chunk", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset("rafdb", root, image_size=16, progress=False, chunk_size=3)
    with pytest.raises(FerBenchError, match="no prepared cache for rafdb.*unfinished prepare"):
        create_dataset("rafdb", root=str(root), image_size=16)

    calls.clear()
    monkeypatch.setattr(
        render_mod,
        "process_chunk",
        lambda refs, *a: calls.append(len(refs)) or real_chunk(refs, *a),
    )
    result = prepare_dataset("rafdb", root, image_size=16, progress=False, chunk_size=3)
    assert calls == [2, 3]  # 8 train = 3+3+2 and 3 test: the two finished chunks were kept
    data = create_dataset("rafdb", root=str(root), image_size=16)
    assert len(data.train) == 7 and len(data.test) == 3
    assert not any(p.name.startswith(".partial") for p in result.directory.parent.iterdir())

    again = prepare_dataset("rafdb", root, image_size=16, progress=False)
    assert again.reused and again.directory == result.directory


def test_cache_without_manifest_is_never_used(tmp_path: Path, cache_env: Path) -> None:
    root = make_rafdb(tmp_path / "raf")
    result = prepare_dataset("rafdb", root, image_size=16, progress=False)
    (result.directory / MANIFEST).unlink()
    with pytest.raises(FerBenchError, match="no prepared cache for rafdb"):
        create_dataset("rafdb", root=str(root))


def test_damaged_cache_says_how_to_rebuild(tmp_path: Path, cache_env: Path) -> None:
    root = make_rafdb(tmp_path / "raf")
    result = prepare_dataset("rafdb", root, image_size=16, progress=False)
    np.save(result.directory / "train" / "images.npy", np.zeros((2, 3, 16, 16), np.uint8))
    with pytest.raises(FerBenchError, match=r"cache .* is damaged .*--image-size 16 --force"):
        create_dataset("rafdb", root=str(root), image_size=16)


def test_changed_labels_restart_an_unfinished_prepare(
    tmp_path: Path, cache_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_rafdb(tmp_path / "raf", truncated=None)
    real_chunk = render_mod.process_chunk
    calls: list[int] = []

    def counted(refs, *args):
        calls.append(len(refs))
        if len(calls) == 2 and interrupt:
            raise KeyboardInterrupt
        return real_chunk(refs, *args)

    interrupt = True
    monkeypatch.setattr(render_mod, "process_chunk", counted)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset("rafdb", root, image_size=16, progress=False, chunk_size=3)
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    label_file.write_text(label_file.read_text().replace("train_00001.jpg 1", "train_00001.jpg 2"))
    interrupt, calls[:] = False, []
    result = prepare_dataset("rafdb", root, image_size=16, progress=False, chunk_size=3)
    assert calls == [3, 3, 2, 3]  # the finished chunk belonged to other labels: all redone
    data = create_dataset("rafdb", root=str(root), image_size=16)
    assert data.train.labels[0] == 1
    saved = json.loads((result.directory / MANIFEST).read_text())
    assert saved["splits"]["train"]["class_counts"][1] == 2
