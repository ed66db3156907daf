"""Backbones by timm name, optionally initialised from a local weights file.

Nothing is downloaded: ``pretrained`` is a path. Keys are matched strictly (after removing the
common ``module.`` / ``backbone.`` / ``_orig_mod.`` prefixes and dropping classifier heads), so
weights that do not fit fail loudly instead of being silently ignored (a defect of SCN's
official loader).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fer_bench.errors import FerBenchError

_PREFIXES = ("module.", "backbone.", "_orig_mod.", "model.", "base.")


def create_backbone(name: str, pretrained: str | None = None) -> tuple[nn.Module, int]:
    """A feature extractor (pooled features, no classifier) and its feature size."""
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name}*")[:8]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise FerBenchError(f"unknown timm backbone '{name}'{hint}")
    model = timm.create_model(name, pretrained=False, num_classes=0)
    if pretrained:
        load_pretrained(model, pretrained)
    return model, int(model.num_features)


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def load_pretrained(model: nn.Module, path: str) -> None:
    file = Path(path)
    if not file.is_file():
        raise FerBenchError(f"--pretrained {path}: no such file")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FerBenchError(f"--pretrained {path}: not a loadable weights file ({first})") from None
    for wrapper in ("state_dict", "model", "model_state_dict", "net"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FerBenchError(f"--pretrained {path}: expected a state dict of tensors")
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
    model.load_state_dict(state, strict=True)


def _is_head(key: str) -> bool:
    return key.split(".")[0] in {"fc", "head", "classifier", "last_linear", "logits", "feature"}
