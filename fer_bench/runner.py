"""One run end to end: dataset -> noise -> trainer <-> method -> result record.

``run_experiment`` is idempotent: a run whose record says ``done`` is returned untouched; any
other run resumes from its last epoch checkpoint. Every started run ends with a record: ``done``,
``failed`` (an error: retried only when asked), or ``interrupted`` (Ctrl-C, or the scheduler's
time-limit/preemption signal: not a failure, resumed by the next run or requeue).
"""

from __future__ import annotations

import hashlib
import time
import traceback
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from fer_bench.backbones import create_backbone
from fer_bench.config import RunConfig
from fer_bench.data import FERData, Split
from fer_bench.errors import FerBenchError
from fer_bench.method import DataInfo, Method
from fer_bench.noise import NoisyLabels, inject_noise
from fer_bench.options import resolve_options
from fer_bench.registry import (
    DATASETS,
    METHODS,
    check_keywords,
    create_method,
    dataset_run_defaults,
)
from fer_bench.results import (
    CHECKPOINT_NAME,
    RECORD_NAME,
    SCHEMA_VERSION,
    git_commit,
    hardware,
    package_versions,
    read_record,
    run_dir,
    write_json_atomic,
)
from fer_bench.trainer import TrainData, Trainer, TrainState, pick_device


class RunFailed(FerBenchError):
    """A run started, failed, and was recorded as failed."""


def resolve_config(config: RunConfig) -> RunConfig:
    """Fill every unset option from the method's recipe and the dataset's run defaults."""
    config.validate()
    method_cls = METHODS.get(config.method)
    defaults = dataset_run_defaults(config.dataset)
    # Typed, checked and complete: one experiment, one run id, whatever was spelled out.
    config = replace(
        config,
        method_options=resolve_options(
            method_cls, config.method_options, f"method '{config.method}'"
        ),
    )
    check_keywords(
        DATASETS.get(config.dataset),
        config.dataset_options,
        f"dataset '{config.dataset}'",
        internal=("root",),
    )
    resolved = config.resolved(getattr(method_cls, "recipe", {}), defaults)
    from fer_bench.augment import AUGMENTS

    if resolved.augment not in AUGMENTS:
        raise FerBenchError(f"unknown augment '{resolved.augment}'; known: {', '.join(AUGMENTS)}")
    return resolved


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _holdout(n: int, fraction: float, key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A train/validation split of the training set that depends only on (dataset, seed)."""
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") & ((1 << 63) - 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(fraction * n))
    return order[n_val:].sort().values, order[:n_val].sort().values


def prepare_data(cfg: RunConfig, data: FERData) -> tuple[TrainData, NoisyLabels, dict[str, Any]]:
    """Noise the whole training set (the protocol's exact counts), then hold out validation."""
    noisy = inject_noise(
        data.train.labels,
        data.class_names,
        dataset=cfg.dataset,
        noise_type=cfg.noise_type,
        rate_percent=cfg.noise,
        seed=cfg.seed,
        names=data.train.names,
        noise_file=cfg.noise_file,
        noise_file_base=cfg.noise_file_base,
        asymmetric_map=data.asymmetric_map,
        real_noisy_labels=data.train.real_noisy_labels,
    )
    train_all = Split(**{**data.train.__dict__, "labels": noisy.labels})
    if data.val is not None:
        train, val, clean, val_source = train_all, data.val, noisy.clean, "dataset"
    else:
        if cfg.val_fraction <= 0:
            # The papers' protocol: the whole training set, no model selection.
            return _finish(cfg, data, train_all, None, noisy.clean, "none", noisy)
        keep, held = _holdout(len(train_all), cfg.val_fraction, f"{cfg.dataset}|val|{cfg.seed}")
        if len(held) == 0 or len(keep) == 0:
            raise FerBenchError("training set too small to hold out a validation split")
        train, val, clean = train_all.subset(keep), train_all.subset(held), noisy.clean[keep]
        val_source = f"held-out {cfg.val_fraction:g} of the noisy training set"
    return _finish(cfg, data, train, val, clean, val_source, noisy)


def _finish(
    cfg: RunConfig,
    data: FERData,
    train: Split,
    val: Split | None,
    clean: torch.Tensor,
    val_source: str,
    noisy: NoisyLabels,
) -> tuple[TrainData, NoisyLabels, dict[str, Any]]:
    info = {
        "num_train": len(train),
        "num_val": 0 if val is None else len(val),
        "num_test": len(data.test),
        "class_names": data.class_names,
        "val_source": val_source,
        "image_shape": list(data.train.images.shape[1:]),
        "meta": data.meta,
    }
    train_data = TrainData(
        train=train, val=val, test=data.test, clean_train_labels=clean, num_classes=data.num_classes
    )
    return train_data, noisy, info


def build_method(cfg: RunConfig, data: FERData, train: Split, noise_rate: float = 0.0) -> Method:
    torch.manual_seed(cfg.seed)
    backbone, num_features = create_backbone(cfg.backbone, cfg.pretrained)
    info = DataInfo(
        noise_rate=noise_rate,
        make_backbone=lambda: create_backbone(cfg.backbone, cfg.pretrained)[0],
        num_classes=data.num_classes,
        class_names=data.class_names,
        num_train=len(train),
        class_counts=torch.bincount(train.labels, minlength=data.num_classes),
        train_labels=train.labels,
        has_valence_arousal=train.valence_arousal is not None,
        au_names=data.au_names,
        train_action_units=train.action_units,
    )
    return create_method(
        cfg.method, backbone=backbone, num_features=num_features, info=info, **cfg.method_options
    )


def _summary(history: list[dict[str, Any]]) -> dict[str, Any]:
    last = history[-1]
    if history[-1]["val"] is None:  # no validation split: nothing to select with
        best = last
    else:
        best = max(history, key=lambda e: (e["val"]["accuracy"], e["epoch"]))
    pick = ("epoch", "val", "test")
    return {
        "last": {k: last[k] for k in pick},
        "selected": {k: best[k] for k in pick},
        "selection": "highest validation accuracy (latest epoch on ties)"
        if history[-1]["val"] is not None
        else "none: no validation split (--val-fraction 0), the last epoch",
    }


_stop_signalled = False


def note_stop_signal() -> None:
    """A scheduler asked this process to stop (Slurm's time-limit or preemption signal, through
    submitit's checkpoint hook): the ``SystemExit`` that follows ends the run as interrupted,
    where any other ``SystemExit`` (a library calling ``sys.exit``) is a failure."""
    global _stop_signalled
    _stop_signalled = True


def run_experiment(config: RunConfig) -> dict[str, Any]:
    """Train (or resume, or return) one run and return its record."""
    cfg = resolve_config(config)
    identity = cfg.identity()
    rid = cfg.run_id(identity)
    directory = run_dir(cfg.output_dir, rid)
    record_path = directory / RECORD_NAME
    if record_path.exists():
        try:
            previous = read_record(record_path)
        except (OSError, ValueError):
            previous = {}
        if previous.get("status") == "done":
            return previous
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "run_id": rid,
        "status": "running",
        "error": None,
        "traceback": None,
        "config": cfg.to_dict(),
        "identity": identity,
        "started_at": _now(),
        "versions": package_versions(),
        "git": git_commit(),
    }
    wall_start = time.perf_counter()
    write_json_atomic(record_path, record)
    try:
        device = pick_device(cfg.device)
        record["hardware"] = hardware(device)
        data = DATASETS.create(cfg.dataset, root=cfg.data_root, **cfg.dataset_options)
        train_data, noisy, info = prepare_data(cfg, data)
        record["dataset"] = info
        record["noise"] = {
            "type": cfg.noise_type,
            "rate_requested": cfg.noise,
            "rate_actual": round(noisy.actual_rate * 100, 4),
            "num_flipped": int(noisy.flipped.sum()),
        }
        method = build_method(cfg, data, train_data.train, noisy.actual_rate)
        record["method_class"] = f"{type(method).__module__}.{type(method).__qualname__}"

        def on_epoch_end(state: TrainState) -> None:
            record["history"] = state.history
            write_json_atomic(record_path, record)

        trainer = Trainer(
            cfg, method, train_data, device, directory / CHECKPOINT_NAME, on_epoch_end
        )
        state = trainer.fit()
        record.update(
            status="done",
            history=state.history,
            final=_summary(state.history),
            diagnostics=state.history[-1]["diagnostics"],
            train_seconds=round(state.train_seconds, 3),
            throughput_img_s=round(state.images_seen / state.train_seconds, 1)
            if state.train_seconds
            else None,
        )
    except BaseException as exc:
        stopped = isinstance(exc, KeyboardInterrupt) or (
            isinstance(exc, SystemExit) and _stop_signalled
        )
        record["status"] = "interrupted" if stopped else "failed"
        record["error"] = _one_line(exc)
        record["traceback"] = traceback.format_exc()
        record["finished_at"] = _now()
        record["wall_time_s"] = round(time.perf_counter() - wall_start, 3)
        write_json_atomic(record_path, record)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise RunFailed(f"run {rid} failed: {record['error']} (record: {record_path})") from exc
    record["finished_at"] = _now()
    record["wall_time_s"] = round(time.perf_counter() - wall_start, 3)
    write_json_atomic(record_path, record)
    return record


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    if isinstance(exc, FerBenchError):
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def record_path_for(config: RunConfig) -> Path:
    cfg = resolve_config(config)
    return run_dir(cfg.output_dir, cfg.run_id()) / RECORD_NAME
