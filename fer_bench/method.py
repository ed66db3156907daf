"""The method interface: a small module with two verbs, ``loss`` for a batch and ``predict``.

The trainer owns the loop, optimizer, precision, device, compile and host syncs. A method owns its
heads and its losses, and may rewrite the :class:`LabelStore` (relabeling that persists across
epochs). Everything a method returns stays on the device: no ``.item()``, no Python branches on
tensor values, so every method gets the trainer's fast path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from fer_bench.options import Check

#: SCN's official training recipe (kaiwang960112/Self-Cure-Network, src/train.py): batch 64, Adam at
#: PyTorch's default lr 1e-3 (train.py never passes its --lr to Adam), weight decay 1e-4,
#: ExponentialLR gamma 0.9 per epoch, 70 epochs, flip-or-Gaussian-noise and RandomErasing. CE and
#: MTAC-style share it, so the methods differ only in the method.
SCN_RECIPE: dict[str, Any] = {
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "batch_size": 64,
    "scheduler": "exponential",
    "scheduler_gamma": 0.9,
    "epochs": 70,
    "augment": "flip_or_noise",
    "random_erasing": True,
}


@dataclass
class DataInfo:
    """What a method may know about its training data when it is built."""

    num_classes: int
    class_names: list[str]
    num_train: int
    class_counts: torch.Tensor  # (C,) counts of the given (noisy) training labels
    train_labels: torch.Tensor  # (N,) given training labels, on the CPU
    has_valence_arousal: bool = False
    au_names: list[str] | None = None
    train_action_units: torch.Tensor | None = None  # (N, A) with NaN where unknown, on the CPU
    #: Realised share of flipped training labels, in [0, 1): oracle knowledge, read only by
    #: methods whose paper assumes the noise rate known (Co-teaching's forget rate).
    noise_rate: float = 0.0
    #: Builds another backbone like ``backbone`` (same name, same pretrained weights, a fresh
    #: draw of the random init), for methods that train two networks.
    make_backbone: Callable[[], nn.Module] | None = None


@dataclass
class Batch:
    images: torch.Tensor  # float (B, 3, S, S), augmented and normalised
    labels: torch.Tensor  # int64 (B,): current labels from the label store
    given_labels: torch.Tensor  # int64 (B,): the labels as given before any relabeling
    index: torch.Tensor  # int64 (B,): positions in the training split
    epoch: int  # 0-based
    valence_arousal: torch.Tensor | None = None  # (B, 2), NaN where unknown
    action_units: torch.Tensor | None = None  # (B, A), NaN where unknown
    #: Another random augmentation of the same faces (MixMatch's K views), drawn on the device
    #: from the trainer's augmentation generator, so it stays seeded and resumable.
    another_view: Callable[[], torch.Tensor] | None = None


@dataclass
class StepOutput:
    loss: torch.Tensor
    logits: torch.Tensor  # (B, C) class scores as ``predict`` would give them
    weights: torch.Tensor | None = None  # (B,) per-sample importance / confidence
    logs: dict[str, torch.Tensor] = field(default_factory=dict)  # scalars, averaged per epoch


class LabelStore:
    """The training labels a method learns from, on the device; relabels persist across epochs."""

    def __init__(self, given: torch.Tensor) -> None:
        self.given = given.clone()
        self.current = given.clone()

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        return self.current[index]

    def relabel(self, index: torch.Tensor, new_labels: torch.Tensor, mask: torch.Tensor) -> None:
        """Set ``current[index[mask]] = new_labels[mask]`` without a host sync.

        An index repeated in the batch (balanced sampling draws with replacement) takes the
        relabel of its last occurrence whose mask is set: every occurrence writes that same
        value, so the outcome does not depend on the order the writes land in.
        """
        position = torch.arange(len(index), device=index.device)
        candidate = torch.where(mask, position, -1)
        last = torch.full_like(self.current, -1)
        last.scatter_reduce_(0, index, candidate, reduce="amax")
        winner = last[index]  # per occurrence: the position whose relabel its sample takes
        taken = new_labels.to(self.current.dtype)[winner.clamp(min=0)]
        self.current[index] = torch.where(winner >= 0, taken, self.current[index])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"given": self.given.cpu(), "current": self.current.cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.given.copy_(state["given"])
        self.current.copy_(state["current"])


class TrainingSet:
    """What a method may read of the whole training set between epochs (DivideMix's GMM).

    ``scan(fn)`` runs ``fn(images, labels, index)`` over every training sample in eval mode,
    without gradients, batched on the device with the evaluation transform, and returns the
    concatenated outputs in index order; the trainer owns batching, precision and device.
    """

    def __init__(self, scan: Callable[[Callable[..., torch.Tensor]], torch.Tensor], n: int):
        self.scan = scan
        self.num_samples = n


class Network(nn.Module):
    """A backbone and its linear classifier: what a method trains twice (Co-teaching)."""

    def __init__(self, backbone: nn.Module, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(num_features, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(images))


class Method(nn.Module):
    """Base class: ``self.backbone`` maps images to pooled features of size ``num_features``
    and ``self.classifier`` maps those to class scores; ``predict`` is their composition.

    Subclasses set ``recipe`` (training defaults from their paper, recorded with the run),
    declare options as keyword-only ``__init__`` arguments with defaults and their allowed
    values in ``checks``, set ``weight_name`` when ``loss`` returns per-sample weights and
    ``relabels`` when they rewrite the label store. Per-sample state (ELR's targets) is a
    registered buffer indexed by ``batch.index``: checkpoints carry it, so resume is exact.
    """

    recipe: ClassVar[dict[str, Any]] = {}
    checks: ClassVar[dict[str, Check]] = {}
    weight_name: ClassVar[str | None] = None
    relabels: ClassVar[bool] = False
    #: Set where a method costs clearly more than CE per epoch (shown by ``fer-bench list -v``).
    compute_note: ClassVar[str | None] = None

    def __init__(self, backbone: nn.Module, num_features: int, info: DataInfo) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_features = num_features
        self.info = info
        self.num_classes = info.num_classes
        self.classifier = nn.Linear(num_features, info.num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def feature_maps(self, images: torch.Tensor) -> torch.Tensor:
        """Spatial features ``(B, num_features, h, w)`` before pooling (timm's
        ``forward_features``), for methods that look at class activation maps."""
        return self.backbone.forward_features(images)

    def new_network(self) -> Network:
        """A second backbone + classifier, initialised independently of the first."""
        if self.info.make_backbone is None:
            raise RuntimeError("this run cannot build a second backbone")
        return Network(self.info.make_backbone(), self.num_features, self.num_classes)

    def before_epoch(self, epoch: int, train: TrainingSet) -> None:
        """Called by the trainer before each training epoch (0-based); nothing by default."""

    def loss(self, batch: Batch, labels: LabelStore) -> StepOutput:
        raise NotImplementedError

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


def in_fp32(head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a small head in fp32 even under the trainer's bf16 autocast.

    For per-sample weights: sigmoid outputs near 0.9 move in bf16 steps of 0.004, so most of a
    batch ties and the top-beta ranking that the rank margin acts on becomes arbitrary. These
    heads are a layer or two on pooled features; fp32 costs nothing measurable.
    """
    with torch.autocast(x.device.type, enabled=False):
        return head(x.float())
