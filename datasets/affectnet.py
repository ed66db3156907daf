"""AffectNet (Mollahosseini et al., 2017), manually annotated part, as either release ships it.

* ``csv`` - ``training.csv`` / ``validation.csv`` (in the data root or
  ``Manually_Annotated_file_lists/``) with ``subDirectory_filePath,face_x,face_y,face_width,
  face_height,facial_landmarks,expression,valence,arousal``; images under
  ``Manually_Annotated_Images/<subDirectory_filePath>``. The CSV face box is the crop
  (``--align none``, default) or the region MTCNN searches (``--align mtcnn``).
* ``npy`` - the later release: ``train_set|val_set/images/<id>.jpg`` (already face crops) with
  ``annotations/<id>_exp.npy``, ``_val.npy``, ``_aro.npy`` (and ``_lnd.npy``, unused).

Expression 0-10 = neutral, happiness, sadness, surprise, fear, disgust, anger, contempt, none,
uncertain, no-face. ``classes=8`` keeps 0-7, ``classes=7`` also drops contempt; the others are
dropped and counted in the manifest. Valence/arousal are in [-1, 1]; anything outside (the
dataset writes -2 where a face was not rated) becomes NaN. The official validation set is the test
split. The training set is heavily imbalanced, so the manifest recommends the trainer's
``balanced_sampling``. At ~280k images the cache is large: keep it on local disk; it is
memory-mapped, never read whole.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from fer_bench.dataset_api import (
    IMAGE_SUFFIXES,
    DatasetPlan,
    FerBenchError,
    ImageRef,
    Option,
    RealDataset,
    SplitPlan,
    first_existing,
    line_error,
    parse_float,
    parse_int,
    read_csv,
    register_dataset,
    relpath,
    sha1_file,
)

AFFECTNET_CLASSES = [
    "neutral",
    "happiness",
    "sadness",
    "surprise",
    "fear",
    "disgust",
    "anger",
    "contempt",
]
NON_EMOTION = {8: "none", 9: "uncertain", 10: "no_face"}
COLUMNS = [
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
]
CSV_SPLITS = {"training.csv": "train", "validation.csv": "test"}
NPY_SPLITS = {"train_set": "train", "val_set": "test"}


def _drop_reason(expression: int, classes: int) -> str | None:
    if expression in NON_EMOTION:
        return NON_EMOTION[expression]
    if expression >= classes:
        return "contempt"
    return None


def _affect(value: float) -> float:
    return value if -1.0 <= value <= 1.0 else float("nan")


def _has_header(path: Path) -> bool:
    """Some copies of validation.csv have no header line; their first field is an image path."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            first = handle.readline().split(",", 1)[0].strip()
    except OSError:
        return True
    return not first.lower().endswith(IMAGE_SUFFIXES)


def _read_csv_split(path: Path, images: Path, classes: int, dropped: Counter[str]) -> SplitPlan:
    refs, labels, names, affect = [], [], [], []
    header = None if _has_header(path) else COLUMNS
    for line, row in read_csv(path, COLUMNS, header=header):
        expression = parse_int(row["expression"], path, line, "expression")
        if not 0 <= expression <= 10:
            raise line_error(path, line, f"expression {expression} outside 0..10")
        reason = _drop_reason(expression, classes)
        if reason is not None:
            dropped[reason] += 1
            continue
        box = tuple(
            parse_float(row[c], path, line, c)
            for c in ("face_x", "face_y", "face_width", "face_height")
        )
        if box[2] <= 0 or box[3] <= 0:
            raise line_error(path, line, f"face box {box} has no area")
        rel = row["subDirectory_filePath"]
        file = images / rel
        refs.append(ImageRef(relpath(file, images.parent), str(file), box=box))  # type: ignore[arg-type]
        labels.append(expression)
        names.append(rel)
        affect.append(
            (
                _affect(parse_float(row["valence"], path, line, "valence")),
                _affect(parse_float(row["arousal"], path, line, "arousal")),
            )
        )
    return SplitPlan(
        refs=refs,
        labels=np.array(labels, dtype=np.int64),
        names=names,
        valence_arousal=np.array(affect, dtype=np.float32).reshape(-1, 2),
    )


def _npy_scalar(data: bytes, path: Path) -> str:
    try:
        value = np.load(io.BytesIO(data), allow_pickle=False)
        return str(np.asarray(value).reshape(-1)[0])
    except (ValueError, IndexError, OSError) as exc:
        raise FerBenchError(f"{path}: not a readable .npy annotation ({exc})") from None


def _read_annotation(folder: Path, stem: str) -> dict[str, bytes]:
    found = {}
    for kind in ("exp", "val", "aro"):
        path = folder / f"{stem}_{kind}.npy"
        try:
            found[kind] = path.read_bytes()
        except FileNotFoundError:
            if kind == "exp":
                raise FerBenchError(f"missing AffectNet annotation {path}") from None
    return found


def _read_npy_split(split_dir: Path, classes: int, dropped: Counter[str], digest: Any) -> SplitPlan:
    image_dir, ann_dir = split_dir / "images", split_dir / "annotations"
    if not image_dir.is_dir() or not ann_dir.is_dir():
        raise FerBenchError(f"AffectNet {split_dir} needs images/ and annotations/ folders")
    files = sorted(
        (p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: (len(p.stem), p.stem),
    )  # numeric ids in numeric order
    with ThreadPoolExecutor(16) as pool:  # ~1M tiny files: I/O bound, threads overlap it
        annotations = list(pool.map(lambda p: _read_annotation(ann_dir, p.stem), files))
    refs, labels, names, affect = [], [], [], []
    for file, found in zip(files, annotations, strict=True):
        exp_path = ann_dir / f"{file.stem}_exp.npy"
        for kind in ("exp", "val", "aro"):
            if kind in found:
                digest.update(found[kind])
        text = _npy_scalar(found["exp"], exp_path)
        try:
            expression = int(float(text))
        except ValueError:
            raise FerBenchError(f"{exp_path}: expression '{text}' is not a number") from None
        if not 0 <= expression <= 10:
            raise FerBenchError(f"{exp_path}: expression {expression} outside 0..10")
        reason = _drop_reason(expression, classes)
        if reason is not None:
            dropped[reason] += 1
            continue
        va = []
        for kind in ("val", "aro"):
            path = ann_dir / f"{file.stem}_{kind}.npy"
            try:
                va.append(
                    _affect(float(_npy_scalar(found[kind], path))) if kind in found else np.nan
                )
            except ValueError:
                raise FerBenchError(f"{path}: value is not a number") from None
        refs.append(ImageRef(relpath(file, split_dir.parent), str(file)))
        labels.append(expression)
        names.append(file.name)
        affect.append(va)
    return SplitPlan(
        refs=refs,
        labels=np.array(labels, dtype=np.int64),
        names=names,
        valence_arousal=np.array(affect, dtype=np.float32).reshape(-1, 2),
    )


def read_affectnet(root: Path, options: dict[str, Any]) -> DatasetPlan:
    classes, layout = options["classes"], options["layout"]
    csv_dir = first_existing(
        [
            d
            for d in (root, root / "Manually_Annotated_file_lists")
            if (d / "training.csv").is_file()
        ]
    )
    if layout == "auto":
        layout = "csv" if csv_dir else "npy" if (root / "train_set").is_dir() else ""
    splits: dict[str, SplitPlan] = {}
    sources: dict[str, str] = {}
    dropped = {"train": Counter(), "test": Counter()}
    if layout == "csv":
        if csv_dir is None:
            raise FerBenchError(f"no AffectNet training.csv under {root}")
        images = first_existing(
            [
                root / "Manually_Annotated_Images",
                root / "Manually_Annotated" / "Manually_Annotated_Images",
            ]
        )
        if images is None:
            raise FerBenchError(
                f"missing AffectNet image folder {root / 'Manually_Annotated_Images'}"
            )
        for file_name, split in CSV_SPLITS.items():
            path = csv_dir / file_name
            splits[split] = _read_csv_split(path, images, classes, dropped[split])
            sources[relpath(path, root)] = sha1_file(path)
    elif layout == "npy":
        for folder, split in NPY_SPLITS.items():
            digest = hashlib.sha1()
            splits[split] = _read_npy_split(root / folder, classes, dropped[split], digest)
            sources[f"{folder}/annotations/*.npy"] = digest.hexdigest()
    else:
        raise FerBenchError(
            f"no AffectNet under {root}: expected training.csv + validation.csv with "
            "Manually_Annotated_Images/, or train_set/ + val_set/ with images/ and annotations/"
        )
    for split, plan in splits.items():
        if len(plan) == 0:
            raise FerBenchError(f"AffectNet {split} split has no samples of the kept classes")
    return DatasetPlan(
        class_names=AFFECTNET_CLASSES[:classes],
        splits=splits,
        sources=sources,
        notes={
            "layout": layout,
            "classes": classes,
            "dropped": {s: dict(c) for s, c in dropped.items()},
            "recommended": {"balanced_sampling": True},
        },
    )


AFFECTNET = register_dataset("affectnet", run_defaults={"image_size": 224})(
    RealDataset(
        "affectnet",
        reader=read_affectnet,
        options={
            "classes": Option(8, choices=(8, 7), help="7 drops contempt"),
            "layout": Option(
                "auto",
                choices=("auto", "csv", "npy"),
                help="training.csv/validation.csv or train_set/val_set with .npy",
            ),
        },
        image_size=224,
        align_choices=("none", "mtcnn"),
    )
)
