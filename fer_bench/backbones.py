"""Backbones by timm name (or facenet-pytorch's face networks), optionally initialised from a
local weights file or from published weights (``timm:<model>.<tag>``, see
:mod:`fer_bench.pretrained`).

With a path for ``pretrained``, keys are matched strictly (after removing the
common ``module.`` / ``backbone.`` / ``_orig_mod.`` prefixes and dropping classifier heads), so
weights that do not fit fail loudly instead of being silently ignored (a defect of SCN's
official loader).
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch
from torch import nn

from fer_bench.errors import FerBenchError
from fer_bench.pretrained import (
    FACENET,
    TIMM_PREFIX,
    FaceNetBackbone,
    create_facenet,
    create_timm_pretrained,
    weights_sha1,
)

_PREFIXES = ("module.", "backbone.", "_orig_mod.", "model.", "base.")


def create_backbone(name: str, pretrained: str | None = None) -> tuple[nn.Module, int]:
    """A feature extractor (pooled features, no classifier) and its feature size."""
    if pretrained and pretrained.startswith(TIMM_PREFIX):
        model = create_timm_pretrained(pretrained)  # fer_bench.pretrained: timm's own loader
    elif name in FACENET and not pretrained:
        model = create_facenet(name)  # facenet-pytorch's published face weights
    else:
        model = _create(name)
        if pretrained:
            state = fit_weights(model, read_weights(pretrained), pretrained)
            model.load_state_dict(state, strict=True)
    return model, int(model.num_features)


def check_backbone(name: str, pretrained: str | None, image_size: int) -> None:
    """What :func:`create_backbone` and the first batch would refuse, found without building
    anything: the model is made on the meta device (no memory, no compute), the weights file is
    read memory-mapped, and one forward pass at ``image_size`` checks the input size."""
    if (pretrained and pretrained.startswith(TIMM_PREFIX)) or (name in FACENET and not pretrained):
        weights_sha1(name, pretrained)  # loads (on a user's machine: fetches) them, or says why not
    with torch.device("meta"):
        model = _create(name)
    if pretrained and not pretrained.startswith(TIMM_PREFIX):
        fit_weights(model, read_weights(pretrained, mmap=True), pretrained)
    smallest = min_image_size(model)
    if image_size < smallest:
        raise FerBenchError(
            f"--image-size {image_size} is below what backbone '{name}' accepts "
            f"(at least {smallest}: its last features are {smallest}x smaller than the input)"
        )
    try:
        with torch.no_grad():
            model(torch.empty(2, 3, image_size, image_size, device="meta"))
    except NotImplementedError:
        return  # an operation without a meta kernel: the first batch will tell
    except Exception as exc:
        raise FerBenchError(
            f"--image-size {image_size} does not fit backbone '{name}': {_first_line(exc)}"
        ) from None


def min_image_size(model: nn.Module) -> int:
    """The smallest input side the model takes: its total stride (an input smaller than that
    leaves the last stage less than one pixel of it), or timm's stated minimum if larger."""
    info = getattr(model, "feature_info", None)
    stride = int(info[-1]["reduction"]) if info else 1
    stated = (getattr(model, "pretrained_cfg", None) or {}).get("min_input_size")
    return max(stride, int(stated[-1]) if stated else 1)


def _create(name: str) -> nn.Module:
    """The architecture, randomly initialised (facenet's without its weights)."""
    if name in FACENET:
        return FaceNetBackbone(None)
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name}*")[:8]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise FerBenchError(f"unknown timm backbone '{name}'{hint}")
    return timm.create_model(name, pretrained=False, num_classes=0)


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def read_weights(path: str, mmap: bool = False) -> dict[str, torch.Tensor]:
    """The state dict in a weights file, loaded with ``weights_only=True``; anything else (not a
    torch file, pickled objects, no tensors) is a one-line error that says which."""
    file = Path(path)
    if not file.is_file():
        raise FerBenchError(f"--pretrained {path}: no such file")
    mmap = mmap and zipfile.is_zipfile(file)  # torch maps only its zip format, not legacy files
    try:
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:
        raise FerBenchError(
            f"--pretrained {path}: not a loadable weights file ({_why_unloadable(exc)})"
        ) from None
    for wrapper in ("state_dict", "model", "model_state_dict", "net"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FerBenchError(f"--pretrained {path}: expected a state dict of tensors")
    return state


def fit_weights(
    model: nn.Module, state: dict[str, torch.Tensor], path: str
) -> dict[str, torch.Tensor]:
    """``state`` with its keys matched to ``model``'s; fails on any missing, unexpected or
    differently shaped entry instead of ignoring it."""
    own = model.state_dict()
    state = {_strip(k): v for k, v in state.items()}
    # A classifier trained for other classes (ImageNet, MS-Celeb identities) is not ours to load.
    state = {k: v for k, v in state.items() if k in own or not _is_head(k)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch", mismatched),
        ):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {keys[0]})")
        raise FerBenchError(f"--pretrained {path} does not fit the backbone: {'; '.join(parts)}")
    return state


def _why_unloadable(exc: Exception) -> str:
    """torch's reason in a few words, without its advice to load with ``weights_only=False``
    (which runs whatever code the file holds)."""
    text = str(exc)
    pickled = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if pickled:
        return f"it holds a pickled {pickled.group(1)}; only tensors are loaded"
    if "Weights only load failed" in text or isinstance(exc, pickle.UnpicklingError):
        return "not a PyTorch file"
    return _first_line(exc).split(". ")[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_head(key: str) -> bool:
    return key.split(".")[0] in {"fc", "head", "classifier", "last_linear", "logits", "feature"}
