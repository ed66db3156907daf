"""Face detection and 5-point alignment for data that does not ship as aligned faces.

MTCNN (facenet-pytorch, weights inside the package, so nothing is downloaded) finds the face and
its five landmarks; a least-squares similarity transform (rotation, uniform scale, translation)
maps them onto a fixed template and the image is warped with PIL. A similarity keeps the face's
proportions, so expressions are not distorted the way a full affine fit could distort them.
facenet-pytorch is imported lazily: loaders and ``--align none`` never pay for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

#: Where the five landmarks (left eye, right eye, nose tip, left and right mouth corner, as seen
#: in the image) land in a square crop, as fractions of its side. These are the widely used
#: 112x112 face-recognition reference points divided by 112: eyes at ~46 % height, mouth at ~82 %,
#: so the crop spans eyebrows to chin, the region expression depends on.
FIVE_POINT_TEMPLATE = (
    np.array(
        [
            [38.2946, 51.6963],
            [73.5318, 51.5014],
            [56.0252, 71.7366],
            [41.5493, 92.3655],
            [70.7299, 92.2041],
        ],
        dtype=np.float64,
    )
    / 112.0
)


@dataclass
class Detection:
    """One detected face in image pixel coordinates."""

    box: np.ndarray  # (4,) x0, y0, x1, y1
    landmarks: np.ndarray  # (5, 2) x, y in the template's point order
    probability: float


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity that best maps ``src`` points onto ``dst`` (Umeyama's least squares)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(
            f"need matching (K, 2) point sets with K >= 2, got {src.shape}, {dst.shape}"
        )
    mu_src, mu_dst = src.mean(0), dst.mean(0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    cov = dst_c.T @ src_c / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # never a reflection: faces do not mirror
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    var_src = (src_c**2).sum() / len(src)
    scale = float((sigma * sign).sum() / var_src) if var_src > 0 else 1.0
    translation = mu_dst - scale * rotation @ mu_src
    return np.hstack([scale * rotation, translation[:, None]])


def warp_face(
    image: Image.Image, landmarks: np.ndarray, size: int, template: np.ndarray = FIVE_POINT_TEMPLATE
) -> Image.Image:
    """Warp ``image`` so its five ``landmarks`` land on ``template`` in a ``size`` x ``size`` crop."""
    forward = similarity_transform(landmarks, template * size)
    full = np.vstack([forward, [0.0, 0.0, 1.0]])
    inverse = np.linalg.inv(full)  # PIL asks, for every output pixel, where to sample the input
    coeffs = tuple(float(v) for v in inverse[:2].reshape(-1))
    return image.convert("RGB").transform(
        (size, size),
        Image.Transform.AFFINE,
        coeffs,
        resample=Image.Resampling.BILINEAR,
        fillcolor=(0, 0, 0),
    )


@contextmanager
def _one_cpu_thread(enabled: bool) -> Iterator[None]:
    """Run MTCNN on one CPU thread: its many tiny convolutions gain nothing from intra-op threads
    and slow down many-fold when cores are shared; prepare parallelises over processes instead."""
    import torch

    previous = torch.get_num_threads()
    if enabled and previous != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if enabled and previous != 1:
            torch.set_num_threads(previous)


class FaceAligner:
    """MTCNN detection plus template warping; one instance per process, reused for every image.

    ``min_face_size`` is MTCNN's smallest searched face in pixels. When several faces are found
    the largest wins (MTCNN's ``select_largest``): the annotated subject is the main face in
    FER datasets.
    """

    def __init__(self, size: int, device: str = "cpu", min_face_size: int = 20) -> None:
        try:
            from facenet_pytorch import MTCNN
        except ImportError as exc:  # a broken install should say what is missing, not crash later
            from fer_bench.errors import FerBenchError

            raise FerBenchError(
                f"--align mtcnn needs facenet-pytorch ({exc}); install it or use --align none"
            ) from None
        self.size = size
        self.min_face_size = max(12, min_face_size)
        self._cpu = str(device).startswith("cpu")
        self._mtcnn: Any = MTCNN(
            keep_all=False, select_largest=True, min_face_size=min_face_size, device=device
        )

    def detect(self, image: Image.Image) -> Detection | None:
        """The largest face with its landmarks, or ``None`` where MTCNN finds none."""
        image = image.convert("RGB")
        if min(image.size) < self.min_face_size:  # MTCNN's image pyramid would be empty
            return None
        with _one_cpu_thread(self._cpu):
            boxes, probs, points = self._mtcnn.detect(image, landmarks=True)
        if boxes is None or len(boxes) == 0 or points is None:
            return None
        return Detection(
            box=np.asarray(boxes[0], dtype=np.float64),
            landmarks=np.asarray(points[0], dtype=np.float64).reshape(5, 2),
            probability=float(probs[0]),
        )

    def align(
        self, image: Image.Image, region: tuple[float, float, float, float] | None = None
    ) -> Image.Image | None:
        """The aligned ``size`` x ``size`` face, or ``None`` when no face is found.

        ``region`` (x0, y0, x1, y1) limits the search to part of the image, e.g. around a
        dataset's own face box: faster, and it picks the annotated face, not a bystander.
        """
        offset = np.zeros(2)
        search = image
        if region is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in region)
            search = image.crop((x0, y0, x1, y1))
            offset = np.array([x0, y0], dtype=np.float64)
        found = self.detect(search)
        if found is None:
            return None
        return warp_face(image, found.landmarks + offset, self.size)
