"""How a trained network is run for predictions, and the precision rule: one home for the
trainer's per-epoch evaluation, ``fer-bench eval`` and the bench, so they measure the same way."""

from __future__ import annotations

from collections.abc import Callable

import torch

from fer_bench import augment
from fer_bench.data import Split
from fer_bench.method import Method
from fer_bench.placement import HostStream


def uses_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast by default on CUDA, fp32 elsewhere; ``--precision`` overrides either way."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def bf16_autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


@torch.inference_mode()
def predict_probabilities(
    method: Method,
    split: Split,
    image_size: int,
    device: torch.device,
    bf16: bool,
    batch_size: int = 512,
    predict: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Softmax of ``method.predict`` over a split, batched with the evaluation transform, on
    the CPU: what every evaluation (per epoch, cross-dataset) measures."""
    method.eval()
    predict = predict or method.predict
    cuda = device.type == "cuda"
    out = []
    n = len(split)
    chunks = [torch.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    # Gathered on the host (a split may be memory-mapped) and copied one batch ahead.
    for images in HostStream(device).batches(split.images, split.rows, chunks):
        x = augment.eval_transform(images, image_size)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with bf16_autocast(device, bf16):
            logits = predict(x)
        out.append(logits.float().softmax(1))
    return torch.cat(out).cpu()
