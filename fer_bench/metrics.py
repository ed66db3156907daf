"""Classification metrics, ROC-AUC for noise diagnostics, and relabeling statistics.

Accuracies and F1 are percentages; AUCs are in [0, 1]. For noise diagnostics the positive class
is *clean* (label kept): an AUC above 0.5 means the score ranks clean samples above flipped ones.
"""

from __future__ import annotations

from typing import Any

import torch


def confusion_matrix(targets: torch.Tensor, preds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows are true classes, columns predicted classes."""
    flat = targets.long() * num_classes + preds.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def classification_metrics(
    targets: torch.Tensor, preds: torch.Tensor, num_classes: int
) -> dict[str, Any]:
    cm = confusion_matrix(targets.cpu(), preds.cpu(), num_classes).double()
    support = cm.sum(1)
    predicted = cm.sum(0)
    tp = cm.diag()
    total = cm.sum()
    per_class = torch.where(
        support > 0, tp / support.clamp(min=1) * 100, torch.full_like(tp, float("nan"))
    )
    precision = tp / predicted.clamp(min=1)
    recall = tp / support.clamp(min=1)
    f1 = torch.where(
        precision + recall > 0, 2 * precision * recall / (precision + recall), torch.zeros_like(tp)
    )
    present = (support > 0) | (predicted > 0)
    return {
        "accuracy": float(tp.sum() / total * 100) if total > 0 else float("nan"),
        "mean_class_accuracy": float(per_class[support > 0].mean())
        if (support > 0).any()
        else float("nan"),
        "macro_f1": float(f1[present].mean() * 100) if present.any() else float("nan"),
        "per_class_accuracy": [None if v != v else round(float(v), 4) for v in per_class],
        "confusion": cm.long().tolist(),
        "n": int(total),
    }


def roc_auc(scores: torch.Tensor, positive: torch.Tensor) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with tied ranks averaged); None if undefined."""
    scores = scores.detach().double().cpu().flatten()
    positive = positive.detach().bool().cpu().flatten()
    keep = ~torch.isnan(scores)
    scores, positive = scores[keep], positive[keep]
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = torch.argsort(scores, stable=True)
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.double)
    # Average the ranks within each group of tied scores.
    _, inverse, counts = torch.unique_consecutive(
        sorted_scores, return_inverse=True, return_counts=True
    )
    ends = torch.cumsum(counts, 0).double()
    mean_rank = ends - (counts.double() - 1) / 2
    ranks[order] = mean_rank[inverse]
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def relabel_stats(
    given: torch.Tensor, current: torch.Tensor, clean: torch.Tensor, num_classes: int
) -> dict[str, Any]:
    """What relabeling did: how many labels moved, how many were restored or corrupted.

    ``precision`` = restored / changed (how often a change was right); ``recall`` = restored /
    noisy, the share of the given labels that disagreed with the clean ones (``noisy``) that
    relabeling set right. None where its denominator is 0.
    """
    given, current, clean = given.cpu(), current.cpu(), clean.cpu()
    changed = current != given
    restored = changed & (current == clean)
    corrupted = changed & (given == clean)
    n_changed = int(changed.sum())
    n_noisy = int((given != clean).sum())
    return {
        "changed": n_changed,
        "restored": int(restored.sum()),
        "corrupted": int(corrupted.sum()),
        "noisy": n_noisy,
        "precision": float(restored.sum() / n_changed) if n_changed else None,
        "recall": float(restored.sum() / n_noisy) if n_noisy else None,
        "from_to": confusion_matrix(given[changed], current[changed], num_classes).tolist(),
    }
