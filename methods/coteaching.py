"""Co-teaching (Han et al., "Co-teaching: Robust Training of Deep Neural Networks with Extremely
Noisy Labels", NeurIPS 2018; official code bhanML/Co-teaching, ``main.py`` and ``loss.py``).

What the paper says
    Two networks f and g with the same architecture and independent initialisations are trained
    together. On every mini-batch D each network ranks the samples by its own cross-entropy and
    keeps the R(T) share with the smallest loss: D_f = argmin_{D': |D'| >= R(T)|D|} l(f, D'),
    D_g likewise. Each network is then updated on the samples its PEER kept (cross update):
    w_f <- w_f - lr * grad l(f, D_g) and w_g <- w_g - lr * grad l(g, D_f). Small-loss samples are
    likely clean because deep networks fit clean labels before noisy ones; two networks filter
    different errors, so the cross update keeps one network's selection bias from reinforcing
    itself. At the end of epoch T the kept share becomes

        R(T) = 1 - min(T / T_k * tau, tau),

    so the first epoch keeps everything (R = 1), the forget rate then grows linearly over T_k
    epochs and stays at tau. With ``e`` our 0-based epoch (the number of epochs finished),
    epoch ``e`` keeps 1 - tau * min(e / T_k, 1). The paper sets T_k = 10 and tau = epsilon, the
    noise rate, which it assumes known; its study of R(T) also varies tau, T_k and an exponent
    c with R(T) = 1 - tau * min(T^c / T_k, 1), c in {0.5, 1, 2} (c = 1 in every main result).

Options and where their defaults come from
    ``forget_rate`` (tau): None (default) takes ``info.noise_rate``, the realised share of
        flipped training labels, as the paper does when it sets tau = epsilon and as the official
        code does when ``--forget_rate`` is not given. This is oracle knowledge. For real and
        annotator noise (FERPlus) it is the realised disagreement with the dataset's clean
        (majority) labels, e.g. about 0.32 for FER2013's labels: a rate a user of real noisy
        data would not know, so such rows read as Co-teaching with a perfect rate estimate; set
        ``forget_rate`` explicitly to study an estimated one. A dataset without clean labels
        beside its noisy ones has rate 0, and Co-teaching then keeps every sample.
    ``num_gradual`` (T_k) = 10: paper and official code.
    ``exponent`` (c) = 1: paper (main results) and official code.
    ``schedule``: how the epoch maps to the forget rate.
        ``"paper"`` (default): epoch e forgets tau * min(e^c / T_k, 1), R updated after each
            epoch as in Algorithm 1, so the first epoch keeps all samples.
        ``"official"``: ``main.py`` builds ``rate_schedule[:T_k] = linspace(0, tau**c, T_k)``
            (then tau) and trains epochs 1, 2, ... (its epoch 0 only evaluates the random
            networks), so our epoch e forgets tau**c * (e + 1) / (T_k - 1) while e + 1 < T_k and
            tau after: the first epoch already drops tau / (T_k - 1), tau is reached at
            e = T_k - 2 (the paper: e = T_k), and the exponent moves the end of the ramp
            (tau**c, then a jump to tau) instead of bending it.
    ``loss_scale``: ``"mean"`` (default; paper: the loss l(f, D_g) on the kept samples, their
        mean CE) or ``"official"``: ``loss.py`` divides that mean by the kept count once more.
        Under Adam this mostly rescales the gradient, which Adam undoes, but it makes the
        recipe's weight decay (coupled L2) relatively stronger by that count.
    ``predict_with``: ``"first"`` (default) predicts with network f alone; ``"mean"`` averages
        both networks' softmaxes (an ensemble that neither the paper nor the official code
        reports). The official ``main.py`` evaluates both networks separately and the plotting
        script behind the paper averages their two accuracies (``mean_last``); one network's
        accuracy is that average in expectation, the two being exchangeable.

Kept count
    ``int(R * B)`` as in ``loss.py``, rounded down, but with 1e-9 added first so that float
    error does not drop a sample (forget rate 0.8 keeps 2 of 10: (1 - 0.8) * 10 is
    1.9999999999999996, which the official ``int`` makes 1), and at least one sample. It is a
    Python int from the epoch and the batch size, so the selection (``topk`` of the losses) never
    waits on the device.

Differences from the official code that are not options
    * The recipe is shared (``SCN_RECIPE``: Adam lr 1e-3, weight decay 1e-4, ExponentialLR 0.9,
      augmentation) so methods differ only in the method; the official code uses Adam lr 1e-3
      without weight decay, 200 epochs, a linear lr decay to 0 from epoch 80 with beta1 changed
      from 0.9 to 0.1, batch 128, no augmentation, and a 9-layer CNN.
    * One optimizer trains both networks on the sum of their losses: their parameters are
      disjoint and Adam/SGD act per parameter, so this equals the official two optimizers.
    * ``--compile`` compiles the first network's backbone only (the trainer compiles
      ``backbone``); the peer runs eager.

Per-sample weights
    Whether network f kept the sample (1.0) or not (0.0), i.e. the selection that updates g
    (``weight_name = "kept"``): its AUC against the clean/flipped split is the official
    "pure ratio" seen as a ranking.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fer_bench.method import SCN_RECIPE, Batch, DataInfo, LabelStore, Method, StepOutput
from fer_bench.options import OneOf, Range
from fer_bench.registry import register_method


def forget_rate_at(
    epoch: int, tau: float, num_gradual: int, exponent: float, schedule: str
) -> float:
    """Share of each batch dropped at 0-based ``epoch`` (1 - R(T))."""
    if schedule == "official":
        # rate_schedule[:T_k] = linspace(0, tau**c, T_k), tau after; official epoch = e + 1.
        step = epoch + 1
        if step >= num_gradual:
            return tau
        return tau**exponent * step / (num_gradual - 1)
    return tau * min(epoch**exponent / num_gradual, 1.0)


def num_kept(batch_size: int, forget_rate: float) -> int:
    """``int((1 - forget_rate) * batch_size)`` as in the official loss, at least one."""
    return max(int((1.0 - forget_rate) * batch_size + 1e-9), 1)


def small_loss_mask(losses: torch.Tensor, keep: int) -> torch.Tensor:
    """Boolean mask of the ``keep`` smallest ``losses``, selected on the device."""
    mask = torch.zeros_like(losses, dtype=torch.bool)
    return mask.scatter(0, torch.topk(losses, keep, largest=False).indices, True)


@register_method("coteaching")
class CoTeaching(Method):
    """Co-teaching (NeurIPS 2018): two networks, each updated on its peer's small-loss samples."""

    recipe = SCN_RECIPE
    weight_name = "kept"
    compute_note = "two networks: about twice CE's compute per step"
    checks = {
        "forget_rate": Range(0, 1, high_open=True),
        "num_gradual": Range(1),
        "exponent": Range(0, low_open=True),
        "schedule": OneOf(("paper", "official")),
        "loss_scale": OneOf(("mean", "official")),
        "predict_with": OneOf(("first", "mean")),
    }

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        info: DataInfo,
        *,
        forget_rate: float | None = None,
        num_gradual: int = 10,
        exponent: float = 1.0,
        schedule: str = "paper",
        loss_scale: str = "mean",
        predict_with: str = "first",
    ) -> None:
        super().__init__(backbone, num_features, info)
        self.tau = float(info.noise_rate if forget_rate is None else forget_rate)
        self.num_gradual, self.exponent, self.schedule = num_gradual, exponent, schedule
        self.loss_scale, self.predict_with = loss_scale, predict_with
        self.peer = self.new_network()

    def forget_rate(self, epoch: int) -> float:
        return forget_rate_at(epoch, self.tau, self.num_gradual, self.exponent, self.schedule)

    def loss(self, batch: Batch, labels: LabelStore) -> StepOutput:
        logits1 = self.classifier(self.features(batch.images)).float()
        logits2 = self.peer(batch.images).float()
        ce1 = F.cross_entropy(logits1, batch.labels, reduction="none")
        ce2 = F.cross_entropy(logits2, batch.labels, reduction="none")
        keep = num_kept(len(batch.labels), self.forget_rate(batch.epoch))
        with torch.no_grad():
            kept1 = small_loss_mask(ce1.detach(), keep)  # f's small-loss samples: update g
            kept2 = small_loss_mask(ce2.detach(), keep)  # g's small-loss samples: update f
        scale = keep * keep if self.loss_scale == "official" else keep
        loss1 = (ce1 * kept2).sum() / scale
        loss2 = (ce2 * kept1).sum() / scale
        logs = {
            "loss_first": loss1.detach(),
            "loss_peer": loss2.detach(),
            "kept_share": logits1.new_full((), keep / len(batch.labels)),
        }
        return StepOutput(
            loss=loss1 + loss2,
            logits=self._combine(logits1, logits2),
            weights=kept1.float(),
            logs=logs,
        )

    def _combine(self, logits1: torch.Tensor, logits2: torch.Tensor) -> torch.Tensor:
        if self.predict_with == "first":
            return logits1
        # log of the mean softmax: the trainer's softmax of it is the mean of the two.
        probs = (logits1.float().softmax(1) + logits2.float().softmax(1)) / 2
        return probs.log()

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        logits1 = self.classifier(self.features(images))
        if self.predict_with == "first":
            return logits1
        return self._combine(logits1, self.peer(images))
