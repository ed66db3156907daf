"""An embedded, procedurally rendered FER set: the default for demos, tests and CI.

Each face is drawn from soft-edged shapes (face ellipse, eyes, brows, nose, mouth) whose geometry
follows a 6-number expression code: brow raise, inner-brow tilt, eye opening, mouth curvature,
mouth opening and mouth width. Every class (RAF-DB order) has a prototype code; a sample adds
per-sample variation, an identity (face shape, skin tone, background) and a pose (rotation, scale,
shift). Some samples are ambiguous blends of two expressions (the blend is kept as a soft label)
and some are degraded (blur, sensor noise, occlusion, low resolution), so the set is learnable but
not trivial. Valence/arousal and action units are derived from the rendered code itself, not from
the label, so they stay informative when labels are noisy (the premise of multi-task correction).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from fer_bench.dataset_api import (
    DEFAULT_ASYMMETRIC_MAP,
    RAFDB_CLASSES,
    FerBenchError,
    FERData,
    Split,
    cache_root,
    register_dataset,
)

GENERATOR_VERSION = 2

#: brow_raise, brow_tilt (inner end up > 0), eye_open, mouth_curve (smile > 0), mouth_open, mouth_width
PROTOTYPES = torch.tensor(
    [
        [1.0, 0.0, 1.0, 0.0, 1.0, -0.4],  # surprise
        [0.6, 0.7, 0.8, -0.4, 0.5, 0.4],  # fear
        [-0.6, -0.3, -0.6, -0.6, 0.15, -0.1],  # disgust
        [0.0, 0.0, -0.3, 1.0, 0.35, 0.7],  # happiness
        [-0.2, 0.9, -0.4, -0.8, 0.0, -0.2],  # sadness
        [-0.9, -0.9, 0.3, -0.3, 0.0, -0.5],  # anger
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # neutral
    ]
)
#: Circumplex position of each class (valence, arousal), in [-1, 1].
CLASS_VA = torch.tensor(
    [[0.2, 0.8], [-0.6, 0.7], [-0.7, 0.3], [0.8, 0.4], [-0.7, -0.4], [-0.6, 0.7], [0.0, 0.0]]
)
AU_NAMES = ["AU1", "AU2", "AU4", "AU5", "AU6", "AU9", "AU12", "AU15", "AU26"]


def _soft(signed: torch.Tensor, sharpness: float) -> torch.Tensor:
    """A soft inside-mask from a signed 'inside' value (> 0 inside)."""
    return torch.sigmoid(signed * sharpness)


def _segment_distance(x, y, x0, y0, x1, y1):
    dx, dy = x1 - x0, y1 - y0
    t = (((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy + 1e-8)).clamp(0, 1)
    return torch.sqrt((x - x0 - t * dx) ** 2 + (y - y0 - t * dy) ** 2 + 1e-12)


def render(code: torch.Tensor, gen: torch.Generator, size: int) -> torch.Tensor:
    """Render faces for expression codes ``(N, 6)``; returns float images ``(N, 3, size, size)``."""
    n = code.shape[0]

    def rand(*shape):
        return torch.rand(*shape, generator=gen)

    def col(v):  # (N,) -> (N, 1, 1) for broadcasting over the pixel grid
        return v.view(n, 1, 1)

    brow_raise, brow_tilt, eye_open, curve, mouth_open, mouth_width = (col(c) for c in code.T)
    # Pose: rotation, scale, shift (inverse-mapped onto the pixel grid).
    angle = col((rand(n) - 0.5) * math.radians(20))
    scale = col(0.85 + 0.3 * rand(n))
    shift_x, shift_y = col((rand(n) - 0.5) * 0.2), col((rand(n) - 0.5) * 0.2)
    lin = torch.linspace(-1, 1, size)
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    gx, gy = gx.expand(n, size, size) - shift_x, gy.expand(n, size, size) - shift_y
    x = (gx * torch.cos(angle) + gy * torch.sin(angle)) / scale
    y = (-gx * torch.sin(angle) + gy * torch.cos(angle)) / scale
    sharp = size * 0.9
    # Identity: face shape, skin tone, background.
    a, b = col(0.55 + 0.15 * rand(n)), col(0.7 + 0.15 * rand(n))
    skin = 0.5 + 0.45 * rand(n, 1, 1, 1) * torch.tensor([1.0, 0.85, 0.7]).view(1, 3, 1, 1)
    background = rand(n, 3, 1, 1) * 0.8 + 0.1 * (gy.unsqueeze(1) + 1)
    face = _soft(1 - (x / a) ** 2 - (y / b) ** 2, sharp / 6)
    ink = (0.02 + 0.12 * rand(n)).view(n, 1, 1)  # feature darkness, slightly varied

    features = torch.zeros(n, size, size)
    # Eyes: height grows with eye_open.
    eye_h = 0.055 * (1 + 0.8 * eye_open).clamp(min=0.15)
    for side in (-1, 1):
        ex, ey = side * 0.38 * a, -0.2 * b
        features = torch.maximum(
            features, _soft(1 - ((x - ex) / (0.14 * a)) ** 2 - ((y - ey) / eye_h) ** 2, sharp / 8)
        )
        # Brows: a segment whose height follows brow_raise and whose inner end follows brow_tilt.
        by = -0.45 * b - 0.1 * brow_raise
        inner_y = by - 0.1 * brow_tilt
        d = _segment_distance(x, y, side * 0.6 * a, by, side * 0.12 * a, inner_y)
        features = torch.maximum(features, _soft(0.05 - d, sharp))
    # Nose: a short vertical stroke; disgust-like codes (low brows, narrowed eyes) wrinkle it.
    d = _segment_distance(x, y, 0 * a, -0.05 * b, 0 * a, 0.18 * b)
    features = torch.maximum(features, 0.6 * _soft(0.02 - d, sharp))
    # Mouth: lip centre line bends with curve; the opening grows with mouth_open.
    w = 0.32 * a * (1 + 0.35 * mouth_width)
    u = (1 - (x / w) ** 2).clamp(min=0)
    y0 = 0.45 * b
    centre = y0 + 0.14 * curve * u
    upper = centre - 0.04 * mouth_open * u - 0.022
    lower = centre + 0.13 * mouth_open * u + 0.022
    inside_x = _soft(w - x.abs(), sharp)
    lips = _soft(torch.minimum(y - upper, lower - y), sharp) * inside_x
    features = torch.maximum(features, lips)

    face_rgb = skin * (1 - features.unsqueeze(1)) + ink.unsqueeze(1) * features.unsqueeze(1)
    img = background * (1 - face.unsqueeze(1)) + face_rgb * face.unsqueeze(1)
    return img.clamp(0, 1)


def degrade(img: torch.Tensor, gen: torch.Generator, fraction: float) -> torch.Tensor:
    """Blur, sensor noise, occlusion or low resolution on a random ``fraction`` of the images."""
    n, _, size, _ = img.shape
    kind = torch.randint(0, 4, (n,), generator=gen)
    chosen = torch.rand(n, generator=gen) < fraction
    out = img.clone()
    blurred = F.avg_pool2d(F.pad(img, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    noisy = (img + 0.18 * torch.randn(img.shape, generator=gen)).clamp(0, 1)
    low = F.interpolate(
        F.interpolate(img, size=max(size // 4, 4), mode="area"), size=size, mode="nearest"
    )
    occluded = img.clone()
    ox = torch.randint(0, size // 2, (n,), generator=gen)
    oy = torch.randint(0, size // 2, (n,), generator=gen)
    shade = torch.rand(n, 3, generator=gen)
    lin = torch.arange(size)
    box = (
        (
            (lin.view(1, 1, size) >= ox.view(n, 1, 1))
            & (lin.view(1, 1, size) < ox.view(n, 1, 1) + size // 2)
        )
        & (
            (lin.view(1, size, 1) >= oy.view(n, 1, 1))
            & (lin.view(1, size, 1) < oy.view(n, 1, 1) + size // 2)
        )
    ).unsqueeze(1)
    occluded = torch.where(box, shade.view(n, 3, 1, 1).expand_as(img), occluded)
    for k, version in enumerate((blurred, noisy, occluded, low)):
        pick = (chosen & (kind == k)).view(n, 1, 1, 1)
        out = torch.where(pick, version, out)
    return out


def action_units(code: torch.Tensor) -> torch.Tensor:
    """AU activations (0/1) read off the rendered expression code, FACS-style."""
    brow_raise, brow_tilt, eye_open, curve, mouth_open, _ = code.T
    return torch.stack(
        [
            (brow_tilt > 0.35) | (brow_raise > 0.5),  # AU1 inner brow raiser
            brow_raise > 0.5,  # AU2 outer brow raiser
            brow_raise < -0.4,  # AU4 brow lowerer
            eye_open > 0.5,  # AU5 upper lid raiser
            (curve > 0.5) & (eye_open < 0),  # AU6 cheek raiser
            (brow_raise < -0.3) & (eye_open < -0.3),  # AU9 nose wrinkler
            curve > 0.5,  # AU12 lip corner puller
            curve < -0.45,  # AU15 lip corner depressor
            mouth_open > 0.6,  # AU26 jaw drop
        ],
        dim=1,
    ).float()


def generate(
    n: int, seed: int, size: int, ambiguous: float, degraded: float, variation: float
) -> Split:
    """``n`` labelled samples; everything follows from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(RAFDB_CLASSES), (n,), generator=gen)
    # Ambiguous samples blend in a second expression with weight in [0.2, 0.45]: still dominated
    # by the labelled class, and the soft label records the mix.
    other = (labels + torch.randint(1, len(RAFDB_CLASSES), (n,), generator=gen)) % len(
        RAFDB_CLASSES
    )
    is_blend = torch.rand(n, generator=gen) < ambiguous
    mix = torch.where(is_blend, 0.2 + 0.25 * torch.rand(n, generator=gen), torch.zeros(n))
    soft = F.one_hot(labels, len(RAFDB_CLASSES)).float() * (1 - mix).unsqueeze(1)
    soft[torch.arange(n), other] += mix
    code = soft @ PROTOTYPES + variation * torch.randn(n, PROTOTYPES.shape[1], generator=gen)
    images = []
    chunk = 1024
    for start in range(0, n, chunk):
        part = render(code[start : start + chunk], gen, size)
        images.append(degrade(part, gen, degraded))
    pixels = (torch.cat(images) * 255).round().to(torch.uint8)
    va = (soft @ CLASS_VA + 0.05 * torch.randn(n, 2, generator=gen)).clamp(-1, 1)
    return Split(
        images=pixels,
        labels=labels,
        soft_labels=soft,
        valence_arousal=va,
        action_units=action_units(code),
        names=[f"synthetic_{seed}_{i:06d}.png" for i in range(n)],
    )


@register_dataset(
    "synthetic",
    run_defaults={"image_size": 48, "epochs": 12, "backbone": "test_resnet", "batch_size": 64},
)
def synthetic(
    root: str | None = None,
    *,
    num_train: int = 3000,
    num_test: int = 1000,
    size: int = 48,
    seed: int = 0,
    ambiguous: float = 0.15,
    degraded: float = 0.25,
    variation: float = 0.3,
    cache: bool = True,
) -> FERData:
    """The embedded synthetic FER set (``root`` is unused: it is generated, then cached)."""
    if num_train < 7 or num_test < 7:
        raise FerBenchError("synthetic set needs num_train and num_test >= 7")
    if not 16 <= size <= 256:
        raise FerBenchError(f"synthetic size must be in 16..256, got {size}")
    for name, value in (("ambiguous", ambiguous), ("degraded", degraded)):
        if not 0 <= value <= 1:
            raise FerBenchError(f"synthetic {name} must be in [0, 1], got {value}")
    settings = dict(
        version=GENERATOR_VERSION,
        num_train=num_train,
        num_test=num_test,
        size=size,
        seed=seed,
        ambiguous=ambiguous,
        degraded=degraded,
        variation=variation,
    )
    key = hashlib.sha1(repr(sorted(settings.items())).encode()).hexdigest()[:16]
    path = cache_root() / "synthetic" / f"{key}.pt"
    splits = _load_cached(path) if cache else None
    if splits is None:
        # Train and test come from disjoint seeds of the same generator.
        train = generate(num_train, seed * 2 + 1, size, ambiguous, degraded, variation)
        test = generate(num_test, seed * 2 + 2, size, ambiguous, degraded, variation)
        splits = {"train": train, "test": test}
        if cache:
            _save_cached(path, splits)
    return FERData(
        name="synthetic",
        class_names=list(RAFDB_CLASSES),
        train=splits["train"],
        test=splits["test"],
        au_names=list(AU_NAMES),
        asymmetric_map=dict(DEFAULT_ASYMMETRIC_MAP),  # the common 7-class confusions
        meta={"generator": settings, "cache": str(path) if cache else None},
    )


_FIELDS = ("images", "labels", "soft_labels", "valence_arousal", "action_units")


def _save_cached(path: Path, splits: dict[str, Split]) -> None:
    from fer_bench.results import save_torch_atomic

    payload = {
        name: {f: getattr(split, f) for f in _FIELDS} | {"names": split.names}
        for name, split in splits.items()
    }
    try:
        save_torch_atomic(path, payload)
    except OSError:
        pass  # a read-only cache dir only costs regeneration time


def _load_cached(path: Path) -> dict[str, Split] | None:
    if not path.exists():
        return None
    try:
        payload = torch.load(path, weights_only=True)
        return {name: Split(**fields) for name, fields in payload.items()}
    except Exception:
        return None  # a stale or damaged cache is regenerated, never trusted
