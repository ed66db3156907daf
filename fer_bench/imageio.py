"""Turning one :class:`ImageRef` into a cached ``(3, S, S)`` uint8 face, with a status.

Policy, recorded in every manifest:

* corrupt (undecodable or truncated) and missing files are skipped: never a crash, and every one
  is counted and listed in the manifest, so the stored counts always add up to the listed ones;
* with ``--align mtcnn``, an image where MTCNN finds no face is kept, rendered from the dataset's
  own face box where it has one (AffectNet) else from the central square, and listed as no-face;
* with ``--align none``, the dataset's face box (made square around its centre) or else the
  central square of the image is resized; pre-aligned data (RAF-DB aligned, FER2013 pixels,
  Aff-Wild2 cropped_aligned) is therefore just resized.
"""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image, ImageOps

from fer_bench.rawdata import ImageRef

OK, NO_FACE, CORRUPT, MISSING = 0, 1, 2, 3
STATUS_NAMES = {OK: "ok", NO_FACE: "no_face", CORRUPT: "corrupt", MISSING: "missing"}

POLICY = {
    "corrupt": "undecodable or truncated images are skipped, counted and listed here",
    "missing": "images named by the labels but absent on disk are skipped, counted and listed",
    "no_face": "with --align mtcnn, images without a detected face are kept, cropped from the "
    "dataset's face box where it has one else the central square, counted and listed",
}


class ImageProblem(Exception):
    """An image that cannot be used; ``status`` says whether it is missing or corrupt."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode(ref: ImageRef) -> Image.Image:
    """The RGB image behind a reference; raises :class:`ImageProblem` instead of crashing."""
    if ref.pixels is not None:
        return Image.fromarray(np.ascontiguousarray(ref.pixels)).convert("RGB")
    assert ref.path is not None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's EXIF / palette chatter is not a failure
            with Image.open(ref.path) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                return img.convert("RGB")
    except FileNotFoundError:
        raise ImageProblem(MISSING, "file not found") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageProblem(CORRUPT, f"{type(exc).__name__}: {exc}") from None


def square_box(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """A face box ``x, y, w, h`` made square around its centre, as PIL crop bounds."""
    x, y, w, h = box
    side = max(w, h, 1.0)
    cx, cy = x + w / 2.0, y + h / 2.0
    left, top = int(round(cx - side / 2.0)), int(round(cy - side / 2.0))
    return left, top, left + int(round(side)), top + int(round(side))


def center_square(width: int, height: int) -> tuple[int, int, int, int]:
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def crop_resize(
    img: Image.Image, box: tuple[float, float, float, float] | None, size: int
) -> Image.Image:
    """The face box (or central square) resized to ``size``; outside the image is black."""
    bounds = square_box(box) if box is not None else center_square(*img.size)
    crop = img.crop(bounds)
    if crop.size != (size, size):
        crop = crop.resize((size, size), Image.Resampling.BICUBIC)
    return crop


def to_chw(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


def render(ref: ImageRef, size: int, aligner: object | None = None) -> tuple[np.ndarray, int]:
    """The cached face for ``ref`` and its status (``OK`` or ``NO_FACE``).

    ``aligner`` is a :class:`fer_bench.align.FaceAligner` for ``--align mtcnn``, else ``None``.
    Raises :class:`ImageProblem` for missing and corrupt files.
    """
    img = decode(ref)
    if aligner is None:
        return to_chw(crop_resize(img, ref.box, size)), OK
    region = None
    if ref.box is not None:  # search a generous margin around the dataset's own box
        x, y, w, h = ref.box
        region = (x - 0.5 * w, y - 0.5 * h, x + 1.5 * w, y + 1.5 * h)
    aligned = aligner.align(img, region)  # type: ignore[attr-defined]
    if aligned is None:
        return to_chw(crop_resize(img, ref.box, size)), NO_FACE
    return to_chw(aligned), OK
