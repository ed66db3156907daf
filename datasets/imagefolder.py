"""Your own data as one folder per class: ``root/{train,test}/<class>/*.jpg`` (``val/`` optional).

Class names are the sorted folder names of ``train/``, or the lines of ``root/classes.txt`` (one
name per line, in label order) when it exists, e.g. to keep RAF-DB's order. Images are
``.jpg/.jpeg/.png/.bmp/.webp``; other files are ignored. Photos are not assumed to be aligned,
so ``prepare`` runs MTCNN by default; pass ``--align none`` for folders of ready face crops.
Name classes with the benchmark's words (surprise, fear, disgust, happiness, sadness, anger,
neutral, contempt) and ``--noise-type asymmetric`` uses the standard confusions for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fer_bench.dataset_api import (
    DatasetPlan,
    FerBenchError,
    ImageRef,
    RealDataset,
    SplitPlan,
    image_files,
    line_error,
    read_lines,
    register_dataset,
    relpath,
    sha1_file,
    sha1_listing,
)

SPLIT_FOLDERS = {"train": "train", "val": "val", "test": "test"}


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_names(root: Path) -> tuple[list[str], dict[str, str]]:
    listing = root / "classes.txt"
    if not listing.is_file():
        return _class_folders(root / "train"), {}
    names: list[str] = []
    for line, text in read_lines(listing):
        if text in names:
            raise line_error(listing, line, f"class '{text}' listed twice")
        names.append(text)
    return names, {"classes.txt": sha1_file(listing)}


def read_imagefolder(root: Path, options: dict[str, Any]) -> DatasetPlan:
    for required in ("train", "test"):
        if not (root / required).is_dir():
            raise FerBenchError(
                f"missing folder {root / required} (expected <root>/{required}/<class>/*.jpg)"
            )
    class_names, sources = _class_names(root)
    if not class_names:
        raise FerBenchError(f"no class folders in {root / 'train'}")
    index = {name: i for i, name in enumerate(class_names)}
    splits: dict[str, SplitPlan] = {}
    listed: list[Path] = []
    for split, folder_name in SPLIT_FOLDERS.items():
        split_dir = root / folder_name
        if not split_dir.is_dir():
            continue
        refs, labels, names = [], [], []
        for class_name in _class_folders(split_dir):
            if class_name not in index:
                raise FerBenchError(
                    f"class folder {split_dir / class_name} is not a known class "
                    f"({', '.join(class_names)})"
                )
            for file in image_files(split_dir / class_name):
                listed.append(file)
                refs.append(ImageRef(relpath(file, root), str(file)))
                labels.append(index[class_name])
                names.append(f"{class_name}/{file.name}")
        if not refs:
            raise FerBenchError(f"no images in {split_dir}/<class>/")
        splits[split] = SplitPlan(refs=refs, labels=np.array(labels, dtype=np.int64), names=names)
    sources["<split>/<class>/ (file listing)"] = sha1_listing(listed, root)
    return DatasetPlan(class_names=class_names, splits=splits, sources=sources)


IMAGEFOLDER = register_dataset("imagefolder", run_defaults={"image_size": 112})(
    RealDataset(
        "imagefolder",
        reader=read_imagefolder,
        options={},
        image_size=112,
        align_choices=("mtcnn", "none"),
    )
)
