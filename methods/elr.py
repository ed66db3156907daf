"""ELR — early-learning regularization (Liu et al., "Early-Learning Regularization Prevents
Memorization of Noisy Labels", NeurIPS 2020; official code shengliu66/ELR, ``ELR/model/loss.py``
and ``ELR/config_cifar10.json`` / ``config_cifar100.json``).

What the paper says
    Early in training a network predicts the true class of most mislabeled samples (early
    learning); later it memorises their wrong labels. ELR keeps each sample's early predictions as
    a target and pulls the model towards them. Per sample i, a target t_i (a distribution over the
    classes, initially 0) is a temporal ensemble of the model's softmax p_i:

        t_i <- beta * t_i + (1 - beta) * p_i         (each time sample i is in a batch)

    and the loss is

        L = CE(p, y) + lambda * mean_i log(1 - <p_i, t_i>).

    t_i carries no gradient. The regularizer's gradient with respect to logit k is
    lambda * p_ik (<p_i, t_i> - t_ik) / (1 - <p_i, t_i>): it moves p_i towards t_i, and where the
    target (the early prediction) disagrees with a wrong label it counteracts the cross-entropy's
    pull p_i - e_y, so the wrong label is not memorised.

What the official code does (ELR/model/loss.py), and how it is done here
    * The softmax is clamped to [1e-4, 1 - 1e-4]. The target is updated with the clamped softmax
      renormalised to sum to one; the regularizer uses the clamped softmax as is, with the target
      just updated (this step's prediction included). The paper gives no clamp, and without one
      <p_i, t_i> reaches 1 in fp32 once both saturate on one class and log(0) stops training; it
      is a numerical guard rather than a difference of method, so the official value is the
      default (``prob_clamp``; 0 gives the bare formula).
    * The target update writes ``target[index]``; a sample drawn twice in one batch (balanced
      sampling draws with replacement) would make that write depend on the order the device lands
      it. Here every occurrence takes the update of its last occurrence, so all of them write the
      same value, as LabelStore.relabel does. The targets are a registered buffer ``(num_train, C)``
      indexed by ``batch.index``: checkpoints carry them and a resumed run is exact.
    Otherwise the official code and the paper agree.

Options and where their defaults come from
    ``beta`` = 0.7, ``lam`` (lambda) = 3: the paper's and the official config's values for
        CIFAR-10 with symmetric noise (CIFAR-100: 0.9 / 7; the official CIFAR-10 asymmetric config:
        0.9 / 1). No FER values exist; CIFAR-10's were chosen because FER's 7-8 classes are
        closest to its 10.
    ``prob_clamp`` = 1e-4: official code (see above).

Left out: ELR+ (the repository's ``ELR_plus``), a different method: two networks with weight
averaging, mixup and co-training targets. The recipe is SCN's official one (``SCN_RECIPE``),
shared by every method; the official ELR code trains a ResNet-34 with SGD (lr 0.02, momentum 0.9,
weight decay 1e-3) for 150 epochs at batch 128 (cosine annealing with warm restarts on CIFAR-10).
"""

import torch
import torch.nn.functional as F
from torch import nn

from fer_bench.method import SCN_RECIPE, Batch, DataInfo, LabelStore, Method, StepOutput
from fer_bench.options import Range
from fer_bench.registry import register_method


@register_method("elr")
class EarlyLearningRegularization(Method):
    """ELR (NeurIPS 2020): CE + lambda * mean log(1 - <p, t>), t a running mean of p per sample."""

    recipe = SCN_RECIPE
    checks = {
        "beta": Range(0, 1, high_open=True),
        "lam": Range(0),
        "prob_clamp": Range(0, 0.5, high_open=True),
    }

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        info: DataInfo,
        *,
        beta: float = 0.7,
        lam: float = 3.0,
        prob_clamp: float = 1e-4,
    ) -> None:
        super().__init__(backbone, num_features, info)
        self.beta, self.lam, self.prob_clamp = beta, lam, prob_clamp
        self.register_buffer("targets", torch.zeros(info.num_train, info.num_classes))

    @torch.no_grad()
    def update_targets(self, index: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """``t[index] <- beta t[index] + (1 - beta) probs / sum(probs)``; returns the new rows
        ``(B, C)``. A repeated index takes the update of its last occurrence everywhere."""
        new = self.beta * self.targets[index] + (1 - self.beta) * probs / probs.sum(1, keepdim=True)
        position = torch.arange(len(index), device=index.device)
        last = torch.full((self.targets.shape[0],), -1, dtype=torch.long, device=index.device)
        last.scatter_reduce_(0, index, position, reduce="amax")
        new = new[last[index]]
        self.targets[index] = new
        return new

    def loss(self, batch: Batch, labels: LabelStore) -> StepOutput:
        logits = self.predict(batch.images)
        logits32 = logits.float()
        probs = logits32.softmax(1).clamp(self.prob_clamp, 1 - self.prob_clamp)
        targets = self.update_targets(batch.index, probs.detach())
        ce = F.cross_entropy(logits32, batch.labels)
        reg = torch.log(1 - (targets * probs).sum(1)).mean()
        loss = ce + self.lam * reg
        return StepOutput(loss=loss, logits=logits, logs={"ce": ce.detach(), "elr": reg.detach()})
