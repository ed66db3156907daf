"""SCE — symmetric cross-entropy (Wang et al., "Symmetric Cross Entropy for Robust Learning with
Noisy Labels", ICCV 2019; official Keras code YisenWang/symmetric_cross_entropy_for_noisy_labels,
``loss.py`` and ``train_models.py``).

What the paper says
    The cross-entropy CE = -sum_k q_k log p_k (q the one-hot label, p the softmax) fits clean
    "easy" classes fast but under-learns hard classes and overfits noisy labels. SCE adds the
    reverse cross-entropy, with the roles of label and prediction swapped,

        RCE = -sum_k p_k log q_k,

    where log 0 (every k but the label) is clipped to a constant A < 0, so RCE = -A (1 - p_y): a
    scaled mean absolute error, which is noise-tolerant. The loss is

        L_SL = alpha * CE + beta * RCE,

    each term averaged over the batch; alpha tunes how hard the CE fits, beta how strongly the
    robust term pulls. The paper sets A = -4.

Options and where their defaults come from
    ``alpha`` = 0.1, ``beta`` = 1.0: the paper's and the official script's values for CIFAR-10
        (MNIST: 0.01 / 1.0; CIFAR-100: 6.0 / 0.1). No FER values exist; CIFAR-10's were chosen
        because FER's 7-8 classes are closest to its 10.
    ``A`` = -4: paper.
    ``prob_floor`` = 0: paper (the exact CE, from the log-softmax).

Where the paper and the official code differ (named options, defaulting to the paper)
    * ``A``: the official code never writes log 0; it clips the one-hot label to [1e-4, 1] before
      the log, i.e. A = log(1e-4) = -9.2103, so its RCE is 2.3 times the paper's. Set
      ``A=-9.2103`` to match it (beta then scales the same term as in the official runs).
    * ``prob_floor``: the official CE term clips the softmax to [1e-7, 1] before the log (Keras
      style), so a sample with p_y < 1e-7 adds a constant 16.1 and no gradient. ``prob_floor=1e-7``
      reproduces that (on the log-softmax, clamped at log 1e-7); 0 keeps the exact CE. The RCE
      term uses the unclipped softmax in both.
The recipe is SCN's official one (``SCN_RECIPE``), shared by every method; the official code
trains with SGD (lr 0.1, momentum 0.9) for 120 epochs (CIFAR-10) at batch 128.
"""

import math

import torch
from torch import nn

from fer_bench.method import SCN_RECIPE, Batch, DataInfo, LabelStore, Method, StepOutput
from fer_bench.options import Range
from fer_bench.registry import register_method


def reverse_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, A: float) -> torch.Tensor:
    """Per-sample -sum_k p_k log q_k with one-hot q and log 0 := A, i.e. -A * (1 - p_y)."""
    p_label = logits.softmax(1).gather(1, labels[:, None]).squeeze(1)
    return -A * (1 - p_label)


@register_method("sce")
class SymmetricCrossEntropy(Method):
    """SCE (ICCV 2019): alpha * CE + beta * reverse CE."""

    recipe = SCN_RECIPE
    checks = {
        "alpha": Range(0),
        "beta": Range(0),
        "A": Range(high=0, high_open=True),
        "prob_floor": Range(0, 1, high_open=True),
    }

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        info: DataInfo,
        *,
        alpha: float = 0.1,
        beta: float = 1.0,
        A: float = -4.0,
        prob_floor: float = 0.0,
    ) -> None:
        super().__init__(backbone, num_features, info)
        self.alpha, self.beta, self.A, self.prob_floor = alpha, beta, A, prob_floor

    def loss(self, batch: Batch, labels: LabelStore) -> StepOutput:
        logits = self.predict(batch.images)
        log_p = logits.float().log_softmax(1).gather(1, batch.labels[:, None]).squeeze(1)
        if self.prob_floor > 0:  # the official Keras-style clip (an option, not a tensor value)
            log_p = log_p.clamp(min=math.log(self.prob_floor))
        ce = -log_p.mean()
        rce = reverse_cross_entropy(logits.float(), batch.labels, self.A).mean()
        loss = self.alpha * ce + self.beta * rce
        return StepOutput(loss=loss, logits=logits, logs={"ce": ce.detach(), "rce": rce.detach()})
