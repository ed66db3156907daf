"""Builders for method unit tests."""

import torch

from fer_bench.data import RAFDB_CLASSES
from fer_bench.method import DataInfo


def info_for(
    num_classes: int, num_features: int, va: bool = False, aus: int = 0, n: int = 30
) -> DataInfo:
    labels = torch.arange(n) % num_classes
    au_targets = (torch.arange(n * aus).view(n, aus) % 2).float() if aus else None
    return DataInfo(
        num_classes=num_classes,
        class_names=list(RAFDB_CLASSES[:num_classes]),
        num_train=n,
        class_counts=torch.bincount(labels, minlength=num_classes),
        train_labels=labels,
        has_valence_arousal=va,
        au_names=[f"AU{i + 1}" for i in range(aus)] if aus else None,
        train_action_units=au_targets,
    )
