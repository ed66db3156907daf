"""CE + auxiliary tasks: the cross-entropy baseline plus exactly MTAC-style's action-unit and
valence-arousal auxiliary tasks, and nothing else. The fair control for ``mtac``.

Why it exists
    On the synthetic set MTAC-style's whole gain over CE came from its auxiliary tasks (README,
    ablation at 30 % noise: without them MTAC is at CE's level). The synthetic faces, like
    AffectNet's VA and Aff-Wild2's AU annotations, carry AU and VA labels that follow the face,
    not the noised expression label: a clean signal that CE and SCN never see. This method gives
    CE that same signal, so ``mtac`` vs ``ce_aux`` measures MTAC's noise handling (confidence
    weighting, class balancing, relabeling) and ``ce_aux`` vs ``ce`` what the annotations alone
    are worth.

What it computes
    L = CE(logits, y) + ``au_weight`` * AU loss + ``va_weight`` * VA loss, where the AU and VA
    heads, targets and losses are MTAC-style's own, shared from ``fer_bench.methods.mtac``
    (``AuxiliaryTasks``), not copied:
    * AU task: per-AU node embeddings from the pooled features, one graph convolution over the AU
      co-occurrence graph P(AU_j | AU_i) estimated from the training targets (edges below
      ``graph_threshold`` dropped), a logit per AU, masked binary cross-entropy. Targets: the
      dataset's AU labels where it has them (``au_source=auto`` or ``labels``), else the EMFACS
      prototypes of the sample's label (``prior``; e.g. happiness -> AU6 + AU12). With the prior
      the targets follow the (noisy) label, so they add no clean signal.
    * VA task: a ``tanh`` regression head with masked mean-squared error, where the dataset has
      VA labels (masked, never faked, where it has not; off on data without any).
    The CE is the ``ce`` method's, on the same classifier: with ``au_weight=0 va_weight=0`` this
    method is ``ce`` (same parameters, same initialisation, same loss).

Options: MTAC-style's names and defaults for these parts, for a like-for-like control:
``au_weight`` = 0.5, ``au_source`` = ``auto``, ``graph_threshold`` = 0.3, ``va_weight`` = 0.5 (the
MTAC paper gives no values; these are methods/mtac.py's). No confidence weighting, no class
balancing, no relabeling. The recipe is SCN's official one, as for ``ce`` and ``mtac``.
"""

import torch.nn.functional as F
from fer_bench.methods.mtac import AuxiliaryTasks, MultiTaskAssistedCorrection
from torch import nn

from fer_bench.method import SCN_RECIPE, Batch, DataInfo, LabelStore, Method, StepOutput
from fer_bench.registry import register_method

_AUX_OPTIONS = ("au_weight", "au_source", "graph_threshold", "va_weight")


@register_method("ce_aux")
class CrossEntropyWithAuxiliaryTasks(AuxiliaryTasks, Method):
    """CE plus MTAC-style's AU-graph and valence-arousal auxiliary tasks (the control for mtac)."""

    recipe = SCN_RECIPE
    checks = {name: MultiTaskAssistedCorrection.checks[name] for name in _AUX_OPTIONS}

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        info: DataInfo,
        *,
        au_weight: float = 0.5,
        au_source: str = "auto",
        graph_threshold: float = 0.3,
        va_weight: float = 0.5,
    ) -> None:
        super().__init__(backbone, num_features, info)
        self._setup_va_task(info, va_weight)
        self._setup_au_task(info, au_source, au_weight, graph_threshold)

    def loss(self, batch: Batch, labels: LabelStore) -> StepOutput:
        feats = self.features(batch.images)
        logits = self.classifier(feats)
        ce = F.cross_entropy(logits.float(), batch.labels)
        logs = {"ce": ce.detach()}
        loss = self.add_auxiliary_losses(ce, logs, feats.float(), batch)
        return StepOutput(loss=loss, logits=logits, logs=logs)
