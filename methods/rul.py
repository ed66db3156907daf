"""RUL — Relative Uncertainty Learning (Zhang, Wang, Deng, "Relative Uncertainty Learning for
Facial Expression Recognition", NeurIPS 2021; official code
zyh-uaiaaaa/Relative-Uncertainty-Learning, ``src/rul.py``, ``src/utils.py``, ``src/main.py``).

What the paper says
    Uncertainty is treated as relative, not as a Gaussian per sample: an extra branch predicts
    a value for every face, and two faces of a batch are mixed in feature space with weights
    given by their two values, so only their ratio matters. The mixed feature is classified and
    trained with the "add-up" loss, the cross-entropy of the mixed feature against *both*
    labels. A face whose label the classifier cannot fit (ambiguous or mislabelled) raises both
    terms when it dominates the mixture, so the loss is lowest when the easier face of the pair
    takes the larger share: the branch learns which of two faces is more uncertain, without any
    uncertainty label. At test time only the classifier on the (unmixed) features is used.

The official code, step by step (what is implemented here)
    * Heads (``rul.py``, after DUL's ``mu`` / ``log_var`` heads): two heads of the same form on
      the backbone's last 7 x 7 map: BatchNorm2d(C, affine=False, eps 2e-5) -> Dropout(0.4) ->
      Flatten -> Linear(C*7*7, 64) -> BatchNorm1d(64, eps 2e-5). The first gives the 64-d
      embedding e that the classifier Linear(64, classes) reads (train and test); the second
      gives s, and the branch's value is a_i = mean_d exp(s_i,d) (positive).
    * Pairs (``utils.mixup_data``): the batch is paired with a random permutation of itself
      (``torch.randperm``: a sample may meet itself, then it is unmixed).
    * Mixing weights: lambda_i = a_i / (a_i + a_j) for sample i and its partner j, and
      1 - lambda_i = a_j / (a_i + a_j); mixed feature m_i = lambda_i e_i + (1 - lambda_i) e_j.
      No sigmoid or softmax: a plain ratio of the two positive values, with gradients into both.
      A sample's own value sets its own share, so under the add-up loss a grows with how well
      the sample's label can be fitted: a high a is low relative uncertainty (an uncertainty
      sigma = 1/a gives the same weights as lambda_i = sigma_j / (sigma_i + sigma_j)).
    * Add-up loss (``utils.mixup_criterion``): 1/2 CE(W m_i, y_i) + 1/2 CE(W m_i, y_j), averaged
      over the batch: equal weights for the two labels, *not* mixup's lambda-weighted loss. The
      classifier sees only mixed features during training; there is no plain CE term.
    * Test: the classifier on the embedding of the unmixed image (``phase='test'``), with
      batch norm's running statistics and no dropout.

Options (the paper and the official code agree on the loss and the mixing, as far as the
paper's text goes; the layer-level head architecture is the official code's)
  * ``head_input``: ``"map"`` (default; official): the heads flatten the spatial feature map,
    adaptively average-pooled to ``map_size`` x ``map_size`` first (``map_size`` = 7: the
    official ResNet-18 map at 224 x 224 input, where the pooling is the identity; at smaller
    inputs the map is upsampled to 7 x 7 so the heads keep the official shape). ``"pooled"``:
    the same heads on the globally pooled features (BatchNorm1d without affine in place of
    the BatchNorm2d), like every other method's classifier; not in the paper or the code.
  * ``embedding_dim`` = 64 (official ``--out_dimension``), ``dropout`` = 0.4 (official
    ``drop_rate``).
  * ``addup_weights``: ``"equal"`` (default; the add-up loss of the paper and the official
    code) or ``"mixing"`` (lambda_i CE(y_i) + (1 - lambda_i) CE(y_j), standard mixup's loss;
    in neither, for studying what the equal weights do).
Per-sample weights (``weight_name = "certainty"``): a_i, the branch's value for the sample (high
= the add-up loss trusts it); the trainer reports its AUC against the clean/flipped split.

Recipe: the shared ``SCN_RECIPE``, so that methods differ only in the method. The official
augmentation is the same (one of {flip, Gaussian noise of variance 30} with p = 0.5, then
RandomErasing(0.02-0.25)), and so are batch 64, weight decay 1e-4 and ExponentialLR 0.9. It
differs in: ResNet-18 pre-trained on MS-Celeb-1M (``--pretrained``; the official loader uses
``strict=False`` and so ignores weights that do not fit, which ours refuses), Adam at lr 2e-4
for the backbone and heads and 2e-3 (10x) for the classifier (the trainer has one learning
rate: not reproduced), 60 epochs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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

BN_EPS = 2e-5  # official heads (after DUL)


def embedding_head(
    num_features: int, dim: int, dropout: float, head_input: str, map_size: int
) -> nn.Sequential:
    """The official ``mu`` / ``log_var`` head: normalise, drop, flatten, project, normalise."""
    if head_input == "map":
        return nn.Sequential(
            nn.AdaptiveAvgPool2d(map_size),
            nn.BatchNorm2d(num_features, eps=BN_EPS, affine=False),
            nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(num_features * map_size * map_size, dim),
            nn.BatchNorm1d(dim, eps=BN_EPS),
        )
    return nn.Sequential(
        nn.BatchNorm1d(num_features, eps=BN_EPS, affine=False),
        nn.Dropout(dropout),
        nn.Linear(num_features, dim),
        nn.BatchNorm1d(dim, eps=BN_EPS),
    )


def branch_value(s: torch.Tensor) -> torch.Tensor:
    """a_i = mean_d exp(s_i,d): the official ``logvar.exp().mean(dim=1)``, ``(B,)`` in fp32."""
    return s.float().exp().mean(1)


def relative_mix(
    embeddings: torch.Tensor, values: torch.Tensor, partner: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixed features m_i = lambda_i e_i + (1 - lambda_i) e_partner(i) and lambda_i =
    a_i / (a_i + a_partner(i)), in fp32."""
    e, a = embeddings.float(), values.float()
    share = a / (a + a[partner])
    mixed = share[:, None] * e + (1 - share)[:, None] * e[partner]
    return mixed, share


def addup_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    partner_labels: torch.Tensor,
    share: torch.Tensor,
    weights: str = "equal",
) -> torch.Tensor:
    """The add-up loss on the mixed features' ``logits``: the batch mean of 1/2 CE(y_i) + 1/2
    CE(y_j) (``"equal"``), or of lambda_i CE(y_i) + (1 - lambda_i) CE(y_j) (``"mixing"``)."""
    logits = logits.float()
    ce_own = F.cross_entropy(logits, labels, reduction="none")
    ce_partner = F.cross_entropy(logits, partner_labels, reduction="none")
    if weights == "mixing":
        return (share * ce_own + (1 - share) * ce_partner).mean()
    return (0.5 * ce_own + 0.5 * ce_partner).mean()


@register_method("rul")
class RelativeUncertaintyLearning(Method):
    """RUL (NeurIPS 2021): features of pairs mixed by relative uncertainty, add-up loss."""

    recipe = SCN_RECIPE
    weight_name = "certainty"
    checks = {
        "embedding_dim": Range(1),
        "dropout": Range(0, 1, high_open=True),
        "head_input": OneOf(("map", "pooled")),  # official code, ours
        "map_size": Range(1),
        "addup_weights": OneOf(("equal", "mixing")),  # paper and official code, mixup's
    }

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        info: DataInfo,
        *,
        embedding_dim: int = 64,
        dropout: float = 0.4,
        head_input: str = "map",
        map_size: int = 7,
        addup_weights: str = "equal",
    ) -> None:
        super().__init__(backbone, num_features, info)
        self.head_input, self.addup_weights = head_input, addup_weights
        args = (num_features, embedding_dim, dropout, head_input, map_size)
        self.embedding = embedding_head(*args)
        self.log_var = embedding_head(*args)
        # The classifier reads the embedding, not the pooled features.
        self.classifier = nn.Linear(embedding_dim, info.num_classes)

    def head_input_of(self, images: torch.Tensor) -> torch.Tensor:
        if self.head_input == "map":
            return self.feature_maps(images)
        return self.features(images)

    def partners(self, n: int, device: torch.device) -> torch.Tensor:
        """Each sample's partner: a random permutation of the batch (the official pairing)."""
        return torch.randperm(n, device=device)

    def loss(self, batch: Batch, labels: LabelStore) -> StepOutput:
        x = self.head_input_of(batch.images)
        embeddings = self.embedding(x)
        values = branch_value(in_fp32(self.log_var, x))
        partner = self.partners(len(batch.labels), batch.labels.device)
        mixed, share = relative_mix(embeddings, values, partner)
        with torch.autocast(mixed.device.type, enabled=False):
            mixed_logits = self.classifier(mixed)
        loss = addup_loss(
            mixed_logits, batch.labels, batch.labels[partner], share, self.addup_weights
        )
        with torch.no_grad():  # the unmixed scores, for the trainer's diagnostics only
            logits = self.classifier(embeddings)
        return StepOutput(loss=loss, logits=logits, weights=values, logs={"addup": loss.detach()})

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embedding(self.head_input_of(images)))
