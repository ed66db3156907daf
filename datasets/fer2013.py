"""FER2013 (Goodfellow et al., ICONIP 2013) from its ``fer2013.csv``.

Columns ``emotion,pixels,Usage``: 48x48 grey faces as 2,304 space-separated values, emotion 0-6
= angry, disgust, fear, happy, sad, surprise, neutral. Usage Training (28,709) is the training
split, PublicTest (3,589) the validation split and PrivateTest (3,589) the test split.

Class names use the benchmark's words so noise maps and reports line up across datasets:
angry -> anger, happy -> happiness, sad -> sadness (the order 0-6 is kept). Samples are named
``row00000`` by their 0-based data row, the only identity FER2013 gives them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_bench.dataset_api import (
    DatasetPlan,
    FerBenchError,
    ImageRef,
    RealDataset,
    SplitPlan,
    first_existing,
    line_error,
    parse_int,
    read_csv,
    register_dataset,
    relpath,
    sha1_file,
)

FER2013_CLASSES = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
#: FER2013's own words for its classes, in label order, as its documentation lists them.
FER2013_RAW_NAMES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
USAGE_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
OFFICIAL_COUNTS = {"train": 28709, "val": 3589, "test": 3589}
SIDE = 48


@dataclass
class FerRow:
    """One data row of fer2013.csv (``index`` is 0-based, ``line`` the file line)."""

    index: int
    line: int
    emotion: int
    split: str
    pixels: np.ndarray


def find_fer2013_csv(root: Path) -> Path | None:
    """fer2013.csv as Kaggle and the ICML challenge ship it, in or one level under ``root``."""
    if root.is_file():
        return root
    return first_existing(
        [root / "fer2013.csv", root / "fer2013" / "fer2013.csv", root / "icml_face_data.csv"]
    )


def parse_pixels(text: str, path: Path, line: int) -> np.ndarray:
    with warnings.catch_warnings():  # numpy warns, rather than fails, on a non-number
        warnings.simplefilter("error", DeprecationWarning)
        try:
            pixels = np.fromstring(text, dtype=np.int64, sep=" ")  # 5x faster than split()
        except (ValueError, DeprecationWarning):
            raise line_error(
                path, line, "pixels holds a value that is not a whole number"
            ) from None
    if len(pixels) != SIDE * SIDE:
        raise line_error(
            path, line, f"pixels has {len(pixels)} values, expected {SIDE}x{SIDE}={SIDE * SIDE}"
        )
    if pixels.min() < 0 or pixels.max() > 255:
        raise line_error(path, line, "pixels holds a value outside 0..255")
    return pixels.astype(np.uint8).reshape(SIDE, SIDE)


def read_fer2013_rows(path: Path) -> list[FerRow]:
    """Every row of fer2013.csv, validated; a bad row fails with its file and line."""
    rows = []
    for index, (line, row) in enumerate(read_csv(path, ("emotion", "pixels", "Usage"))):
        emotion = parse_int(row["emotion"], path, line, "emotion")
        if not 0 <= emotion <= 6:
            raise line_error(path, line, f"emotion {emotion} outside 0..6")
        split = USAGE_SPLITS.get(row["Usage"])
        if split is None:
            raise line_error(
                path, line, f"Usage '{row['Usage']}' is not one of {', '.join(USAGE_SPLITS)}"
            )
        rows.append(FerRow(index, line, emotion, split, parse_pixels(row["pixels"], path, line)))
    return rows


def read_fer2013(root: Path, options: dict[str, Any]) -> DatasetPlan:
    path = find_fer2013_csv(root)
    if path is None:
        raise FerBenchError(f"no fer2013.csv under {root} (expected {root / 'fer2013.csv'})")
    rows = read_fer2013_rows(path)
    base = root if root.is_dir() else root.parent
    splits = {}
    for split in ("train", "val", "test"):
        chosen = [r for r in rows if r.split == split]
        if not chosen:
            raise FerBenchError(f"{path}: no rows with Usage {_usage_of(split)}")
        splits[split] = SplitPlan(
            refs=[ImageRef(f"{relpath(path, base)}:{r.line}", pixels=r.pixels) for r in chosen],
            labels=np.array([r.emotion for r in chosen], dtype=np.int64),
            names=[f"row{r.index:05d}" for r in chosen],
        )
    return DatasetPlan(
        class_names=list(FER2013_CLASSES),
        splits=splits,
        sources={relpath(path, base): sha1_file(path)},
        notes={
            "official_counts": OFFICIAL_COUNTS,
            "class_name_mapping": dict(zip(FER2013_RAW_NAMES, FER2013_CLASSES, strict=True)),
        },
    )


def _usage_of(split: str) -> str:
    return next(k for k, v in USAGE_SPLITS.items() if v == split)


FER2013 = register_dataset("fer2013", run_defaults={"image_size": 112})(
    RealDataset(
        "fer2013",
        reader=read_fer2013,
        options={},
        image_size=112,
    )
)
