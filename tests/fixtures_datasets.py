"""Tiny copies of the real datasets in their shipped formats, built in a test's tmp_path.

Images are solid grey squares whose level encodes the label (``level(label)``), so a test can
check that every cached image still sits next to its own label after decoding and reordering.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def level(label: int) -> int:
    """The grey level of a fixture image with 0-based ``label``."""
    return 20 + 30 * label


def write_image(path: Path, value: int, size: int = 16, fmt: str = "JPEG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path, fmt, quality=95)
    return path


def write_truncated_jpeg(path: Path, size: int = 32) -> Path:
    """A JPEG cut in half, as an interrupted download leaves it."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, "JPEG")
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def mean_levels(images) -> list[int]:
    """Per-image mean grey level of a cached (N, 3, S, S) uint8 tensor, rounded."""
    return [round(v) for v in images.float().mean(dim=(1, 2, 3)).tolist()]


@pytest.fixture(name="cache_env")
def cache_env_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty cache root for one test (import it to use ``cache_env`` in a module)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("FER_BENCH_CACHE", str(cache))
    return cache


# --- RAF-DB -------------------------------------------------------------------------------

RAFDB_TRAIN = [1, 2, 3, 4, 5, 6, 7, 4]  # file labels, 1-based
RAFDB_TEST = [7, 1, 4]


def make_rafdb(root: Path, truncated: str | None = "train_00003") -> Path:
    """The official layout: misspelt label list plus Image/aligned/<stem>_aligned.jpg."""
    lines = [f"train_{i + 1:05d}.jpg {lab}" for i, lab in enumerate(RAFDB_TRAIN)]
    lines += [f"test_{i + 1:04d}.jpg {lab}" for i, lab in enumerate(RAFDB_TEST)]
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    label_file.parent.mkdir(parents=True)
    label_file.write_text("\n".join(lines) + "\n")
    for line in lines:
        name, lab = line.split()
        path = root / "Image" / "aligned" / f"{Path(name).stem}_aligned.jpg"
        if Path(name).stem == truncated:
            write_truncated_jpeg(path)
        else:
            write_image(path, level(int(lab) - 1))
    return root


def make_rafdb_mirror(root: Path) -> Path:
    """The common mirror layout: DATASET/{train,test}/<1..7>/<stem>_aligned.jpg."""
    for split, labels, width in (("train", RAFDB_TRAIN, 5), ("test", RAFDB_TEST, 4)):
        for i, lab in enumerate(labels):
            name = f"{split}_{i + 1:0{width}d}_aligned.jpg"
            write_image(root / "DATASET" / split / str(lab) / name, level(lab - 1))
    return root


# --- FER2013 / FERPlus ----------------------------------------------------------------------

FER_HEADER = ["emotion", "pixels", "Usage"]


def fer_pixels(value: int) -> str:
    return " ".join([str(value)] * 48 * 48)


def write_fer2013(path: Path, rows: list[tuple[int, str]], header: list[str] = FER_HEADER) -> Path:
    """fer2013.csv from ``(emotion, usage)`` rows; row i's pixels all equal ``10 * i``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, (emotion, usage) in enumerate(rows):
            writer.writerow([emotion, fer_pixels(10 * i), usage])
    return path


# Row 0 is labelled neutral by FER2013 but happiness by FERPlus: the "real" noise.
FER_ROWS = [
    (6, "Training"),
    (0, "Training"),
    (6, "Training"),
    (4, "Training"),
    (5, "Training"),
    (3, "PublicTest"),
    (6, "PublicTest"),
    (2, "PrivateTest"),
    (3, "PrivateTest"),
]

PLUS_HEADER = [
    "Usage",
    "Image name",
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
]
# One row per FER_ROWS row. Names skip the nameless row (index 2) as the real file does.
PLUS_ROWS = [
    ("Training", "fer0000000.png", [0, 10, 0, 0, 0, 0, 0, 0, 0, 0]),  # happiness (FER: neutral)
    ("Training", "fer0000001.png", [1, 0, 0, 0, 6, 2, 0, 0, 1, 0]),  # anger (FER: angry)
    ("Training", "", [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # nameless: no image, dropped
    (
        "Training",
        "fer0000002.png",
        [0, 0, 0, 5, 0, 0, 0, 0, 4, 0],
    ),  # 9 votes: sadness 5/9 (FER: sad)
    ("Training", "fer0000003.png", [0, 0, 0, 0, 0, 0, 0, 1, 7, 2]),  # unknown wins: dropped
    ("PublicTest", "fer0000004.png", [0, 9, 1, 0, 0, 0, 0, 0, 0, 0]),
    ("PublicTest", "fer0000005.png", [2, 0, 0, 0, 0, 0, 0, 8, 0, 0]),  # contempt
    ("PrivateTest", "fer0000006.png", [0, 0, 3, 0, 0, 0, 7, 0, 0, 0]),  # fear
    ("PrivateTest", "fer0000007.png", [4, 4, 0, 0, 0, 0, 0, 0, 2, 0]),  # no majority
]


def write_ferplus_csv(path: Path, rows=PLUS_ROWS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(PLUS_HEADER)
        for usage, name, votes in rows:
            writer.writerow([usage, name, *votes])
    return path


def make_ferplus_csv(root: Path) -> Path:
    write_fer2013(root / "fer2013.csv", FER_ROWS)
    write_ferplus_csv(root / "fer2013new.csv")
    return root


def make_ferplus_folders(root: Path) -> Path:
    """What the FERPlus tool generates: PNG folders with a header-less label.csv each."""
    folders = {
        "Training": "FER2013Train",
        "PublicTest": "FER2013Valid",
        "PrivateTest": "FER2013Test",
    }
    rows: dict[str, list[list[object]]] = {f: [] for f in folders.values()}
    for i, (usage, name, votes) in enumerate(PLUS_ROWS):
        if not name:
            continue
        folder = root / folders[usage]
        write_image(folder / name, 10 * i, size=48, fmt="PNG")
        rows[folders[usage]].append([name, "(0, 0, 48, 48)", *votes])
    for folder, items in rows.items():
        with open(root / folder / "label.csv", "w", newline="") as f:
            csv.writer(f).writerows(items)
    return root


# --- AffectNet ------------------------------------------------------------------------------

AFFECTNET_HEADER = [
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


def write_affectnet_image(path: Path, value: int) -> Path:
    """A 40x40 black photo with the 'face' (a grey 16x16 square at 12,8) the CSV box names."""
    img = np.zeros((40, 40, 3), dtype=np.uint8)
    img[8:24, 12:28] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, "PNG")
    return path


def make_affectnet_csv(root: Path, train: list[int], val: list[int]) -> Path:
    """training.csv / validation.csv with one image per expression id given.

    Valence/arousal is ``(0.1 * expression, -0.5)``, except the dataset's -2 "not rated" marker
    on ids 8-10 and, to test that it becomes NaN on a kept sample, on the first row.
    """
    landmarks = ";".join(["1.0"] * 136)
    for file_name, expressions in (("training.csv", train), ("validation.csv", val)):
        with open(root / file_name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(AFFECTNET_HEADER)
            for i, expression in enumerate(expressions):
                rel = f"{i % 3 + 1}/{file_name[:5]}{i:03d}.png"
                write_affectnet_image(
                    root / "Manually_Annotated_Images" / rel, level(min(expression, 7))
                )
                va = (-2, -2) if expression >= 8 or i == 0 else (round(0.1 * expression, 2), -0.5)
                writer.writerow([rel, 12, 8, 16, 16, landmarks, expression, *va])
    return root


def make_affectnet_npy(root: Path, train: list[int], val: list[int]) -> Path:
    """The later release: <set>/images/<id>.jpg with annotations/<id>_{exp,val,aro,lnd}.npy."""
    for folder, expressions in (("train_set", train), ("val_set", val)):
        for i, expression in enumerate(expressions):
            write_image(root / folder / "images" / f"{i}.jpg", level(min(expression, 7)))
            ann = root / folder / "annotations"
            ann.mkdir(parents=True, exist_ok=True)
            np.save(ann / f"{i}_exp.npy", np.array(str(expression)))  # stored as text, as shipped
            np.save(ann / f"{i}_val.npy", np.array(str(0.25)))
            np.save(ann / f"{i}_aro.npy", np.array(str(-0.75)))
            np.save(ann / f"{i}_lnd.npy", np.zeros(136))
    return root


# --- Aff-Wild2 ------------------------------------------------------------------------------

EXPR_HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
AU_HEADER = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"


def write_annotation(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def make_affwild2(
    root: Path,
    frames: dict[str, list[int]],
    split_of: dict[str, str],
    missing_frames: dict[str, list[int]] | None = None,
) -> Path:
    """EXPR/VA/AU challenge folders plus cropped_aligned/<video>/00001.jpg frames.

    VA is (0.1 * frame, -5 marker on frame 2); AUs are all 1 except -1 on frame 1.
    """
    missing_frames = missing_frames or {}
    base = root / "Annotations"
    for video, labels in frames.items():
        split = split_of[video]
        write_annotation(
            base / "EXPR_Classification_Challenge" / split / f"{video}.txt",
            EXPR_HEADER,
            [str(v) for v in labels],
        )
        va = ["-5,-5" if f == 2 else f"{0.1 * f:.1f},0.5" for f in range(1, len(labels) + 1)]
        write_annotation(
            base / "VA_Estimation_Challenge" / split / f"{video}.txt", "valence,arousal", va
        )
        au = [",".join(["-1" if f == 1 else "1"] * 12) for f in range(1, len(labels) + 1)]
        write_annotation(base / "AU_Detection_Challenge" / split / f"{video}.txt", AU_HEADER, au)
        for f, label in enumerate(labels, 1):
            if f not in missing_frames.get(video, []):
                write_image(root / "cropped_aligned" / video / f"{f:05d}.jpg", level(max(label, 0)))
    return root
