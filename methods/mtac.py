"""MTAC-style multi-task assisted correction (after Liu et al., "Uncertain Facial Expression
Recognition via Multi-task Assisted Correction", arXiv 2212.07144, IEEE TMM 2024; predecessor
ULC-AG, arXiv 2204.11053).

No public code exists, so this is an MTAC-*style* implementation. What the paper states, and
what was chosen here where it gives no formula we could verify:

Confidence estimation block (paper: per-sample confidence that highlights solid samples and
    suppresses uncertain ones in every batch). Chosen: an MLP ``feat -> feat/4 -> 1 -> sigmoid``
    whose output c_i scales the logits (as SCN's importance weight does), so an uncertain sample
    gets a flat softmax and a small gradient.
Weighted regularization module (paper: emphasises confident samples and counters category
    imbalance inside each batch). Chosen: (a) per-sample cross-entropy weights proportional to
    1 / (count of the sample's class in the batch), normalised to sum to one, so every class
    present weighs the same (``class_balance``); (b) a rank margin on the confidences, the top
    ``beta`` share must exceed the rest by ``conf_margin`` on average, so confidences stay spread.
AU auxiliary task over a data-driven AU graph (paper: AU detection learns semantic
    distributions from a data-driven AU graph). Chosen: per-AU node embeddings from the
    features, one graph-convolution step over the AU co-occurrence graph P(AU_j | AU_i)
    estimated from the training targets (edges below ``graph_threshold`` dropped, self-loops
    added, rows normalised), then a per-AU logit trained with masked binary cross-entropy.
    Targets: the dataset's AU labels where it has them (unknown entries masked); otherwise the
    EMFACS prototypes of the sample's current label (``EMOTION_AUS`` below), the prior
    emotion -> AU relation.
Valence-arousal auxiliary task (paper: VA regression mitigates category imbalance through the
    dependency between discrete and continuous emotion). Chosen: a ``tanh`` head with masked
    mean-squared error, used where the dataset has VA labels and switched off (masked, not
    faked) where it has none.
Relabeling guided by feature-level similarity (paper). Chosen: class prototypes are
    exponential moving averages of the normalised features of confident samples (top ``beta``
    share of the batch whose prediction agrees with their label). From ``relabel_epoch``
    (1-based) on, an uncertain sample (the rest of the batch) is relabeled to class k when its
    cosine similarity to prototype k beats that to its current label's prototype by more than
    ``relabel_margin`` and the classifier's argmax is k too.

Every auxiliary part switches off by option (``au_weight=0``, ``va_weight=0``, ``relabel=false``,
``class_balance=false``, ``conf_weight=0``), so the paper's ablations are one flag away. The
recipe is SCN's official one, so CE, SCN and MTAC differ only in the method.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fer_bench.errors import FerBenchError
from fer_bench.losses import class_balanced_weights, masked_bce, masked_mse, rank_regularization
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

#: EMFACS prototypes (Friesen & Ekman): the action units of each basic emotion.
EMOTION_AUS: dict[str, tuple[int, ...]] = {
    "happiness": (6, 12),
    "sadness": (1, 4, 15),
    "surprise": (1, 2, 5, 26),
    "fear": (1, 2, 4, 5, 7, 20, 26),
    "anger": (4, 5, 7, 23),
    "disgust": (9, 15, 16),
    "contempt": (12, 14),
    "neutral": (),
}
PRIOR_AUS = sorted({au for aus in EMOTION_AUS.values() for au in aus})


def prior_au_matrix(class_names: list[str], au_numbers: list[int]) -> torch.Tensor:
    """(C, A) 0/1 matrix: which AUs each class's EMFACS prototype activates."""
    out = torch.zeros(len(class_names), len(au_numbers))
    for c, name in enumerate(class_names):
        for au in EMOTION_AUS.get(name, ()):
            if au in au_numbers:
                out[c, au_numbers.index(au)] = 1.0
    return out


def cooccurrence_graph(targets: torch.Tensor, threshold: float) -> torch.Tensor:
    """Row-normalised adjacency from P(AU_j | AU_i) over targets ``(N, A)`` (NaN = unknown)."""
    known = ~torch.isnan(targets)
    t = torch.nan_to_num(targets, nan=0.0).double()
    both_known = (known.double().T @ known.double()).clamp(min=1)
    joint = (t.T @ t) / both_known
    marginal = joint.diag().clamp(min=1e-8)
    conditional = joint / marginal[:, None]
    adj = (conditional >= threshold).double() * conditional
    adj.fill_diagonal_(1.0)
    return (adj / adj.sum(1, keepdim=True)).float()


class AUGraphHead(nn.Module):
    """AU logits from features, refined by one graph convolution over the AU graph."""

    def __init__(self, num_features: int, adjacency: torch.Tensor, dim: int = 32) -> None:
        super().__init__()
        self.num_aus = adjacency.shape[0]
        self.dim = dim
        self.register_buffer("adjacency", adjacency)
        self.nodes = nn.Linear(num_features, self.num_aus * dim)
        self.propagate = nn.Linear(dim, dim)
        self.score = nn.Parameter(torch.randn(self.num_aus, dim) * dim**-0.5)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        h = self.nodes(feats).view(-1, self.num_aus, self.dim)
        h = F.relu(self.propagate(torch.einsum("ij,bjd->bid", self.adjacency.to(h.dtype), h))) + h
        return (h * self.score.to(h.dtype)).sum(-1)


class AuxiliaryTasks:
    """MTAC's auxiliary tasks, mixed into a :class:`Method`: the AU task over the AU graph and the
    valence-arousal regression, with their heads and losses. ``mtac`` and its control ``ce_aux``
    (CE plus exactly these tasks) share them from here."""

    def _setup_va_task(self, info: DataInfo, weight: float) -> None:
        self.va_weight = weight if info.has_valence_arousal else 0.0
        self.va_head = nn.Linear(self.num_features, 2) if self.va_weight > 0 else None

    def _setup_au_task(self, info: DataInfo, source: str, weight: float, threshold: float) -> None:
        has_labels = info.train_action_units is not None and info.au_names
        use_labels = source == "labels" or (source == "auto" and has_labels)
        if use_labels and not has_labels:
            name = getattr(type(self), "registry_name", type(self).__name__)
            raise FerBenchError(f"{name} au_source=labels, but this dataset has no AU labels")
        self.au_from_labels = bool(use_labels)
        self.au_weight = weight
        if weight <= 0:
            self.au_head = None
            return
        if use_labels:
            targets = info.train_action_units.float()
        else:
            known = [n for n in info.class_names if n in EMOTION_AUS]
            if not known:
                self.au_weight, self.au_head = 0.0, None  # no prior for these classes
                return
            prior = prior_au_matrix(info.class_names, PRIOR_AUS)
            self.register_buffer("au_prior", prior)
            targets = prior[info.train_labels]
        self.au_head = AUGraphHead(self.num_features, cooccurrence_graph(targets, threshold))

    def add_auxiliary_losses(
        self, loss: torch.Tensor, logs: dict[str, torch.Tensor], feats: torch.Tensor, batch: Batch
    ) -> torch.Tensor:
        """``loss`` plus the weighted AU and VA losses on fp32 ``feats``, added in that order;
        their values go to ``logs`` as ``au`` and ``va``."""
        if self.au_head is not None:
            au_logits = self.au_head(feats).float()
            if self.au_from_labels:
                au_targets = batch.action_units.float()
            else:
                au_targets = self.au_prior[batch.labels]
            au = masked_bce(au_logits, au_targets)
            loss = loss + self.au_weight * au
            logs["au"] = au.detach()
        if self.va_head is not None and batch.valence_arousal is not None:
            va = masked_mse(torch.tanh(self.va_head(feats).float()), batch.valence_arousal.float())
            loss = loss + self.va_weight * va
            logs["va"] = va.detach()
        return loss


@register_method("mtac")
class MultiTaskAssistedCorrection(AuxiliaryTasks, Method):
    """MTAC-style: confidence weighting, AU-graph and VA auxiliary tasks, prototype relabeling."""

    recipe = SCN_RECIPE
    weight_name = "confidence"
    relabels = True
    checks = {
        "beta": Range(0, 1, low_open=True, high_open=True),
        "conf_margin": Range(0),
        "conf_weight": Range(0),
        "au_weight": Range(0),
        "au_source": OneOf(("auto", "labels", "prior")),
        "graph_threshold": Range(0, 1),
        "va_weight": Range(0),
        "relabel_epoch": Range(1),  # 1-based
        "relabel_margin": Range(0, 2),  # a difference of cosine similarities
        "prototype_momentum": Range(0, 1),
        "warmup_epochs": Range(0),
    }

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        info: DataInfo,
        *,
        beta: float = 0.7,
        conf_margin: float = 0.15,
        conf_weight: float = 1.0,
        class_balance: bool = True,
        au_weight: float = 0.5,
        au_source: str = "auto",
        graph_threshold: float = 0.3,
        va_weight: float = 0.5,
        relabel: bool = True,
        relabel_epoch: int = 10,
        relabel_margin: float = 0.1,
        prototype_momentum: float = 0.9,
        warmup_epochs: int = 0,
    ) -> None:
        super().__init__(backbone, num_features, info)
        self.beta, self.conf_margin, self.conf_weight = beta, conf_margin, conf_weight
        self.class_balance = class_balance
        self.relabel_enabled, self.relabel_epoch = relabel, relabel_epoch
        self.relabel_margin, self.momentum = relabel_margin, prototype_momentum
        self.warmup_epochs = warmup_epochs
        c = info.num_classes
        hidden = max(num_features // 4, 8)
        self.confidence = nn.Sequential(
            nn.Linear(num_features, hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Sigmoid()
        )
        self._setup_va_task(info, va_weight)
        self.register_buffer("prototypes", torch.zeros(c, num_features))
        self.register_buffer("prototype_seen", torch.zeros(c, dtype=torch.bool))
        self._setup_au_task(info, au_source, au_weight, graph_threshold)

    def heads(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.features(images)
        return feats, self.classifier(feats), in_fp32(self.confidence, feats).squeeze(1)

    def _update_prototypes(
        self, feats: torch.Tensor, labels: torch.Tensor, solid: torch.Tensor
    ) -> None:
        onehot = F.one_hot(labels, self.num_classes).float() * solid[:, None].float()
        counts = onehot.sum(0)
        means = F.normalize(onehot.T @ F.normalize(feats, dim=1), dim=1)
        present = counts > 0
        blended = torch.where(
            self.prototype_seen[:, None],
            self.momentum * self.prototypes + (1 - self.momentum) * means,
            means,
        )
        self.prototypes.copy_(
            torch.where(present[:, None], F.normalize(blended, dim=1), self.prototypes)
        )
        self.prototype_seen.logical_or_(present)

    def _relabel(
        self,
        batch: Batch,
        feats: torch.Tensor,
        logits: torch.Tensor,
        uncertain: torch.Tensor,
        labels: LabelStore,
    ) -> None:
        sims = F.normalize(feats, dim=1) @ self.prototypes.T  # (B, C) cosine similarities
        sims = sims.masked_fill(~self.prototype_seen[None, :], -2.0)
        best_sim, best = sims.max(1)
        own_sim = sims.gather(1, batch.labels[:, None]).squeeze(1)
        agree = logits.argmax(1) == best
        move = (
            uncertain & agree & (best != batch.labels) & (best_sim - own_sim > self.relabel_margin)
        )
        labels.relabel(batch.index, best, move)

    def loss(self, batch: Batch, labels: LabelStore) -> StepOutput:
        feats, logits, conf = self.heads(batch.images)
        feats, logits, conf = feats.float(), logits.float(), conf.float()
        warm = batch.epoch < self.warmup_epochs
        scaled = logits if warm else conf[:, None] * logits
        per_sample = F.cross_entropy(scaled, batch.labels, reduction="none")
        if self.class_balance:
            cls = (per_sample * class_balanced_weights(batch.labels, self.num_classes)).sum()
        else:
            cls = per_sample.mean()
        logs = {"cls": cls.detach()}
        loss = cls
        # The same top-beta / rest split and margin as SCN's rank regularization.
        reg, uncertain = rank_regularization(conf, self.beta, self.conf_margin)
        solid = ~uncertain
        if not warm and self.conf_weight > 0:
            loss = loss + self.conf_weight * reg
            logs["conf_reg"] = reg.detach()
        loss = self.add_auxiliary_losses(loss, logs, feats, batch)
        # Prototype similarities in fp32: under bf16 autocast they would carry ~3 digits against
        # a relabel margin of 0.1.
        with torch.no_grad(), torch.autocast(feats.device.type, enabled=False):
            agrees = logits.argmax(1) == batch.labels
            self._update_prototypes(feats, batch.labels, solid & agrees)
            if self.relabel_enabled and not warm and batch.epoch + 1 >= self.relabel_epoch:
                self._relabel(batch, feats, logits, uncertain, labels)
        return StepOutput(loss=loss, logits=logits, weights=conf, logs=logs)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.heads(images)[1]
