"""Seeded label-noise injection with the clean labels and the flipped mask kept for diagnostics.

``symmetric``: exactly ``round(rate * n_c)`` samples of every class c are flipped, each to a
uniformly random *other* class (exact per-class counts: the realised rate equals the requested
one). ``bernoulli`` is SCN's own generator (kaiwang960112/Self-Cure-Network, generate.py): every
sample independently flips with probability ``rate`` to a uniformly random other class, so the
realised rate scatters around the requested one; use it to match SCN's published protocol.
``asymmetric`` flips exact per-class counts to one fixed confusable class (the dataset's
documented map, else ``DEFAULT_ASYMMETRIC_MAP``). ``file`` reads a published noisy label list in
RAF-DB's list format (``train_00001.jpg 5``, labels 1-based). ``real`` uses the labels a real
noisy source published (FERPlus: the original FER2013 labels). ``annotator`` gives each sample
the label of one of its annotators, drawn from its vote shares (FERPlus's 10 votes): human,
instance-dependent noise, the FER counterpart of CIFAR-10N's "random" labels (Wei et al., ICLR
2022). For ``real`` and ``annotator`` the rate is measured, not chosen.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from fer_bench.config import check_noise_rate
from fer_bench.data import DEFAULT_ASYMMETRIC_MAP
from fer_bench.errors import FerBenchError


@dataclass
class NoisyLabels:
    labels: torch.Tensor  # int64 (N,): what the model is trained on
    clean: torch.Tensor  # int64 (N,): the dataset's own labels
    flipped: torch.Tensor  # bool (N,): labels != clean

    @property
    def actual_rate(self) -> float:
        return float(self.flipped.float().mean()) if len(self.flipped) else 0.0


def noise_seed(dataset: str, noise_type: str, rate_percent: float, seed: int) -> int:
    """A stable 63-bit seed from what defines the noisy label set, independent of anything else."""
    key = f"{dataset}|{noise_type}|{rate_percent:g}|{seed}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & ((1 << 63) - 1)


def flip_count(rate_percent: float, n: int) -> int:
    """round(rate * n) with halves rounded up, computed exactly (no float or banker's rounding)."""
    from fractions import Fraction

    return int(Fraction(str(rate_percent)) * n / 100 + Fraction(1, 2))


def _per_class_flip_positions(
    labels: torch.Tensor, num_classes: int, rate_percent: float, gen: torch.Generator
) -> list[torch.Tensor]:
    positions = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c, as_tuple=False).flatten()
        k = flip_count(rate_percent, len(members))
        order = torch.randperm(len(members), generator=gen)
        positions.append(members[order[:k]])
    return positions


def _other_class(labels: torch.Tensor, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """A uniform draw from the num_classes - 1 classes other than each label: 0..C-2, skip it."""
    draw = torch.randint(0, num_classes - 1, (len(labels),), generator=gen)
    return draw + (draw >= labels).long()


def symmetric_noise(
    labels: torch.Tensor, num_classes: int, rate_percent: float, gen: torch.Generator
) -> torch.Tensor:
    if num_classes < 2 and rate_percent > 0:
        raise FerBenchError("symmetric noise needs at least 2 classes")
    noisy = labels.clone()
    for c, pos in enumerate(_per_class_flip_positions(labels, num_classes, rate_percent, gen)):
        noisy[pos] = _other_class(torch.full((len(pos),), c), num_classes, gen)
    return noisy


def bernoulli_noise(
    labels: torch.Tensor, num_classes: int, rate_percent: float, gen: torch.Generator
) -> torch.Tensor:
    """SCN's generator: each sample flips with probability ``rate`` to a random other class."""
    if num_classes < 2 and rate_percent > 0:
        raise FerBenchError("bernoulli noise needs at least 2 classes")
    flip = torch.rand(len(labels), generator=gen, dtype=torch.float64) < rate_percent / 100
    return torch.where(flip, _other_class(labels, num_classes, gen), labels)


def annotator_noise(votes: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One annotator's label per sample, drawn in proportion to the sample's vote shares."""
    return torch.multinomial(votes.double(), 1, generator=gen).squeeze(1)


def asymmetric_noise(
    labels: torch.Tensor,
    class_names: list[str],
    rate_percent: float,
    gen: torch.Generator,
    mapping: dict[str, str] | None,
) -> torch.Tensor:
    mapping = mapping or DEFAULT_ASYMMETRIC_MAP
    index = {name: i for i, name in enumerate(class_names)}
    noisy = labels.clone()
    for c, pos in enumerate(_per_class_flip_positions(labels, len(class_names), rate_percent, gen)):
        if len(pos) == 0:
            continue
        target = mapping.get(class_names[c])
        if target is None or target not in index or target == class_names[c]:
            raise FerBenchError(
                f"asymmetric noise map has no other class for '{class_names[c]}' "
                f"(classes: {', '.join(class_names)})"
            )
        noisy[pos] = index[target]
    return noisy


def _sample_key(name: str) -> str:
    """``/any/dir/train_00001_aligned.jpg`` and ``train_00001.jpg`` name the same sample."""
    return Path(name).name.replace("_aligned", "")


def read_noise_file(
    path: str | Path, names: list[str] | None, num_classes: int, label_base: int = 1
) -> torch.Tensor:
    """Labels from a list of ``name label`` lines, in the split's name order.

    RAF-DB's own list is 1-based (``train_00001.jpg 5``); SCN's published noise files
    (``0.1noise_train.txt``) give full paths to ``*_aligned.jpg`` and 0-based labels
    (``--noise-file-base 0``). Names match on the file name without ``_aligned``.
    """
    if names is None:
        raise FerBenchError(
            "this dataset has no sample names, so a noise file cannot refer to them"
        )
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise FerBenchError(f"cannot read noise file {path}: {exc.strerror}") from None
    given: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise FerBenchError(f"{path}:{lineno}: expected 'NAME LABEL', got '{line.strip()}'")
        label = int(parts[1])
        if not label_base <= label < label_base + num_classes:
            raise FerBenchError(
                f"{path}:{lineno}: label {label} outside {label_base}..{label_base + num_classes - 1}"
            )
        given[_sample_key(parts[0])] = label - label_base
    wanted = {_sample_key(n) for n in names}
    missing = [n for n in names if _sample_key(n) not in given]
    if missing:
        raise FerBenchError(
            f"{path}: no label for {len(missing)} training image(s), e.g. '{missing[0]}'"
        )
    extra = [n for n in given if n not in wanted]
    if extra:
        raise FerBenchError(f"{path}: names not in the training split, e.g. '{extra[0]}'")
    return torch.tensor([given[_sample_key(n)] for n in names], dtype=torch.long)


def inject_noise(
    labels: torch.Tensor,
    class_names: list[str],
    *,
    dataset: str,
    noise_type: str,
    rate_percent: float,
    seed: int,
    names: list[str] | None = None,
    noise_file: str | None = None,
    noise_file_base: int = 1,
    asymmetric_map: dict[str, str] | None = None,
    real_noisy_labels: torch.Tensor | None = None,
    votes: torch.Tensor | None = None,
) -> NoisyLabels:
    """Noisy training labels; the same (dataset, type, rate, seed) always gives the same ones."""
    check_noise_rate(noise_type, rate_percent)
    clean = labels.to(torch.long).clone()
    gen = torch.Generator().manual_seed(noise_seed(dataset, noise_type, rate_percent, seed))
    num_classes = len(class_names)
    rate = rate_percent
    if noise_type == "symmetric":
        noisy = symmetric_noise(clean, num_classes, rate, gen) if rate > 0 else clean.clone()
    elif noise_type == "asymmetric":
        noisy = (
            asymmetric_noise(clean, class_names, rate, gen, asymmetric_map)
            if rate > 0
            else clean.clone()
        )
    elif noise_type == "bernoulli":
        noisy = bernoulli_noise(clean, num_classes, rate, gen)
    elif noise_type == "annotator":
        if votes is None:
            raise FerBenchError(
                f"dataset '{dataset}' has no annotator votes; --noise-type annotator needs one "
                "that has (ferplus)"
            )
        noisy = annotator_noise(votes, gen)
    elif noise_type == "file":
        if noise_file is None:
            raise FerBenchError("--noise-type file needs --noise-file PATH")
        noisy = read_noise_file(noise_file, names, num_classes, noise_file_base)
    elif noise_type == "real":
        if real_noisy_labels is None:
            raise FerBenchError(
                f"dataset '{dataset}' publishes no real noisy labels; --noise-type real needs one "
                "that does (ferplus)"
            )
        noisy = real_noisy_labels.to(torch.long).clone()
        if len(noisy) != len(clean):
            raise FerBenchError("real noisy labels and clean labels differ in length")
    else:
        raise FerBenchError(f"unknown noise type '{noise_type}'")
    return NoisyLabels(labels=noisy, clean=clean, flipped=noisy != clean)
