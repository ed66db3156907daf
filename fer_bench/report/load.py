"""Reading run records into one table row per run, and the runs a sweep file expects.

Records are read from a results directory in either layout: ``<run_id>/record.json`` as runs
write them, and ``<run_id>.json`` directly in the directory, as ``--keep-records`` stores them
for committing (see :mod:`fer_bench.report.keep`). Records of every fer-bench version count:
anything a newer version added (identity, stored option defaults, the measured noise rate,
relabel recall, per-epoch history) is optional.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fer_bench.sweep import Sweep

from .common import DIAGNOSTICS, KEYS, SELECT, num, warn
from .variants import method_defaults_of, variant_of

RUN_COLUMNS = [
    "run_id",
    *KEYS,
    "seed",
    "status",
    "error",
    "accuracy",
    "accuracy_last",
    "accuracy_val",
    *(k for k, _ in DIAGNOSTICS),
    "noise_actual",
    "variant",
    "defaults",
    "setup",
    "val_labels",
    "class_names",
    "confusion_last",
    "confusion_val",
    "curve",
    "wall_time_s",
    "epochs_run",
    "hardware",
    "path",
]


def record_paths(results_dir: str | Path) -> list[Path]:
    """Every record under ``results_dir``: run directories' ``record.json`` (at any depth) and
    kept records, ``<run_id>.json`` at the top of the directory."""
    from fer_bench.results import RECORD_NAME

    root = Path(results_dir)
    kept = sorted(p for p in root.glob("*.json") if p.is_file() and p.name != RECORD_NAME)
    return sorted(root.rglob(RECORD_NAME)) + kept


def load_runs(results_dir: str | Path, select: str = "last") -> Any:
    """One row per readable record; unreadable ones are skipped with a warning line."""
    import pandas as pd

    from fer_bench.results import RECORD_NAME, read_record

    rows = []
    for path in record_paths(results_dir):
        fallback = path.parent.name if path.name == RECORD_NAME else path.stem
        try:
            row = record_row(read_record(path), select, fallback)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            reason = exc.__class__.__name__ if not str(exc) else str(exc).splitlines()[0]
            warn(f"skipping unreadable record {path}: {reason}")
            continue
        row["path"] = str(path)
        rows.append(row)
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def record_row(record: dict[str, Any], select: str, fallback_id: str) -> dict[str, Any]:
    """The fields the report needs; raises on a record that lacks them."""
    if not isinstance(record, dict):
        raise TypeError("not a JSON object")
    config = record["config"]
    status = record["status"]
    # The method's option defaults as the run knew them: no need to import the method (torch).
    defaults = record.get("method_defaults")
    defaults = defaults if isinstance(defaults, dict) else None
    noise_info = record.get("noise") if isinstance(record.get("noise"), dict) else {}
    info = record.get("dataset") if isinstance(record.get("dataset"), dict) else {}
    row: dict[str, Any] = {
        "run_id": record.get("run_id") or fallback_id,
        "dataset": str(config["dataset"]),
        "noise_type": str(config.get("noise_type") or "symmetric"),
        "method": str(config["method"]),
        "noise": float(config["noise"]),
        "seed": int(config["seed"]),
        "status": status,
        "error": record.get("error"),
        "noise_actual": num(noise_info.get("rate_actual")),
        "variant": variant_of(config, record.get("identity"), defaults),
        "defaults": None if defaults is None else json.dumps(defaults),
        "setup": setup_of(config),
        "val_labels": info.get("val_labels"),
        "class_names": info.get("class_names"),
        "confusion_last": None,
        "confusion_val": None,
        "curve": None,
        "wall_time_s": num(record.get("wall_time_s")),
        "epochs_run": len(record.get("history") or []),
        "hardware": hardware_label(record.get("hardware")),
    }
    for key in ("accuracy", "accuracy_last", "accuracy_val", *(k for k, _ in DIAGNOSTICS)):
        row[key] = math.nan
    if status == "done":
        final = record["final"]
        for name, entry in SELECT.items():
            # The selection asked for must be there; the other one may be absent.
            test = final[entry]["test"] if name == select else (final.get(entry) or {}).get("test")
            if isinstance(test, dict) and "accuracy" in test:
                row[f"accuracy_{name}"] = float(test["accuracy"])
                row[f"confusion_{name}"] = test.get("confusion")
        row["accuracy"] = row[f"accuracy_{select}"]
        row.update(diagnostic_values(record.get("diagnostics") or {}))
        row["curve"] = curve_of(record.get("history"))
    return row


def hardware_label(hardware: Any) -> str | None:
    """Where a run's time was spent, as the compute table groups it: device and threads."""
    if not isinstance(hardware, dict) or not hardware.get("device"):
        return None
    if str(hardware["device"]).startswith("cuda"):
        return f"{hardware.get('gpu') or 'cuda'}"
    threads = hardware.get("torch_threads")
    where = f"{hardware.get('cpu') or 'cpu'}"
    return f"{where}, {threads} thread{'s' if threads != 1 else ''}" if threads else where


def diagnostic_values(diag: dict[str, Any]) -> dict[str, float]:
    relabel = diag.get("relabel") or {}
    return {
        "given_label_auc": num(diag.get("given_label_auc")),
        "weight_auc": num(diag.get("weight_auc")),
        "relabel_precision": num(relabel.get("precision")),
        # Records before relabel recall was recorded have none: shown as "–", never guessed.
        "relabel_recall": num(relabel.get("recall")),
    }


def curve_of(history: Any) -> list[tuple[int, float, float]] | None:
    """(epoch, validation accuracy, test accuracy) per epoch; NaN where a split is absent."""
    if not isinstance(history, list) or not history:
        return None
    points = []
    for entry in history:
        if not isinstance(entry, dict) or "epoch" not in entry:
            continue
        val, test = entry.get("val") or {}, entry.get("test") or {}
        points.append((int(entry["epoch"]), num(val.get("accuracy")), num(test.get("accuracy"))))
    return points or None


def setup_of(config: dict[str, Any]) -> str:
    """What decides whether two numbers are comparable: backbone, weights, epochs, image size."""
    backbone = config.get("backbone") or "default backbone"
    weights = "pretrained weights" if config.get("pretrained") else "from scratch"
    parts = [str(backbone), weights]
    if config.get("epochs") is not None:
        parts.append(f"{config['epochs']} epochs")
    if config.get("image_size") is not None:
        parts.append(f"{config['image_size']} px")
    return ", ".join(parts)


def expected_runs(sweep_file: str | Path | Sweep) -> Any:
    """The runs a sweep file (or an already loaded sweep) expands to: run id and the
    leaderboard keys of each."""
    import pandas as pd

    from fer_bench.sweep import Sweep, load_sweep, resolve_runs

    sweep = sweep_file if isinstance(sweep_file, Sweep) else load_sweep(sweep_file)
    rows = {}
    for run_id, run in resolve_runs(sweep.configs).items():
        cfg, identity = run.config, run.identity
        rows[run_id] = {
            "run_id": run_id,
            "dataset": cfg.dataset,
            "noise_type": cfg.noise_type,
            "method": cfg.method,
            "noise": float(cfg.noise),
            "seed": cfg.seed,
            "variant": variant_of(cfg.to_dict(), identity),
            "defaults": json.dumps(method_defaults_of(cfg.method)),
        }
    columns = ["run_id", *KEYS, "seed", "variant", "defaults"]
    return pd.DataFrame(list(rows.values()), columns=columns)
