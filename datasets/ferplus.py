"""FERPlus (Barsoum et al., ICMI 2016): FER2013 faces relabelled by 10 annotators each.

Two layouts are read:

* ``csv`` - ``fer2013new.csv`` (``Usage,Image name,neutral,happiness,surprise,sadness,anger,
  disgust,fear,contempt,unknown,NF``) beside ``fer2013.csv``, whose pixels it labels. The two are
  joined by row order, never by image name: names skip the rows FERPlus left nameless (no image
  generated), and those rows are dropped.
* ``folders`` - what the FERPlus tool generates: ``FER2013Train|FER2013Valid|FER2013Test/`` with
  ``ferNNNNNNN.png`` files and a header-less ``label.csv`` (``name,"(x, y, w, h)",10 votes``).

``auto`` (default) picks ``csv`` when both CSVs are there, else ``folders``. PublicTest
(FER2013Valid) is the validation split and PrivateTest (FER2013Test) the test split.

Label modes follow the FERPlus paper and its reference code (``label_mode=``):

* ``majority`` - single votes are discarded as outliers, then the top class needs more than half
  of the remaining votes; samples without such a majority, or won by unknown / not-a-face, are
  dropped.
* ``probability`` - the reference code's label distribution: after discarding single votes,
  the largest vote counts are taken (at most three classes, until 75 % of the votes are covered,
  stopping at unknown / not-a-face); a sample is dropped when that covers no more than half of
  the votes or is led by unknown / not-a-face. The distribution is ``soft_labels``, its argmax
  the hard label.
* ``argmax`` - the class with most raw votes (ties to the earlier class); unknown / not-a-face
  winners are dropped.

In every mode ``soft_labels`` is a distribution over the kept classes (the raw emotion votes,
normalised, in ``majority`` and ``argmax``). ``classes=7`` drops contempt: its column is removed
and samples labelled contempt are dropped. When fer2013.csv is available, the training split's
``real_noisy_labels`` are the original FER2013 labels in FERPlus classes, for
``--noise-type real`` (FER2013 and FERPlus disagree on about a third of the images).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fer_bench.dataset_api import (
    DatasetPlan,
    FerBenchError,
    ImageRef,
    Option,
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

from .fer2013 import USAGE_SPLITS, find_fer2013_csv, read_fer2013_rows

FERPLUS_CLASSES = [
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
]
VOTE_COLUMNS = FERPLUS_CLASSES + ["unknown", "NF"]
#: FER2013 label (angry, disgust, fear, happy, sad, surprise, neutral) -> FERPlus class index.
FER2013_TO_FERPLUS = np.array([4, 5, 6, 1, 3, 2, 0], dtype=np.int64)
FOLDERS = {"FER2013Train": "train", "FER2013Valid": "val", "FER2013Test": "test"}
_BOX = re.compile(r"^\(\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)$")


def _drop_single_votes(votes: np.ndarray) -> np.ndarray:
    cleaned = votes.astype(np.float64)
    cleaned[cleaned <= 1] = 0.0  # one annotator alone is treated as an outlier
    return cleaned


def _majority(votes: np.ndarray) -> np.ndarray | str:
    cleaned = _drop_single_votes(votes)
    total = cleaned.sum()
    if total == 0:
        return "no_votes"
    peak = int(cleaned.argmax())
    if cleaned[peak] <= 0.5 * total:
        return "no_majority"
    dist = np.zeros(len(votes))
    dist[peak] = 1.0
    return dist


def _probability(votes: np.ndarray) -> np.ndarray | str:
    cleaned = _drop_single_votes(votes)
    total = cleaned.sum()
    remaining = cleaned.copy()
    taken = np.zeros(len(votes))
    count = 0
    stopped = False
    while not stopped and count < 3 and taken.sum() < 0.75 * total:
        level = remaining.max()
        for i in np.flatnonzero(remaining == level):  # every class tied at this vote count
            taken[i], remaining[i] = level, 0.0
            count += 1
            if i >= len(FERPLUS_CLASSES):  # unknown / not-a-face: stop collecting here
                stopped = True
                if taken.sum() > level:  # emotions came first: keep them, not the unknown
                    taken[i] = 0.0
                    count -= 1
                break
    if total == 0 or taken.sum() <= 0.5 * total or count > 3:
        return "no_agreement"
    return taken


def votes_to_target(votes: np.ndarray, mode: str, classes: int) -> tuple[int, np.ndarray] | str:
    """``(label, soft label over the kept classes)`` for one row of 10 votes, or why it is dropped."""
    votes = np.asarray(votes, dtype=np.float64)
    if mode == "majority":
        dist = _majority(votes)
    elif mode == "probability":
        dist = _probability(votes)
    else:
        dist = votes if votes.sum() > 0 else "no_votes"
    if isinstance(dist, str):
        return dist
    label = int(np.argmax(dist))
    if label >= len(FERPLUS_CLASSES):
        return "unknown_or_not_face"
    if label >= classes:
        return "contempt"
    soft = (dist if mode == "probability" else votes)[:classes]
    return label, (soft / soft.sum()).astype(np.float32)


@dataclass
class _Rows:
    """Samples of one split before they become a plan."""

    refs: list[ImageRef] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    soft: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    fer_labels: list[int] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)

    def add(
        self, target: tuple[int, np.ndarray] | str, ref: ImageRef, name: str, fer_label: int
    ) -> None:
        if isinstance(target, str):
            self.dropped[target] += 1
            return
        self.refs.append(ref)
        self.labels.append(target[0])
        self.soft.append(target[1])
        self.names.append(name)
        self.fer_labels.append(fer_label)


def _parse_votes(values: list[str], path: Path, line: int) -> np.ndarray:
    votes = np.array([parse_int(v, path, line, "vote count") for v in values], dtype=np.int64)
    if (votes < 0).any():
        raise line_error(path, line, "vote counts must be >= 0")
    return votes


def _read_csv_layout(
    new_csv: Path, fer_csv: Path, mode: str, classes: int, base: Path
) -> tuple[dict[str, _Rows], int]:
    fer_rows = read_fer2013_rows(fer_csv)
    plus_rows = list(read_csv(new_csv, ["Usage", "Image name", *VOTE_COLUMNS]))
    if len(plus_rows) != len(fer_rows):
        raise FerBenchError(
            f"{new_csv} has {len(plus_rows)} data rows but {fer_csv} has {len(fer_rows)}; "
            "they are joined by row order, so both must be the complete original files"
        )
    rows = {s: _Rows() for s in ("train", "val", "test")}
    nameless = 0
    for (line, plus), fer in zip(plus_rows, fer_rows, strict=True):
        split = USAGE_SPLITS.get(plus["Usage"])
        if split != fer.split:
            raise line_error(
                new_csv,
                line,
                f"Usage '{plus['Usage']}' but row {fer.index + 1} of {fer_csv.name} (line {fer.line}) "
                "is another split: the files are not row-aligned",
            )
        votes = _parse_votes([plus[c] for c in VOTE_COLUMNS], new_csv, line)
        name = plus["Image name"]
        if not name:
            nameless += 1  # FERPlus generated no image for these rows
            continue
        ref = ImageRef(f"{relpath(fer_csv, base)}:{fer.line}", pixels=fer.pixels)
        rows[split].add(votes_to_target(votes, mode, classes), ref, name, fer.emotion)
    return rows, nameless


def _fer_labels_by_name(new_csv: Path, fer_csv: Path) -> dict[str, int]:
    """FER2013 label of every named FERPlus image, joined through the row order."""
    fer_rows = read_fer2013_rows(fer_csv)
    names = [row["Image name"] for _, row in read_csv(new_csv, ["Usage", "Image name"])]
    if len(names) != len(fer_rows):
        raise FerBenchError(
            f"{new_csv} and {fer_csv} differ in row count; they must be row-aligned"
        )
    return {name: fer.emotion for name, fer in zip(names, fer_rows, strict=True) if name}


def _read_folder_layout(
    base: Path, mode: str, classes: int, fer_labels: dict[str, int] | None
) -> dict[str, _Rows]:
    rows = {}
    for folder_name, split in FOLDERS.items():
        folder = base / folder_name
        label_path = folder / "label.csv"
        if not label_path.is_file():
            raise FerBenchError(f"missing FERPlus label file {label_path}")
        rows[split] = _Rows()
        with open(label_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if len(row) != 12:
                    raise line_error(
                        label_path, line, f"expected name, box and 10 votes; got {len(row)} fields"
                    )
                match = _BOX.match(row[1].strip())
                if match is None:
                    raise line_error(label_path, line, f"face box '{row[1]}' is not '(x, y, w, h)'")
                box = tuple(float(v) for v in match.groups())
                votes = _parse_votes(row[2:], label_path, line)
                name = row[0].strip()
                file = folder / name
                fer_label = -1 if fer_labels is None else fer_labels.get(name, -1)
                ref = ImageRef(relpath(file, base), str(file), box=box)  # type: ignore[arg-type]
                rows[split].add(votes_to_target(votes, mode, classes), ref, name, fer_label)
    return rows


def read_ferplus(root: Path, options: dict[str, Any]) -> DatasetPlan:
    mode, classes, layout = options["label_mode"], options["classes"], options["layout"]
    new_csv = first_existing([root / "fer2013new.csv"])
    fer_csv = find_fer2013_csv(root)
    folder_base = first_existing([root / "FER2013Train", root / "data" / "FER2013Train"])
    if layout == "auto":
        layout = "csv" if new_csv and fer_csv else "folders" if folder_base else ""
    sources: dict[str, str] = {}
    notes: dict[str, Any] = {"layout": layout, "label_mode": mode, "classes": classes}
    if layout == "csv":
        if new_csv is None or fer_csv is None:
            raise FerBenchError(
                f"the FERPlus csv layout needs {root / 'fer2013new.csv'} and {root / 'fer2013.csv'}"
            )
        rows, notes["nameless_rows"] = _read_csv_layout(new_csv, fer_csv, mode, classes, root)
        has_fer = True
    elif layout == "folders":
        if folder_base is None:
            raise FerBenchError(
                f"no FERPlus FER2013Train/label.csv under {root} or {root / 'data'}"
            )
        base = folder_base.parent
        fer_labels = _fer_labels_by_name(new_csv, fer_csv) if new_csv and fer_csv else None
        rows = _read_folder_layout(base, mode, classes, fer_labels)
        for folder in FOLDERS:
            path = base / folder / "label.csv"
            sources[relpath(path, root)] = sha1_file(path)
        has_fer = fer_labels is not None and -1 not in rows["train"].fer_labels
    else:
        raise FerBenchError(
            f"no FERPlus under {root}: expected fer2013new.csv with fer2013.csv, or the "
            "FER2013Train|FER2013Valid|FER2013Test/label.csv folders"
        )
    for path in (new_csv, fer_csv):
        if path is not None and (layout == "csv" or has_fer):
            sources[relpath(path, root)] = sha1_file(path)
    class_names = FERPLUS_CLASSES[:classes]
    splits = {}
    for split, r in rows.items():
        if not r.labels:
            raise FerBenchError(f"FERPlus {split} split has no usable samples under {root}")
        real = None
        if split == "train" and has_fer:
            real = FER2013_TO_FERPLUS[np.array(r.fer_labels, dtype=np.int64)]
            notes["real_noise_rate"] = round(float((real != np.array(r.labels)).mean()), 4)
        splits[split] = SplitPlan(
            refs=r.refs,
            labels=np.array(r.labels, dtype=np.int64),
            names=r.names,
            soft_labels=np.stack(r.soft).astype(np.float32),
            real_noisy_labels=real,
        )
    notes["dropped"] = {split: dict(r.dropped) for split, r in rows.items()}
    notes["real_noisy_labels"] = (
        "FER2013 labels of the training images"
        if has_fer
        else ("unavailable: put fer2013.csv and fer2013new.csv in the data root")
    )
    return DatasetPlan(class_names=class_names, splits=splits, sources=sources, notes=notes)


FERPLUS = register_dataset(
    "ferplus", run_defaults={"image_size": 112}, measured_noise=("real", "annotator")
)(
    RealDataset(
        "ferplus",
        reader=read_ferplus,
        options={
            "label_mode": Option(
                "majority",
                choices=("majority", "probability", "argmax"),
                help="how the 10 votes become a label",
            ),
            "classes": Option(8, choices=(8, 7), help="7 drops contempt"),
            "layout": Option(
                "auto",
                choices=("auto", "csv", "folders"),
                help="fer2013new.csv + fer2013.csv, or the generated PNG folders",
            ),
        },
        image_size=112,
        soft_labels_are_votes=True,
    )
)
