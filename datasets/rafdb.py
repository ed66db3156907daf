"""RAF-DB basic emotions (Li et al., CVPR 2017), read as the official release ships.

Official layout (``--data-root`` may point at ``basic/`` or at its parent)::

    EmoLabel/list_patition_label.txt   "train_00001.jpg 5" per line; the misspelling is real
    Image/aligned/train_00001_aligned.jpg   100x100 aligned faces (default)
    Image/original/train_00001.jpg          originals (``images=original``, aligned by MTCNN)

The split is the name prefix (12,271 train / 3,068 test). Labels 1-7 are surprise, fear,
disgust, happiness, sadness, anger, neutral and become 0-6 in that order. The common mirror
layout ``DATASET/{train,test}/<1..7>/*.jpg`` is read too; its ``train_00001_aligned.jpg`` files
are named ``train_00001.jpg`` so published noisy-label lists (``--noise-file``) still match.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fer_bench.dataset_api import (
    RAFDB_CLASSES,
    DatasetPlan,
    FerBenchError,
    ImageRef,
    Option,
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

LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
OFFICIAL_COUNTS = {"train": 12271, "test": 3068}


def _find_basic(root: Path) -> Path | None:
    for base in (root, root / "basic"):
        if (base / LABEL_FILE).is_file():
            return base
    return None


def _find_mirror(root: Path) -> Path | None:
    for base in (root / "DATASET", root):
        if (base / "train").is_dir() and (base / "test").is_dir():
            return base
    return None


def _read_basic(base: Path, images: str) -> tuple[dict[str, SplitPlan], dict[str, str]]:
    label_path = base / LABEL_FILE
    folder = base / "Image" / images
    if not folder.is_dir():
        raise FerBenchError(
            f"missing RAF-DB image folder {folder} (extract the {images} images there)"
        )
    rows: dict[str, list[tuple[str, int, ImageRef]]] = {"train": [], "test": []}
    seen: dict[str, int] = {}
    for line, text in read_lines(label_path):
        parts = text.split()
        if len(parts) != 2:
            raise line_error(label_path, line, f"expected 'NAME LABEL', got '{text}'")
        name, label_text = parts
        split = name.split("_", 1)[0]
        if split not in rows:
            raise line_error(
                label_path, line, f"name '{name}' starts with neither train_ nor test_"
            )
        if not label_text.isdigit() or not 1 <= int(label_text) <= 7:
            raise line_error(label_path, line, f"label '{label_text}' outside 1..7")
        if name in seen:
            raise line_error(label_path, line, f"'{name}' already listed on line {seen[name]}")
        seen[name] = line
        stem = Path(name).stem
        file = folder / (f"{stem}_aligned.jpg" if images == "aligned" else name)
        rows[split].append((name, int(label_text) - 1, ImageRef(relpath(file, base), str(file))))
    splits = {
        split: SplitPlan(
            refs=[r for _, _, r in items],
            labels=np.array([label for _, label, _ in items], dtype=np.int64),
            names=[n for n, _, _ in items],
        )
        for split, items in rows.items()
    }
    return splits, {str(LABEL_FILE): sha1_file(label_path)}


def _read_mirror(base: Path) -> tuple[dict[str, SplitPlan], dict[str, str]]:
    splits: dict[str, SplitPlan] = {}
    listed: list[Path] = []
    for split in ("train", "test"):
        refs: list[ImageRef] = []
        labels: list[int] = []
        names: list[str] = []
        for folder in sorted(p for p in (base / split).iterdir() if p.is_dir()):
            if folder.name not in {str(i) for i in range(1, 8)}:
                raise FerBenchError(f"unexpected RAF-DB class folder {folder} (expected 1..7)")
            for file in image_files(folder):
                listed.append(file)
                refs.append(ImageRef(relpath(file, base), str(file)))
                labels.append(int(folder.name) - 1)
                names.append(file.name.replace("_aligned", ""))
        order = np.argsort(np.array(names), kind="stable")  # train_00001 first, as in the list
        splits[split] = SplitPlan(
            refs=[refs[i] for i in order],
            labels=np.array(labels, dtype=np.int64)[order],
            names=[names[i] for i in order],
        )
    return splits, {"DATASET/{train,test}/<1..7>/ (file listing)": sha1_listing(listed, base)}


def read_rafdb(root: Path, options: dict[str, Any]) -> DatasetPlan:
    """Read the official label list, or the class-folder mirror when that is what is there."""
    basic = _find_basic(root)
    if basic is not None:
        splits, sources = _read_basic(basic, options["images"])
        layout = "official"
    else:
        mirror = _find_mirror(root)
        if mirror is None:
            raise FerBenchError(
                f"no RAF-DB under {root}: expected {LABEL_FILE} (official basic release) "
                "or DATASET/{train,test}/<1..7>/*.jpg (mirror layout)"
            )
        if options["images"] != "aligned":
            raise FerBenchError(
                "the RAF-DB mirror layout has aligned images only; drop images=original"
            )
        splits, sources = _read_mirror(mirror)
        layout = "mirror"
    return DatasetPlan(
        class_names=list(RAFDB_CLASSES),
        splits=splits,
        sources=sources,
        notes={"layout": layout, "images": options["images"], "official_counts": OFFICIAL_COUNTS},
    )


RAFDB = register_dataset("rafdb", run_defaults={"image_size": 224})(
    RealDataset(
        "rafdb",
        reader=read_rafdb,
        options={
            "images": Option(
                "aligned",
                choices=("aligned", "original"),
                help="the 100x100 aligned faces or the originals (MTCNN-aligned)",
            ),
        },
        image_size=224,
        align_choices=("none", "mtcnn"),
        default_align=lambda options: "mtcnn" if options["images"] == "original" else "none",
    )
)
