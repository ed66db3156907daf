"""Cross-entropy baseline: a linear classifier on the backbone's pooled features."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from fer_bench.method import SCN_RECIPE, Batch, DataInfo, LabelStore, Method, StepOutput
from fer_bench.options import Range
from fer_bench.registry import register_method


@register_method("ce")
class CrossEntropy(Method):
    """Cross-entropy baseline (the reference every method is compared against)."""

    recipe = SCN_RECIPE
    checks = {"dropout": Range(0, 1, high_open=True), "label_smoothing": Range(0, 1)}

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        info: DataInfo,
        *,
        dropout: float = 0.0,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(backbone, num_features, info)
        self.dropout = nn.Dropout(dropout)
        self.label_smoothing = label_smoothing

    def loss(self, batch: Batch, labels: LabelStore) -> StepOutput:
        logits = self.classifier(self.dropout(self.features(batch.images)))
        loss = F.cross_entropy(logits.float(), batch.labels, label_smoothing=self.label_smoothing)
        return StepOutput(loss=loss, logits=logits)
