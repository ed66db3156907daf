"""GCE — generalized cross-entropy (Zhang & Sabuncu, "Generalized Cross Entropy Loss for Training
Deep Neural Networks with Noisy Labels", NeurIPS 2018).

What the paper says
    Replace the cross-entropy -log p_y of the softmax p by the negative Box-Cox transform

        L_q(f(x), e_y) = (1 - p_y^q) / q,        0 < q <= 1.

    Its gradient is p_y^q times the cross-entropy's: samples the model finds unlikely (often the
    mislabeled ones) are down-weighted by p_y^q instead of up-weighted by 1 / p_y. q -> 0 gives
    the cross-entropy back (by L'Hopital), q = 1 gives 1 - p_y, half the mean absolute error
    sum_k |p_k - e_k| = 2 (1 - p_y), which is noise-robust but fits slowly; q trades the two. The
    batch loss is the mean over the batch.

Options and where their defaults come from
    ``q`` = 0.7: the paper's value in all its CIFAR-10/100 and Fashion-MNIST experiments.

Official code: the authors released none. The symmetric cross-entropy authors' Keras code
(YisenWang/symmetric_cross_entropy_for_noisy_labels, ``loss.py``) implements it the same way, with
q = 0.7, so there is no paper-vs-code difference to expose. The loss is computed as
``-expm1(q log p_y) / q`` (fer_bench.losses.generalized_cross_entropy): the same value, finite
where p_y underflows to 0, accurate for small q.

Left out: the paper's truncated loss L_trunc (L_q capped at L_q(k), k = 0.5, trained by
alternating pruning passes: every so many epochs, samples with p_y <= k get weight 0). It needs
no host sync (a per-sample 0/1 buffer refreshed in ``before_epoch`` with ``train.scan``), but its
pruning schedule is in absolute epochs of a 120-epoch CIFAR run (from epoch 40, every 10 epochs,
as third-party reimplementations read the paper; no official code pins it), so it would never
prune in a 12-epoch run, and it would more than double this file.

The recipe is SCN's official one (``SCN_RECIPE``), shared by every method, not the paper's (SGD
on a ResNet-34 for CIFAR).
"""

from torch import nn

from fer_bench.losses import generalized_cross_entropy
from fer_bench.method import SCN_RECIPE, Batch, DataInfo, LabelStore, Method, StepOutput
from fer_bench.options import Range
from fer_bench.registry import register_method


@register_method("gce")
class GeneralizedCrossEntropy(Method):
    """GCE (NeurIPS 2018): the loss (1 - p_y^q) / q."""

    recipe = SCN_RECIPE
    checks = {"q": Range(0, 1, low_open=True)}

    def __init__(
        self, backbone: nn.Module, num_features: int, info: DataInfo, *, q: float = 0.7
    ) -> None:
        super().__init__(backbone, num_features, info)
        self.q = q

    def loss(self, batch: Batch, labels: LabelStore) -> StepOutput:
        logits = self.predict(batch.images)
        loss = generalized_cross_entropy(logits.float(), batch.labels, self.q).mean()
        return StepOutput(loss=loss, logits=logits)
