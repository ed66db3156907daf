"""One home for the trainer-level resume check every stateful method's tests make."""

from pathlib import Path

import pytest
import torch

from fer_bench.registry import create_dataset
from fer_bench.runner import build_method, prepare_data, resolve_config
from fer_bench.trainer import Trainer, TrainState

TIMINGS = ("seconds", "images_per_s")


def trainer_for(cfg, checkpoint=None, on_epoch_end=None) -> Trainer:
    """A CPU trainer for a (tiny) run config, as the runner would build it."""
    cfg = resolve_config(cfg)
    data = create_dataset(cfg.dataset, **cfg.dataset_options)
    train_data, _, _ = prepare_data(cfg, data)
    method = build_method(cfg, data, train_data.train)
    return Trainer(cfg, method, train_data, torch.device("cpu"), checkpoint, on_epoch_end)


class Killed(Exception):
    """Stands for the process dying right after an epoch's checkpoint."""


def kill_and_resume(cfg, checkpoint: Path, after: int) -> tuple[TrainState, TrainState]:
    """An uninterrupted run, and the same run killed after epoch ``after`` and resumed."""
    full = trainer_for(cfg).fit()

    def kill(state: TrainState) -> None:
        if state.epoch == after:
            raise Killed

    with pytest.raises(Killed):
        trainer_for(cfg, checkpoint, kill).fit()
    return full, trainer_for(cfg, checkpoint).fit()


def assert_same_history(full: TrainState, resumed: TrainState) -> None:
    """Every epoch's losses, logs, test metrics and diagnostics equal (timings aside)."""
    assert len(resumed.history) == len(full.history)
    for a, b in zip(full.history, resumed.history, strict=True):
        train_a = {k: v for k, v in a["train"].items() if k not in TIMINGS}
        assert train_a == {k: v for k, v in b["train"].items() if k not in TIMINGS}
        assert a["test"] == b["test"] and a["diagnostics"] == b["diagnostics"]
