"""EAC — Erasing Attention Consistency (Zhang, Wang, Ling, Deng, "Learn From All: Erasing
Attention Consistency for Noisy Label Facial Expression Recognition", ECCV 2022; official code
zyh-uaiaaaa/Erasing-Attention-Consistency, ``src/main.py``, ``model.py``, ``loss.py``,
``dataset.py``, ``utils.py``).

What the paper says
    A FER network memorises a noisy label by attending to a small part of the face that happens
    to fit that label. EAC keeps every sample (no selection, no relabeling, no noise rate) and
    instead stops the network from relying on such parts:

    * Attention maps. With F the last spatial features ``(N, C, H, W)`` and W the linear
      classifier's weights ``(L, C)`` (L classes), the attention (class activation) map of
      class l is M[n, l, h, w] = sum_c W[l, c] * F[n, c, h, w], for all L classes.
    * Flip consistency ("imbalanced framework"). The image x and its horizontal mirror x_f go
      through the same network; a face's expression does not change under the mirror, so the
      maps must agree once the mirror's maps are flipped back:
          l_c = 1 / (N L H W) * sum (M(x) - flip(M(x_f)))^2      (mean squared error).
      Only x is classified (cross-entropy on x alone; x_f enters through l_c only): the two
      branches are imbalanced on purpose.
    * Erasing. x is randomly erased before it is mirrored, so the pair shares one erased
      rectangle at mirrored places: the network cannot keep its attention on a part it is not
      shown, and the consistency makes it attend to the whole face.
    * Total loss  L = CE(classifier(pool(F(x))), y) + lambda * l_c.  At test time the plain
      classifier on pooled features; the flip branch costs nothing there.

Our implementation
    ``feature_maps`` gives timm's ``forward_features`` (the map before pooling); the logits are
    the classifier on ``forward_head(maps, pre_logits=True)``, which for the ResNet backbones is
    the global average of the maps (checked: equal to the backbone's pooled output), so one
    backbone pass serves both the logits and the maps. The CAMs and the consistency are computed
    in fp32 (the bias is left out of the CAMs, as in the official code: a constant per class
    cancels in the difference). The mirrored view is a second, separate backbone pass, as in the
    official code (batch-norm statistics per view). The trainer's augmentation (the shared
    recipe's RandomErasing, area 0.02-0.25, aspect 0.3-3.3, p = 0.5, value 0 after
    normalisation) is the official code's ``transforms.RandomErasing(scale=(0.02, 0.25))``:
    the same erasing.

Where the paper and the official code differ (named options; defaults follow the paper):
  * ``flip_view``: how the mirrored image is made.
      ``"erased"`` (default; paper): the mirror of the erased training image, the same
      rectangle at the mirrored place. The official ``dataset.py`` does exactly this for clean
      labels (``RandomHorizontalFlip(p=1)`` of the transformed image).
      ``"independent"``: the official ``dataset.py`` for the noisy-label files that the paper's
      noisy experiments use: the raw image is mirrored and then transformed on its own, so it
      gets its own, independent erasing (and no Gaussian noise, which the first view gets with
      p = 0.5). Here this is the mirror of ``batch.another_view()``, a second independent
      augmentation. Use it with ``--augment none``: the shared recipe's ``flip_or_noise``
      flips each view at random (p = 0.25), so the two views would then fail to be mirrors of
      each other for 3/8 of the pairs. (In ``"erased"`` mode that random flip is harmless: it
      swaps the roles of x and x_f, and l_c is the same for the swapped pair.)
  * ``detach_cam_weights``: the official ``model.py`` builds the maps from the classifier
    weights' ``.data`` (no gradient), so l_c trains the backbone only, not the classifier
    (default True; the paper does not say, so the official choice).
Hyperparameters
  * ``lam`` (lambda) = 5: the official code (``--lam 5``, used by ``train.sh`` for every noise
    level on RAF-DB); the paper's implementation details give the same value as far as I know
    (its PDF was not at hand to re-check).
  * Recipe: the shared ``SCN_RECIPE`` (batch 64, Adam lr 1e-3, weight decay 1e-4,
    ExponentialLR 0.9, 70 epochs, flip-or-noise + RandomErasing) so that methods differ only in
    the method. The official recipe: ResNet-50 pre-trained on MS-Celeb-1M (a run option here,
    ``--backbone`` / ``--pretrained``; the README says ResNet-18 wants lr 2e-4), Adam lr 1e-4,
    weight decay 1e-4, ExponentialLR 0.9, batch 32, 60 epochs, 224 x 224 input (7 x 7 maps),
    Gaussian pixel noise (variance 30) with p = 0.5 on the classified view and no random flip
    besides the mirrored view.
Cost: two backbone forward and backward passes per step (the image and its mirror), and twice
CE's activation memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fer_bench.errors import FerBenchError
from fer_bench.method import SCN_RECIPE, Batch, DataInfo, LabelStore, Method, StepOutput
from fer_bench.options import OneOf, Range
from fer_bench.registry import register_method


def class_activation_maps(maps: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """CAMs of every class, ``(N, L, H, W)``: sum_c weight[l, c] * maps[n, c, h, w], in fp32."""
    with torch.autocast(maps.device.type, enabled=False):
        return torch.einsum("lc,nchw->nlhw", weight.float(), maps.float())


def flip_consistency(cams: torch.Tensor, mirror_cams: torch.Tensor) -> torch.Tensor:
    """Mean squared error between ``cams`` and ``mirror_cams`` flipped back along the width.

    The official code flips with ``grid_sample`` on a mirrored grid (bilinear,
    ``align_corners=True``), which samples exactly at pixel centres: the same as this flip.
    """
    return F.mse_loss(cams.float(), mirror_cams.float().flip(-1))


@register_method("eac")
class ErasingAttentionConsistency(Method):
    """EAC (ECCV 2022): CE on the erased image + lambda * MSE of its CAMs and its mirror's."""

    recipe = SCN_RECIPE
    compute_note = "two backbone passes per step (the image and its mirror): about 2x CE"
    checks = {
        "lam": Range(0),
        "flip_view": OneOf(("erased", "independent")),  # paper, official code (noisy labels)
    }

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        info: DataInfo,
        *,
        lam: float = 5.0,
        flip_view: str = "erased",
        detach_cam_weights: bool = True,
    ) -> None:
        super().__init__(backbone, num_features, info)
        self.lam, self.flip_view = lam, flip_view
        self.detach_cam_weights = detach_cam_weights

    def maps_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.feature_maps(images)
        pooled = self.backbone.forward_head(maps, pre_logits=True)
        return maps, self.classifier(pooled)

    def mirrored(self, batch: Batch) -> torch.Tensor:
        if self.flip_view == "erased":
            return batch.images.flip(-1)
        if batch.another_view is None:
            raise FerBenchError("eac flip_view=independent needs a second augmented view")
        return batch.another_view().flip(-1)

    def loss(self, batch: Batch, labels: LabelStore) -> StepOutput:
        maps, logits = self.maps_and_logits(batch.images)
        mirror_maps = self.feature_maps(self.mirrored(batch))
        weight = self.classifier.weight
        if self.detach_cam_weights:
            weight = weight.detach()
        consistency = flip_consistency(
            class_activation_maps(maps, weight), class_activation_maps(mirror_maps, weight)
        )
        ce = F.cross_entropy(logits.float(), batch.labels)
        loss = ce + self.lam * consistency
        return StepOutput(
            loss=loss,
            logits=logits,
            logs={"ce": ce.detach(), "consistency": consistency.detach()},
        )
