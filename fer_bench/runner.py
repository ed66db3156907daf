"""One run end to end: dataset -> noise -> trainer <-> method -> result record.

``run_experiment`` is idempotent: a run whose record says ``done`` is returned untouched; any
other run resumes from its last epoch checkpoint. Bad input is refused by the pre-flight checks
(:mod:`fer_bench.preflight`) before any record exists. A run trains in one process at a time:
the process holds the run directory's lock (:mod:`fer_bench.locks`) from its first record to
its last. Every started run ends with a record: ``done``, ``failed`` (an error: retried only when
asked), or ``interrupted`` (Ctrl-C, SIGTERM, or the scheduler's time-limit/preemption signal:
not a failure, resumed by the next run or requeue).
"""

from __future__ import annotations

import hashlib
import sys
import time
import traceback
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from fer_bench import stopping
from fer_bench.backbones import create_backbone
from fer_bench.checkpoint import unwrapped_state
from fer_bench.config import MEASURED_NOISE_TYPES, RunConfig
from fer_bench.data import FERData, Split
from fer_bench.errors import FerBenchError
from fer_bench.method import DataInfo, Method
from fer_bench.noise import NoisyLabels, inject_noise
from fer_bench.options import declared_options, resolve_options
from fer_bench.registry import (
    DATASETS,
    METHODS,
    check_keywords,
    create_method,
    dataset_run_defaults,
    list_datasets,
)
from fer_bench.results import (
    CHECKPOINT_NAME,
    FINAL_WEIGHTS_NAME,
    LOCK_NAME,
    RECORD_UNITS,
    SCHEMA_VERSION,
    cpu_budget,
    git_commit,
    hardware,
    load_record,
    package_versions,
    record_path,
    run_dir,
    save_torch_atomic,
    write_json_atomic,
)
from fer_bench.trainer import TrainData, Trainer, TrainState


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
    if (config.pretrained or "").startswith("timm:"):
        from fer_bench.pretrained import timm_model_name

        model = timm_model_name(config.pretrained)
        if config.backbone not in (None, model):
            raise FerBenchError(
                f"--pretrained {config.pretrained} holds weights for '{model}', not for "
                f"--backbone {config.backbone}"
            )
        config = replace(config, backbone=model)
    measured = DATASETS.attrs(config.dataset).get("measured_noise", ())
    if config.noise_type in MEASURED_NOISE_TYPES and config.noise_type not in measured:
        having = [
            d
            for d in list_datasets()
            if config.noise_type in DATASETS.attrs(d).get("measured_noise", ())
        ]
        raise FerBenchError(
            f"dataset '{config.dataset}' has no {config.noise_type} noisy labels; "
            f"--noise-type {config.noise_type} needs one that has ({', '.join(having) or 'none'})"
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
        votes=data.train.soft_labels if data.soft_labels_are_votes else None,
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
        "val_labels": "noisy" if val_source.startswith("held-out") else "clean",
        "image_shape": list(data.train.images.shape[1:]),
        "meta": data.meta,
    }
    train_data = TrainData(
        train=train,
        val=val,
        test=data.test,
        clean_train_labels=clean,
        num_classes=data.num_classes,
        val_labels=info["val_labels"],
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


def _previous_record(output_dir: str, rid: str) -> dict[str, Any]:
    """What an earlier attempt recorded; nothing for no record or an unreadable one."""
    record = load_record(output_dir, rid)
    return record.data if record and record.readable else {}


def run_experiment(
    config: RunConfig,
    identity: dict[str, Any] | None = None,
    inputs: dict[str, list[int]] | None = None,
) -> dict[str, Any]:
    """Train (or resume, or return) one run and return its record.

    A sweep job passes the config its launcher resolved, with the identity and input-file
    stamps computed there: it is trained as launched without resolving and hashing again,
    unless a hashed file changed since (then both are redone here)."""
    from fer_bench.locks import FileLock
    from fer_bench.preflight import preflight

    if identity is not None and inputs == config.input_stamps():
        cfg = config
    else:
        cfg = resolve_config(config)
        identity = cfg.identity()
    rid = cfg.run_id(identity)
    directory = run_dir(cfg.output_dir, rid)
    previous = _previous_record(cfg.output_dir, rid)
    if previous.get("status") == "done":
        return previous
    checked = preflight(cfg)  # bad input stops here, before any record
    threads, threads_from = cpu_budget()
    torch.set_num_threads(threads)  # the CPUs this job was given, not every core of the node
    with FileLock(directory / LOCK_NAME, f"run {rid} is already being trained by {{holder}}"):
        previous = _previous_record(cfg.output_dir, rid)  # the last holder may have finished it
        if previous.get("status") == "done":
            return previous
        with stopping.sigterm_interrupts():
            return _train(cfg, identity, rid, checked, previous, threads_from)


def _train(
    cfg: RunConfig,
    identity: dict[str, Any],
    rid: str,
    checked: Any,
    previous: dict[str, Any],
    threads_from: str,
) -> dict[str, Any]:
    directory = run_dir(cfg.output_dir, rid)
    record_file = record_path(cfg.output_dir, rid)
    train_data, noisy, now = checked.train_data, checked.noisy, _now()
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "units": RECORD_UNITS,
        "run_id": rid,
        "status": "running",
        "error": None,
        "traceback": None,
        "config": cfg.to_dict(),
        "identity": identity,
        "method_defaults": declared_options(METHODS.get(cfg.method)),  # for the report
        # A requeued or rerun attempt keeps the first start, the epochs so far and the time spent.
        "first_started_at": previous.get("first_started_at") or previous.get("started_at") or now,
        "started_at": now,
        "attempts": int(previous.get("attempts") or (1 if previous else 0)) + 1,
        "versions": package_versions(),
        "git": git_commit(),
        "hardware": hardware(checked.device, threads_from),
        "dataset": checked.info,
        "noise": {
            "type": cfg.noise_type,
            "rate_requested": cfg.noise,
            "rate_actual": round(noisy.actual_rate * 100, 4),
            "num_flipped": int(noisy.flipped.sum()),
        },
        "history": previous.get("history") or [],
    }
    earlier = float(previous.get("wall_time_s") or 0.0)
    wall_start = time.perf_counter()

    def write(**updates: Any) -> None:
        record.update(updates, wall_time_s=round(earlier + time.perf_counter() - wall_start, 3))
        write_json_atomic(record_file, record)

    write()
    trainer: Trainer | None = None
    try:
        method = build_method(cfg, checked.data, train_data.train, noisy.actual_rate)
        record["method_class"] = f"{type(method).__module__}.{type(method).__qualname__}"

        def on_epoch_end(state: TrainState) -> None:
            write(history=state.history, resumed_from_epoch=trainer.resumed_from)

        trainer = Trainer(
            cfg, method, train_data, checked.device, directory / CHECKPOINT_NAME, on_epoch_end
        )
        # Which path fed the training set (device-resident or streamed from host) and why.
        record["data_placement"] = trainer.placement.to_record()
        state = trainer.fit()
        # What cross-dataset evaluation needs; the optimizer state goes with the checkpoint.
        save_torch_atomic(directory / FINAL_WEIGHTS_NAME, unwrapped_state(trainer.method))
        write(
            status="done",
            history=state.history,
            final=_summary(state.history),
            diagnostics=state.history[-1]["diagnostics"],
            train_seconds=round(state.train_seconds, 3),
            throughput_img_s=round(state.images_seen / state.train_seconds, 1)
            if state.train_seconds
            else None,
            finished_at=_now(),
            resumed_from_epoch=trainer.resumed_from,
        )
    except BaseException as exc:
        stopped = isinstance(exc, KeyboardInterrupt | stopping.Terminated) or (
            isinstance(exc, SystemExit) and stopping.stop_signalled()
        )
        write(
            status="interrupted" if stopped else "failed",
            error=_one_line(exc),
            traceback=traceback.format_exc(),
            finished_at=_now(),
            resumed_from_epoch=getattr(trainer, "resumed_from", None),
        )
        if isinstance(exc, stopping.Terminated):
            print(f"fer-bench: run {rid} stopped by SIGTERM; rerun to resume", file=sys.stderr)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise RunFailed(f"run {rid} failed: {record['error']} (record: {record_file})") from exc
    if not cfg.keep_checkpoint:
        (directory / CHECKPOINT_NAME).unlink(missing_ok=True)
    return record


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, stopping.Terminated):
        return "stopped by SIGTERM"
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    if isinstance(exc, FerBenchError):
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def record_path_for(config: RunConfig) -> Path:
    cfg = resolve_config(config)
    return record_path(cfg.output_dir, cfg.run_id())
