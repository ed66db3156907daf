"""Batched training augmentation on the device the images already live on.

Images arrive as uint8 ``(B, 3, H, W)``; resizing, flips, noise and erasing run as a few batched
tensor ops driven by an explicit generator, so a run is reproducible and the GPU never waits on a
data-loader process.

Modes: ``none``; ``flip`` (p = 0.5); ``flip_or_noise`` — SCN's official recipe: with p = 0.5 one
of {horizontal flip, Gaussian pixel noise (variance 30 on the 0-255 scale)} chosen uniformly;
``crop_flip`` — random scale/shift (0.85-1.15, +/-10 %) and flip. ``random_erasing`` follows
torchvision's RandomErasing defaults (p = 0.5, area 2-25 %, aspect 0.3-3.3, value 0) as SCN uses.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AUGMENTS = ("none", "flip", "flip_or_noise", "crop_flip")


def _uniform(
    n: int, lo: float, hi: float, gen: torch.Generator, device: torch.device
) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 -> float in [0, 1] at ``size`` x ``size``."""
    x = images.float().div_(255)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=x.shape[-1] > size
        )
    return x


_NORMALIZE_CACHE: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}


def _mean_std(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Made once per device: building them per step would copy from the host and sync."""
    key = (device, dtype)
    if key not in _NORMALIZE_CACHE:
        mean = torch.tensor(IMAGENET_MEAN, dtype=dtype).view(1, 3, 1, 1).to(device)
        std = torch.tensor(IMAGENET_STD, dtype=dtype).view(1, 3, 1, 1).to(device)
        _NORMALIZE_CACHE[key] = (mean, std)
    return _NORMALIZE_CACHE[key]


def normalize(x: torch.Tensor) -> torch.Tensor:
    mean, std = _mean_std(x.device, x.dtype)
    return (x - mean) / std


def eval_transform(images: torch.Tensor, size: int) -> torch.Tensor:
    return normalize(resize(images, size))


def _flip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def _crop_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    scale = _uniform(n, 0.85, 1.15, gen, x.device)
    sign = torch.where(torch.rand(n, generator=gen, device=x.device) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = sign / scale
    theta[:, 1, 1] = 1 / scale
    theta[:, 0, 2] = _uniform(n, -0.1, 0.1, gen, x.device)
    theta[:, 1, 2] = _uniform(n, -0.1, 0.1, gen, x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def random_erasing(
    x: torch.Tensor,
    gen: torch.Generator,
    p: float = 0.5,
    area: tuple[float, float] = (0.02, 0.25),
    ratio: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """Erase one rectangle per chosen sample (to 0 in normalised space, as torchvision does)."""
    n, _, h, w = x.shape
    dev = x.device
    target = _uniform(n, *area, gen, dev) * h * w
    log_ratio = _uniform(n, math.log(ratio[0]), math.log(ratio[1]), gen, dev)
    aspect = torch.exp(log_ratio)
    eh = torch.sqrt(target * aspect).round().clamp(1, h)
    ew = torch.sqrt(target / aspect).round().clamp(1, w)
    top = (torch.rand(n, generator=gen, device=dev) * (h - eh + 1)).floor()
    left = (torch.rand(n, generator=gen, device=dev) * (w - ew + 1)).floor()
    chosen = torch.rand(n, generator=gen, device=dev) < p
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    box = (
        (rows >= top.view(n, 1, 1))
        & (rows < (top + eh).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1))
        & (cols < (left + ew).view(n, 1, 1))
        & chosen.view(n, 1, 1)
    )
    return x.masked_fill(box.unsqueeze(1), 0.0)


def train_transform(
    images: torch.Tensor, size: int, gen: torch.Generator, mode: str, erasing: bool
) -> torch.Tensor:
    x = resize(images, size)
    n = x.shape[0]
    if mode == "flip":
        x = _flip(x, torch.rand(n, generator=gen, device=x.device) < 0.5)
    elif mode == "flip_or_noise":
        apply = torch.rand(n, generator=gen, device=x.device) < 0.5
        use_flip = torch.rand(n, generator=gen, device=x.device) < 0.5
        x = _flip(x, apply & use_flip)
        noise = torch.randn(x.shape, generator=gen, device=x.device) * (math.sqrt(30.0) / 255)
        noisy = (x + noise).clamp_(0, 1)
        x = torch.where((apply & ~use_flip).view(-1, 1, 1, 1), noisy, x)
    elif mode == "crop_flip":
        x = _crop_flip(x, gen)
    elif mode != "none":
        raise ValueError(f"unknown augment mode {mode}")
    x = normalize(x)
    if erasing:
        x = random_erasing(x, gen)
    return x
