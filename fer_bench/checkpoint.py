"""Checkpoint and weights files: the state a resumed run needs, read back safely
(``weights_only=True``), with module state independent of ``torch.compile``'s wrapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from fer_bench.errors import FerBenchError


def read_checkpoint(path: Path | None, device: torch.device) -> dict[str, Any] | None:
    """The saved training state, or ``None`` where there is none; one line where it cannot be
    read or was written on another device type (the augmentation generator lives on the
    device, and its state does not carry over)."""
    if path is None or not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FerBenchError(
            f"checkpoint {path} is unreadable ({exc}); delete it to restart"
        ) from None
    saved_on = state.get("device_type", "cpu")
    if saved_on != device.type:
        raise FerBenchError(
            f"checkpoint {path} was written on {saved_on}; resume it with --device "
            f"{saved_on}, or delete it to restart on {device.type}"
        )
    return state


def unwrapped_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """State dict without torch.compile's ``_orig_mod.`` prefixes, so eager and compiled agree."""
    return {k.replace("_orig_mod.", ""): v.detach().cpu() for k, v in module.state_dict().items()}


def load_unwrapped_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    own = module.state_dict()
    mapped = {}
    for key in own:
        plain = key.replace("_orig_mod.", "")
        if plain not in state:
            raise FerBenchError(f"checkpoint has no entry for '{plain}'; delete it to restart")
        mapped[key] = state[plain]
    module.load_state_dict(mapped)
