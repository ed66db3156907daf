"""Pre-flight: everything a run can be refused for without training, checked before it leaves
any record, so that a typo never becomes a ``failed`` record under the experiment's own run id
(device and paths are not part of the id: the real run would later be skipped as failed).

Checked, in order: the device; the data root, its prepared cache and the dataset options (the
dataset object is built: caches are memory-mapped, so this is cheap); the noise type against
the rate and the data (the noisy labels are drawn: exact and cheap), the held-out split and the
batch size against the training split; the backbone name, the weights file (read with
``weights_only=True`` and matched to the backbone) and the image size (one forward pass on the
meta device). Options and their types are checked before, by ``runner.resolve_config``.

``fer-bench sweep --dry-run`` runs the same checks for every run of a grid through one
:class:`Preflight`, which builds each (dataset, data root, options) and each (backbone, weights,
image size) once, so a 100-run grid takes seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fer_bench.errors import FerBenchError

if TYPE_CHECKING:
    import torch

    from fer_bench.config import RunConfig
    from fer_bench.data import FERData
    from fer_bench.noise import NoisyLabels
    from fer_bench.trainer import TrainData


@dataclass
class Checked:
    """What the checks built, for the run to train on."""

    device: torch.device | None  # None where the device was not checked (a cluster's runs)
    data: FERData
    train_data: TrainData
    noisy: NoisyLabels
    info: dict[str, Any]


class Preflight:
    """Checks resolved configs; remembers datasets and backbones (and their errors) by key."""

    def __init__(self, check_device: bool = True) -> None:
        self.check_device = check_device
        self._seen: dict[str, Any] = {}

    def check(self, cfg: RunConfig) -> Checked:
        from fer_bench.backbones import check_backbone
        from fer_bench.runner import prepare_data
        from fer_bench.trainer import pick_device

        device = pick_device(cfg.device) if self.check_device else None
        data = self._once(
            ("dataset", cfg.dataset, cfg.data_root, cfg.dataset_options), lambda: _dataset(cfg)
        )
        train_data, noisy, info = prepare_data(cfg, data)
        n_train = len(train_data.train)
        if cfg.batch_size > n_train:
            raise FerBenchError(
                f"--batch-size {cfg.batch_size} is larger than the training split "
                f"({n_train} samples); choose at most {n_train}"
            )
        self._once(
            ("backbone", cfg.backbone, cfg.pretrained, cfg.image_size),
            lambda: check_backbone(cfg.backbone, cfg.pretrained, cfg.image_size),
        )
        return Checked(device, data, train_data, noisy, info)

    def _once(self, key: tuple[Any, ...], build: Any) -> Any:
        name = json.dumps(key, sort_keys=True, default=str)
        if name not in self._seen:
            try:
                self._seen[name] = build()
            except FerBenchError as exc:
                self._seen[name] = exc
        found = self._seen[name]
        if isinstance(found, FerBenchError):
            raise FerBenchError(str(found))
        return found


def _dataset(cfg: RunConfig) -> FERData:
    from fer_bench.registry import create_dataset

    return create_dataset(cfg.dataset, root=cfg.data_root, **cfg.dataset_options)


def preflight(cfg: RunConfig) -> Checked:
    """Every check for one resolved config; raises :class:`FerBenchError` on the first failure."""
    return Preflight().check(cfg)
