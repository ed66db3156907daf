"""Published weights through the libraries' own loaders: timm's and facenet-pytorch's.

``--pretrained timm:<model>.<tag>`` (e.g. ``timm:resnet18.a1_in1k``) builds ``<model>`` with
timm's pretrained-weights loader: from ``$FER_BENCH_WEIGHTS/<model>.<tag>.{safetensors,pth,bin}``
when such a file is there (timm's ``pretrained_cfg_overlay=dict(file=...)``: the way to bring
weights to a machine without network), else through timm's own hub download and cache.
``--backbone facenet_vggface2`` / ``facenet_casia`` is facenet-pytorch's InceptionResnetV1 with
its published face-recognition weights, fetched and cached by facenet-pytorch itself (under
``$TORCH_HOME/checkpoints``), used as a feature extractor: the 512-d embedding before facenet's
L2 normalisation (a linear classifier on unit-norm features would see its scale fixed at 1).
Without network access, either fails with one line naming the file to fetch and where to put it.
A run's identity holds the weights' name and the sha1 of their tensors, so new weights under an
old name are a new run.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from fer_bench.errors import FerBenchError

TIMM_PREFIX = "timm:"
#: fer-bench backbone name -> facenet-pytorch's ``pretrained=`` name.
FACENET = {"facenet_vggface2": "vggface2", "facenet_casia": "casia-webface"}
FACENET_FEATURES = 512
_SUFFIXES = (".safetensors", ".pth", ".bin")


def weights_dir() -> Path:
    """``$FER_BENCH_WEIGHTS``, else ``<cache root>/weights``: local copies of published weights."""
    env = os.environ.get("FER_BENCH_WEIGHTS")
    if env:
        return Path(env).expanduser()
    from fer_bench.cache import cache_root

    return cache_root() / "weights"


def timm_model_name(spec: str) -> str:
    """``timm:resnet18.a1_in1k`` -> ``resnet18`` (the architecture the weights belong to)."""
    name = spec.removeprefix(TIMM_PREFIX)
    if not name:
        raise FerBenchError("--pretrained timm: needs a model name, e.g. timm:resnet18.a1_in1k")
    return name.split(".", 1)[0]


def local_timm_file(spec: str) -> Path | None:
    name = spec.removeprefix(TIMM_PREFIX)
    for suffix in _SUFFIXES:
        path = weights_dir() / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def create_timm_pretrained(spec: str) -> nn.Module:
    """timm's model with its published weights, by timm's loader (local file first)."""
    import timm

    name = spec.removeprefix(TIMM_PREFIX)
    if not timm.is_model(name) or not timm.is_model_pretrained(name):
        raise FerBenchError(
            f"--pretrained {spec}: timm has no published weights by that name "
            f"(list them with timm.list_pretrained('{timm_model_name(spec)}*'))"
        )
    local = local_timm_file(spec)
    overlay = {"file": str(local)} if local else None
    try:
        return timm.create_model(
            name, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay
        )
    except FerBenchError:
        raise
    except Exception as exc:
        cfg = timm.create_model(name, pretrained=False, num_classes=0).pretrained_cfg
        source = cfg.get("hf_hub_id") or cfg.get("url") or "its source"
        where = local or weights_dir() / f"{name}.safetensors"
        raise FerBenchError(
            f"--pretrained {spec}: timm could not load its weights ({_first_line(exc)}); "
            f"fetch them from {source} and put the file at {where}"
        ) from None


class FaceNetBackbone(nn.Module):
    """InceptionResnetV1 with facenet-pytorch's face-recognition weights, as pooled features."""

    num_features = FACENET_FEATURES

    def __init__(self, weights: str | None) -> None:
        super().__init__()
        from facenet_pytorch import InceptionResnetV1

        self.net = InceptionResnetV1(pretrained=weights, classify=False)
        self.net.logits = nn.Identity()  # the identity classifier is not ours to train

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        for layer in (n.conv2d_1a, n.conv2d_2a, n.conv2d_2b, n.maxpool_3a, n.conv2d_3b):
            x = layer(x)
        for layer in (n.conv2d_4a, n.conv2d_4b, n.repeat_1, n.mixed_6a, n.repeat_2):
            x = layer(x)
        for layer in (n.mixed_7a, n.repeat_3, n.block8, n.avgpool_1a, n.dropout):
            x = layer(x)
        return n.last_bn(n.last_linear(x.flatten(1)))


def facenet_weights_file(name: str) -> Path:
    """Where facenet-pytorch caches the weights of ``name`` (its own naming)."""
    from facenet_pytorch.models.inception_resnet_v1 import get_torch_home

    release = {
        "vggface2": "20180402-114759-vggface2.pt",
        "casia-webface": "20180408-102900-casia-webface.pt",
    }[FACENET[name]]
    return Path(get_torch_home()) / "checkpoints" / release


def create_facenet(name: str) -> nn.Module:
    try:
        return FaceNetBackbone(FACENET[name])
    except OSError as exc:  # no network: urllib's URLError is an OSError
        raise FerBenchError(
            f"--backbone {name}: facenet-pytorch could not fetch its weights ({_first_line(exc)}); "
            f"download them from facenet-pytorch's v2.2.9 release and put the file at "
            f"{facenet_weights_file(name)}"
        ) from None


@functools.cache
def weights_sha1(backbone: str, pretrained: str | None) -> str | None:
    """sha1 of the published weights' tensors a run starts from (None: nothing published)."""
    if backbone in FACENET and not pretrained:
        model = create_facenet(backbone)
    elif pretrained and pretrained.startswith(TIMM_PREFIX):
        model = create_timm_pretrained(pretrained)
    else:
        return None
    return state_sha1(model.state_dict())


def state_sha1(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha1()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(
            state[key].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
