"""SCN — Self-Cure Network (Wang et al., "Suppressing Uncertainties for Large-Scale Facial
Expression Recognition", CVPR 2020).

Self-attention importance weighting
    A branch ``Linear(feat, 1) + sigmoid`` gives each image an importance weight alpha_i, and the
    class logits are multiplied by it before the cross-entropy (the logit-weighted WCE-Loss):
    uncertain images get flat softmaxes and therefore small gradients.
Rank regularization
    The batch's weights are sorted; the top ``beta`` share is the high-importance group, the rest
    the low group. RR = max(0, delta1 - (mean_high - mean_low)). Total loss = WCE + ``rr_weight``
    * RR (the official code adds them with weight 1). The clamp replaces the official
    ``if diff > 0`` so no step waits on the host.
Relabeling
    From epoch ``relabel_epoch`` (1-based) on, a sample whose largest predicted probability
    exceeds the probability of its given label by more than delta2 gets the argmax as its new
    label, and keeps it for the rest of training (written to the label store on the device, so
    it takes effect at once, unlike the official code whose data-loader workers only see it the
    next epoch). The probabilities are the softmax of the weighted logits, as in the official code.

Where the paper and the official code (kaiwang960112/Self-Cure-Network, src/train.py) differ:
  * ``relabel_scope``: the paper relabels the low-importance group only (default ``"low"``);
    the official code relabels every sample of the batch (``"all"``; its issues #33 and #83).
  * ``rr_margin`` (delta1): 0.15 in the paper (batch 1024) and in train.py's default; the
    official README suggests 0.07 at batch 64.
Training recipe (``recipe``): the official code's — batch 64, Adam at PyTorch's default lr 1e-3
(train.py never passes its ``--lr`` to Adam), weight decay 1e-4, ExponentialLR gamma 0.9 per
epoch, 70 epochs, flip-or-Gaussian-noise with p = 0.5, RandomErasing(0.02-0.25), input 224
(the real datasets' run default). ``warmup_epochs`` trains with plain cross-entropy first (not
in the paper; for studying the weights). At test time the weighting does not change the argmax,
so ``predict`` returns the unweighted class scores and inference costs nothing extra.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fer_bench.losses import rank_regularization
from fer_bench.method import (
    SCN_RECIPE,
    Batch,
    DataInfo,
    LabelStore,
    Method,
    StepOutput,
    in_fp32,
)
from fer_bench.options import OneOf, Range
from fer_bench.registry import register_method


def relabel_candidates(
    logits: torch.Tensor, labels: torch.Tensor, margin: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which samples the model contradicts by more than ``margin``, and the label it proposes."""
    probs = logits.float().softmax(1)
    p_max, argmax = probs.max(1)
    p_given = probs.gather(1, labels[:, None]).squeeze(1)
    return (p_max - p_given) > margin, argmax


@register_method("scn")
class SelfCureNetwork(Method):
    """SCN (CVPR 2020): importance-weighted logits, rank regularization, relabeling."""

    recipe = SCN_RECIPE
    weight_name = "importance"
    relabels = True
    checks = {
        "beta": Range(0, 1, low_open=True, high_open=True),
        "rr_margin": Range(0),
        "rr_weight": Range(0),
        "relabel_margin": Range(0, 1),
        "relabel_epoch": Range(1),  # 1-based
        "relabel_scope": OneOf(("low", "all")),  # paper, official code
        "warmup_epochs": Range(0),
        "dropout": Range(0, 1, high_open=True),
    }

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        info: DataInfo,
        *,
        beta: float = 0.7,
        rr_margin: float = 0.15,
        rr_weight: float = 1.0,
        relabel_margin: float = 0.2,
        relabel_epoch: int = 10,
        relabel_scope: str = "low",
        relabel: bool = True,
        warmup_epochs: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(backbone, num_features, info)
        self.beta, self.rr_margin, self.rr_weight = beta, rr_margin, rr_weight
        self.relabel_margin, self.relabel_epoch = relabel_margin, relabel_epoch
        self.relabel_scope, self.relabel_enabled = relabel_scope, relabel
        self.warmup_epochs = warmup_epochs
        self.dropout = nn.Dropout(dropout)
        self.importance = nn.Sequential(nn.Linear(num_features, 1), nn.Sigmoid())

    def forward_heads(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.dropout(self.features(images))
        return self.classifier(feats), in_fp32(self.importance, feats).squeeze(1)

    def loss(self, batch: Batch, labels: LabelStore) -> StepOutput:
        logits, alpha = self.forward_heads(batch.images)
        logits, alpha = logits.float(), alpha.float()
        if batch.epoch < self.warmup_epochs:
            loss = F.cross_entropy(logits, batch.labels)
            return StepOutput(loss=loss, logits=logits, weights=alpha, logs={"ce": loss.detach()})
        weighted = alpha[:, None] * logits
        wce = F.cross_entropy(weighted, batch.labels)
        rr, low = rank_regularization(alpha, self.beta, self.rr_margin)
        if self.relabel_enabled and batch.epoch + 1 >= self.relabel_epoch:
            with torch.no_grad():
                contradicted, proposal = relabel_candidates(
                    weighted, batch.labels, self.relabel_margin
                )
                if self.relabel_scope == "low":
                    contradicted = contradicted & low
                labels.relabel(batch.index, proposal, contradicted)
        loss = wce + self.rr_weight * rr
        return StepOutput(
            loss=loss, logits=logits, weights=alpha, logs={"wce": wce.detach(), "rr": rr.detach()}
        )

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_heads(images)[0]
