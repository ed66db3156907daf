"""Aff-Wild2 (ABAW challenges): video frames with expression, valence-arousal and action units.

Layout (the annotation folders may sit in the root or under ``Annotations/``)::

    EXPR_Classification_Challenge/{Train_Set,Validation_Set}/<video>.txt
    VA_Estimation_Challenge/{Train_Set,Validation_Set}/<video>.txt
    AU_Detection_Challenge/{Train_Set,Validation_Set}/<video>.txt
    cropped_aligned/<video>/00001.jpg          112x112 aligned faces, one per annotated frame

Every annotation file has a header line, then one line per frame (line 2 is frame 00001):
expression ``Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other`` (-1 = ignore),
``valence,arousal`` in [-1, 1] (-5 = ignore), 12 AUs ``AU1,...,AU26`` in {0, 1} (-1 = ignore).

Samples are the frames of the expression challenge's videos with a valid expression label
(classification needs one); ``Train_Set`` is the training split and ``Validation_Set`` the test
split (ABAW test labels are not public). VA and AU come from the same video's files in either
challenge split and are NaN where ignored or not annotated. Frames the dataset has no crop for
(face not found by its own detector) are dropped and counted. ``classes=7`` drops Other;
``frame_step=N`` keeps every N-th frame (consecutive frames are near duplicates).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from fer_bench.dataset_api import (
    DEFAULT_ASYMMETRIC_MAP,
    DatasetPlan,
    FerBenchError,
    ImageRef,
    Option,
    RealDataset,
    SplitPlan,
    line_error,
    parse_float,
    parse_int,
    read_lines,
    register_dataset,
    relpath,
    sha1_files,
)

AFFWILD2_CLASSES = [
    "neutral",
    "anger",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "surprise",
    "other",
]
AU_NAMES = [
    "AU1",
    "AU2",
    "AU4",
    "AU6",
    "AU7",
    "AU10",
    "AU12",
    "AU15",
    "AU23",
    "AU24",
    "AU25",
    "AU26",
]
HEADERS = {
    "expr": [c.lower() for c in AFFWILD2_CLASSES],
    "va": ["valence", "arousal"],
    "au": [a.lower() for a in AU_NAMES],
}
#: Folder names used by the ABAW releases for each challenge, newest first.
CHALLENGES = {
    "expr": ("EXPR_Classification_Challenge", "EXPR_Recognition_Challenge", "EXPR_Set"),
    "va": ("VA_Estimation_Challenge", "VA_Set"),
    "au": ("AU_Detection_Challenge", "AU_Set"),
}
SPLITS = {"train": ("Train_Set", "Training_Set"), "test": ("Validation_Set",)}
#: DEFAULT_ASYMMETRIC_MAP's confusions, and Other (a catch-all) flips to neutral.
ASYMMETRIC_MAP = {
    **DEFAULT_ASYMMETRIC_MAP,
    "other": "neutral",
}


def read_annotation(path: Path, kind: str) -> np.ndarray:
    """One video's annotation file: row ``i`` is frame ``i + 1``; ignore markers become -1/NaN."""
    lines = read_lines(path)
    first = next(lines, None)
    expected = HEADERS[kind]
    if first is None or [h.strip().lower() for h in first[1].split(",")] != expected:
        raise line_error(
            path,
            first[0] if first else 1,
            f"expected header '{','.join(expected)}' (case-insensitive)",
        )
    rows: dict[int, Any] = {}
    width = 1 if kind == "expr" else len(expected)  # the EXPR header lists classes, rows hold one
    for line, text in lines:
        values = [v.strip() for v in text.split(",")]
        if len(values) != width:
            raise line_error(path, line, f"expected {width} value(s), got {len(values)}")
        if kind == "expr":
            value = parse_int(values[0], path, line, "expression")
            if not -1 <= value < len(AFFWILD2_CLASSES):
                raise line_error(path, line, f"expression {value} outside -1..7")
            rows[line - 1] = value
        elif kind == "va":
            va = [
                parse_float(v, path, line, name) for v, name in zip(values, expected, strict=True)
            ]
            for v in va:
                if v != -5 and not -1.0 <= v <= 1.0:
                    raise line_error(
                        path, line, f"valence/arousal {v} outside [-1, 1] (-5 = ignore)"
                    )
            rows[line - 1] = [np.nan if v == -5 else v for v in va]
        else:
            aus = [parse_int(v, path, line, "AU") for v in values]
            if any(a not in (-1, 0, 1) for a in aus):
                raise line_error(path, line, "AU values must be 0, 1 or -1 (ignore)")
            rows[line - 1] = [np.nan if a == -1 else float(a) for a in aus]
    frames = max(rows, default=0)
    if kind == "expr":
        out = np.full(frames, -1, dtype=np.int64)
    else:
        out = np.full((frames, len(expected)), np.nan, dtype=np.float32)
    for frame, value in rows.items():
        out[frame - 1] = value
    return out


def _annotation_base(root: Path) -> Path:
    for base in (root / "Annotations", root / "annotations", root):
        if any((base / name).is_dir() for name in CHALLENGES["expr"]):
            return base
    raise FerBenchError(
        f"no Aff-Wild2 expression annotations under {root}: expected "
        f"{CHALLENGES['expr'][0]}/Train_Set/<video>.txt (or under Annotations/)"
    )


def _challenge_files(base: Path, kind: str) -> dict[str, dict[str, Path]]:
    """``{split: {video: file}}`` for one challenge; empty where the challenge is absent."""
    folder = next((base / n for n in CHALLENGES[kind] if (base / n).is_dir()), None)
    found: dict[str, dict[str, Path]] = {}
    for split, names in SPLITS.items():
        split_dir = (
            None
            if folder is None
            else next((folder / n for n in names if (folder / n).is_dir()), None)
        )
        found[split] = (
            {} if split_dir is None else {p.stem: p for p in sorted(split_dir.glob("*.txt"))}
        )
    return found


def read_affwild2(root: Path, options: dict[str, Any]) -> DatasetPlan:
    classes, step = options["classes"], options["frame_step"]
    base = _annotation_base(root)
    frames_root = root / "cropped_aligned"
    if not frames_root.is_dir():
        raise FerBenchError(f"missing Aff-Wild2 frame folder {frames_root}")
    files = {kind: _challenge_files(base, kind) for kind in CHALLENGES}
    by_video = {
        kind: {v: p for split in f.values() for v, p in split.items()}
        for kind, f in files.items()
        if kind != "expr"
    }
    splits: dict[str, SplitPlan] = {}
    dropped: dict[str, Counter[str]] = {}
    for split in SPLITS:
        videos = files["expr"][split]
        if not videos:
            raise FerBenchError(
                f"no Aff-Wild2 expression files for {SPLITS[split][0]} under {base}"
            )
        refs, labels, names, va_rows, au_rows = [], [], [], [], []
        counts: Counter[str] = Counter()
        for video, path in videos.items():
            expr = read_annotation(path, "expr")
            va = read_annotation(by_video["va"][video], "va") if video in by_video["va"] else None
            au = read_annotation(by_video["au"][video], "au") if video in by_video["au"] else None
            folder = frames_root / video
            present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
            for index, label in enumerate(expr.tolist()):
                frame = f"{index + 1:05d}.jpg"
                if label < 0:
                    counts["ignored"] += 1
                elif label >= classes:
                    counts["other"] += 1
                elif index % step:
                    counts["frame_step"] += 1
                elif frame not in present:
                    counts["no_cropped_frame"] += 1
                else:
                    file = folder / frame
                    refs.append(ImageRef(relpath(file, root), str(file)))
                    labels.append(label)
                    names.append(f"{video}/{frame}")
                    va_rows.append(
                        va[index] if va is not None and index < len(va) else [np.nan] * 2
                    )
                    au_rows.append(
                        au[index]
                        if au is not None and index < len(au)
                        else [np.nan] * len(AU_NAMES)
                    )
        if not refs:
            raise FerBenchError(
                f"Aff-Wild2 {split} split has no frame with a usable expression label"
            )
        splits[split] = SplitPlan(
            refs=refs,
            labels=np.array(labels, dtype=np.int64),
            names=names,
            valence_arousal=np.array(va_rows, dtype=np.float32),
            action_units=np.array(au_rows, dtype=np.float32),
        )
        dropped[split] = counts
    sources = {}
    for by_split in files.values():
        paths = [p for videos in by_split.values() for p in videos.values()]
        if paths:
            sources[f"{relpath(paths[0].parent.parent, root)} ({len(paths)} files)"] = sha1_files(
                paths, root
            )
    return DatasetPlan(
        class_names=AFFWILD2_CLASSES[:classes],
        splits=splits,
        sources=sources,
        au_names=list(AU_NAMES),
        notes={
            "classes": classes,
            "frame_step": step,
            "dropped": {s: dict(c) for s, c in dropped.items()},
        },
    )


AFFWILD2 = register_dataset("affwild2", run_defaults={"image_size": 112})(
    RealDataset(
        "affwild2",
        reader=read_affwild2,
        options={
            "classes": Option(8, choices=(8, 7), help="7 drops Other"),
            "frame_step": Option(1, minimum=1, help="keep every N-th frame"),
        },
        image_size=112,
        asymmetric_map=ASYMMETRIC_MAP,
    )
)
