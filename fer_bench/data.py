"""The dataset interface every loader returns: uint8 images at stored size plus labels.

Images are ``(N, 3, H, W)`` uint8 tensors (possibly backed by a memory-mapped cache), so the
trainer can move a whole split to the GPU once and augment there. The test split is never noised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from fer_bench.errors import FerBenchError

#: RAF-DB's class order, used by the synthetic set and as the 7-class reference order.
RAFDB_CLASSES = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
#: Confusions commonly reported for 7/8-class FER (surprise<->fear, disgust<->anger, ...); a
#: dataset uses the pairs whose both classes it has (``--noise-type asymmetric``).
DEFAULT_ASYMMETRIC_MAP = {
    "surprise": "fear",
    "fear": "surprise",
    "disgust": "anger",
    "happiness": "neutral",
    "sadness": "neutral",
    "anger": "disgust",
    "neutral": "sadness",
    "contempt": "disgust",
}


@dataclass
class Split:
    """One split of a dataset.

    ``valence_arousal`` is ``(N, 2)`` float in [-1, 1] and ``action_units`` is ``(N, A)`` float in
    {0, 1}; entries that are unknown are NaN, so the methods mask them instead of faking them.
    ``soft_labels`` is a per-sample distribution over classes where a dataset has one (FERPlus
    votes, the synthetic set's recorded blends). ``real_noisy_labels`` holds the labels as a
    real-world noisy source published them (FERPlus: the original FER2013 labels), for
    ``--noise-type real``. ``names`` are the file names that published noise files refer to.
    """

    images: torch.Tensor
    labels: torch.Tensor
    soft_labels: torch.Tensor | None = None
    valence_arousal: torch.Tensor | None = None
    action_units: torch.Tensor | None = None
    real_noisy_labels: torch.Tensor | None = None
    names: list[str] | None = None
    rows: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise FerBenchError(
                f"split images must be uint8 (N, 3, H, W), got {tuple(self.images.shape)} {self.images.dtype}"
            )
        if self.rows is not None and len(self.rows) != n:
            raise FerBenchError(f"split has {len(self.rows)} image rows for {n} labels")
        if self.rows is None and self.images.shape[0] != n:
            raise FerBenchError(f"split has {self.images.shape[0]} images but {n} labels")
        for attr in ("soft_labels", "valence_arousal", "action_units", "real_noisy_labels"):
            value = getattr(self, attr)
            if value is not None and len(value) != n:
                raise FerBenchError(f"split {attr} has {len(value)} rows for {n} samples")
        if self.names is not None and len(self.names) != n:
            raise FerBenchError(f"split names has {len(self.names)} entries for {n} samples")

    def __len__(self) -> int:
        return len(self.labels)

    def image_rows(self, index: torch.Tensor) -> torch.Tensor:
        """Rows of ``images`` that hold the samples at ``index``."""
        return index if self.rows is None else self.rows[index.to(self.rows.device)]

    def images_at(self, index: torch.Tensor) -> torch.Tensor:
        return self.images[self.image_rows(index)]

    def subset(self, index: torch.Tensor) -> Split:
        """The samples at ``index``, every per-sample field kept aligned.

        Images are not copied: the subset indexes into the same (possibly memory-mapped) image
        tensor through ``rows``, so holding out a validation split of AffectNet costs no RAM.
        """

        def take(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[index]

        return Split(
            images=self.images,
            rows=self.image_rows(index),
            labels=self.labels[index],
            soft_labels=take(self.soft_labels),
            valence_arousal=take(self.valence_arousal),
            action_units=take(self.action_units),
            real_noisy_labels=take(self.real_noisy_labels),
            names=None if self.names is None else [self.names[i] for i in index.tolist()],
        )


@dataclass
class FERData:
    """A loaded dataset: splits, class names and what the run record should know about it.

    ``val`` is the dataset's own validation split where it has one (FERPlus PublicTest); without
    one the trainer holds out part of the noisy training set. ``asymmetric_map`` maps each class
    name to the confusable class it flips to under ``--noise-type asymmetric``; ``meta`` is copied
    into the run record (source, cache manifest, label mode, ...).
    """

    name: str
    class_names: list[str]
    train: Split
    test: Split
    val: Split | None = None
    au_names: list[str] | None = None
    asymmetric_map: dict[str, str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: ``train.soft_labels`` are shares of annotators' votes (FERPlus), which
    #: ``--noise-type annotator`` draws from; other soft labels (blends) are not votes.
    soft_labels_are_votes: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __post_init__(self) -> None:
        for split_name, split in (("train", self.train), ("test", self.test), ("val", self.val)):
            if split is None:
                continue
            if len(split) == 0:
                raise FerBenchError(f"dataset '{self.name}' has an empty {split_name} split")
            lo, hi = int(split.labels.min()), int(split.labels.max())
            if lo < 0 or hi >= self.num_classes:
                raise FerBenchError(
                    f"dataset '{self.name}' {split_name} labels span {lo}..{hi}, "
                    f"outside 0..{self.num_classes - 1}"
                )
