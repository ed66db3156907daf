"""The optimizer and the per-epoch learning-rate schedule a run's config names (``OPTIMIZERS``
and ``SCHEDULERS`` in :mod:`fer_bench.config`); built by the trainer, never by a method."""

from __future__ import annotations

import torch

from fer_bench.config import RunConfig


def build_optimizer(cfg: RunConfig, params, device: torch.device) -> torch.optim.Optimizer:
    fused = {"fused": True} if device.type == "cuda" else {}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **fused
    )


def build_scheduler(cfg: RunConfig, optimizer: torch.optim.Optimizer):
    """Stepped once per epoch."""
    if cfg.scheduler == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.scheduler_gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=max(cfg.epochs // 3, 1), gamma=cfg.scheduler_gamma
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
