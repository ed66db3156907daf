"""Losses more than one method uses: one home, imported by the method files."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rank_regularization(
    weights: torch.Tensor, beta: float, margin: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """RR-loss and a mask of the low-importance group, for one batch of weights ``(B,)``."""
    n = weights.shape[0]
    if n < 2:  # no ranking in a batch of one
        return weights.sum() * 0, torch.zeros(n, dtype=torch.bool, device=weights.device)
    n_high = min(max(int(n * beta), 1), n - 1)
    order = torch.argsort(weights, descending=True)
    ranked = weights[order]
    loss = (margin - (ranked[:n_high].mean() - ranked[n_high:].mean())).clamp(min=0)
    low = torch.zeros(n, dtype=torch.bool, device=weights.device)
    low[order[n_high:]] = True
    return loss, low


def class_balanced_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-sample weights summing to one, every class present in the batch weighing the same."""
    # one_hot + sum rather than bincount: CUDA's bincount reads its size back to the host.
    counts = F.one_hot(labels, num_classes).sum(0).float()
    w = 1.0 / counts[labels]
    return w / w.sum()


def masked_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    known = ~torch.isnan(targets)
    loss = F.binary_cross_entropy_with_logits(logits, torch.nan_to_num(targets), reduction="none")
    return (loss * known).sum() / known.sum().clamp(min=1)


def masked_mse(pred: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    known = ~torch.isnan(targets)
    err = (pred - torch.nan_to_num(targets)) ** 2
    return (err * known).sum() / known.sum().clamp(min=1)
