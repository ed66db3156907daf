"""What a raw-dataset reader produces, and the helpers every reader shares.

A reader turns a dataset exactly as it ships (label lists, CSVs, per-video annotation files) into
a :class:`DatasetPlan`: per split, where each image comes from and every target it has.
``fer-bench prepare`` decodes, aligns and caches those images once; loaders read only the cache.
Readers fail on malformed label files with one :class:`FerBenchError` line naming file and line.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fer_bench.errors import FerBenchError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class ImageRef:
    """Where one sample's pixels come from.

    Either an image file (``path``, optionally with the dataset's own face box ``x, y, w, h``) or
    pixels already decoded from a CSV (``pixels``, uint8 HxW or HxWx3). ``source`` is how the
    manifest names the sample when it is corrupt or has no face (a relative path or file:line).
    """

    source: str
    path: str | None = None
    pixels: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None


@dataclass
class SplitPlan:
    """One split's samples: image references plus aligned per-sample targets (numpy arrays)."""

    refs: list[ImageRef]
    labels: np.ndarray
    names: list[str]
    soft_labels: np.ndarray | None = None
    valence_arousal: np.ndarray | None = None
    action_units: np.ndarray | None = None
    real_noisy_labels: np.ndarray | None = None

    #: Optional per-sample fields, in the order they are cached.
    OPTIONAL = ("soft_labels", "valence_arousal", "action_units", "real_noisy_labels")

    def __post_init__(self) -> None:
        n = len(self.refs)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        fields_ = {"labels": self.labels, "names": self.names}
        for name in self.OPTIONAL:
            value = getattr(self, name)
            if value is not None:
                fields_[name] = value
        for name, value in fields_.items():
            if len(value) != n:  # a reader bug, not a user problem: fail loudly
                raise ValueError(f"split plan field {name} has {len(value)} rows for {n} images")

    def __len__(self) -> int:
        return len(self.refs)


@dataclass
class DatasetPlan:
    """Everything a reader learnt from the raw files.

    ``sources`` maps each label file (relative to the data root) to its sha1, so a cache records
    exactly which annotations it was built from. ``notes`` (layout, label mode, samples dropped
    and why) is copied into the manifest and the run record.
    """

    class_names: list[str]
    splits: dict[str, SplitPlan]
    sources: dict[str, str]
    notes: dict[str, Any] = field(default_factory=dict)
    au_names: list[str] | None = None

    def __post_init__(self) -> None:
        for required in ("train", "test"):
            if required not in self.splits:
                raise ValueError(f"dataset plan has no {required} split")


def sha1_file(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha1_files(paths: Iterable[Path], root: Path) -> str:
    """One digest over many small label files (names and contents), e.g. per-video annotations."""
    digest = hashlib.sha1()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def sha1_listing(paths: Iterable[Path], root: Path) -> str:
    """A digest of a folder tree's file names and sizes, for datasets whose labels are folders."""
    digest = hashlib.sha1()
    for path in sorted(paths):
        digest.update(f"{path.relative_to(root)}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def relpath(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def first_existing(candidates: Iterable[Path]) -> Path | None:
    for path in candidates:
        if path.exists():
            return path
    return None


def line_error(path: Path, line: int, message: str) -> FerBenchError:
    return FerBenchError(f"{path}:{line}: {message}")


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; a missing file is a one-line error."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FerBenchError(f"missing file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FerBenchError(f"cannot read {path}: {exc}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield number, line.strip()


def read_csv(
    path: Path, required: Iterable[str], header: list[str] | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV, as ``(line number, {column: text})``.

    Column names are compared without surrounding spaces (Kaggle's FER2013 copy writes
    ``" Usage"``); a header that lacks a required column fails on line 1. ``header`` names the
    columns of a file that has no header line.
    """
    required = list(required)
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise FerBenchError(f"missing file {path}") from None
    except OSError as exc:
        raise FerBenchError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        if header is None:
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise line_error(path, 1, "empty file, expected a header line") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise line_error(
                path,
                1,
                f"expected columns {','.join(required)}; missing {','.join(missing)} "
                f"(header is {','.join(header)})",
            )
        index = {name: i for i, name in enumerate(header)}
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise line_error(
                    path, reader.line_num, f"expected {len(header)} fields, got {len(row)}"
                )
            yield reader.line_num, {name: row[i].strip() for name, i in index.items()}


def parse_int(text: str, path: Path, line: int, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise line_error(path, line, f"{what} '{text}' is not a number") from None
        if not value.is_integer():
            raise line_error(path, line, f"{what} '{text}' is not a whole number") from None
        return int(value)


def parse_float(text: str, path: Path, line: int, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise line_error(path, line, f"{what} '{text}' is not a number") from None


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted so the cache order is reproducible."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def class_counts(labels: np.ndarray, num_classes: int) -> list[int]:
    return np.bincount(labels, minlength=num_classes).astype(int).tolist()
