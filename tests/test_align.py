"""Face detection and 5-point alignment on a real photograph (scikit-image's astronaut)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fer_bench.align import FIVE_POINT_TEMPLATE, FaceAligner, similarity_transform, warp_face


@pytest.fixture(scope="module")
def aligner() -> FaceAligner:
    return FaceAligner(64)


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    skimage_data = pytest.importorskip("skimage.data")
    return Image.fromarray(skimage_data.astronaut())


def test_similarity_transform_recovers_rotation_scale_and_shift() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = np.deg2rad(17.0), 1.7, np.array([12.0, -5.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = scale * src @ rotation.T + shift
    matrix = similarity_transform(src, dst)
    assert matrix[:, :2] == pytest.approx(scale * rotation, abs=1e-9)
    assert matrix[:, 2] == pytest.approx(shift, abs=1e-9)


def test_similarity_transform_never_mirrors() -> None:
    src = FIVE_POINT_TEMPLATE * 100
    mirrored = src * np.array([-1.0, 1.0])
    matrix = similarity_transform(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_detects_the_astronaut_face_with_plausible_landmarks(
    aligner: FaceAligner, astronaut: Image.Image
) -> None:
    found = aligner.detect(astronaut)
    assert found is not None and found.probability > 0.9
    x0, y0, x1, y1 = found.box
    # her face is in the upper middle of the 512x512 photo
    assert 100 < x0 < x1 < 350 and 0 < y0 < y1 < 250
    left_eye, right_eye, nose, mouth_left, mouth_right = found.landmarks
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert left_eye[0] < nose[0] < right_eye[0]
    assert ((found.landmarks >= [x0, y0]) & (found.landmarks <= [x1, y1])).all()


def test_aligned_crop_has_the_size_and_puts_landmarks_on_the_template(
    aligner: FaceAligner, astronaut: Image.Image
) -> None:
    face = aligner.align(astronaut)
    assert face is not None and face.size == (64, 64) and face.mode == "RGB"
    # detecting again in the aligned crop finds the landmarks where the template put them
    again = FaceAligner(64, min_face_size=20).detect(face.resize((128, 128)))
    assert again is not None
    # (within a tenth of the side: MTCNN's points on a tight crop sit a few percent lower)
    error = np.abs(again.landmarks / 128 - FIVE_POINT_TEMPLATE).max()
    assert error < 0.1


def test_region_limits_the_search(aligner: FaceAligner, astronaut: Image.Image) -> None:
    assert aligner.align(astronaut, region=(150, 30, 300, 200)).size == (64, 64)
    # the rocket-free lower right corner of the photo has no face
    assert aligner.align(astronaut, region=(380, 380, 512, 512)) is None


def test_blank_and_tiny_images_have_no_face(aligner: FaceAligner) -> None:
    assert aligner.detect(Image.new("RGB", (64, 64), (128, 128, 128))) is None
    assert aligner.detect(Image.new("RGB", (8, 8))) is None


def test_warp_face_output_size() -> None:
    image = Image.new("RGB", (50, 40), (255, 0, 0))
    out = warp_face(image, FIVE_POINT_TEMPLATE * 40 + 5, 24)
    assert out.size == (24, 24)
    assert np.asarray(out)[12, 12].tolist() == [255, 0, 0]
