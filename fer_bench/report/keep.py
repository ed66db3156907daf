"""``--keep-records DIR``: the run records a committed leaderboard was made from, kept small.

Each finished run (``done`` or ``failed``) is written to ``DIR/<run_id>.json``: its record
without the traceback, and with a per-epoch history cut to the numbers the report draws
(accuracy, mean per-class accuracy and macro-F1 of validation and test, the training scalars
and the noise diagnostics' scalars, to 4 decimals). The final metrics keep everything, exact,
confusion matrices included. ``fer-bench report --results DIR`` reads such a directory like run directories, so a
fresh clone regenerates the committed tables, plots and LaTeX from the kept records alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

KEPT_STATUSES = ("done", "failed")
_EPOCH_METRICS = ("accuracy", "mean_class_accuracy", "macro_f1", "n")
_RELABEL_SCALARS = ("changed", "restored", "corrupted", "noisy", "precision", "recall")
KEPT_NOTE = (
    "kept by fer-bench report --keep-records: the run record without its traceback, the "
    "per-epoch history cut to scalars (no per-epoch confusion matrices or per-class accuracies)"
)


def compact_record(record: dict[str, Any]) -> dict[str, Any]:
    """The record to commit. Compacting a compact record changes nothing."""
    out = {k: v for k, v in record.items() if k not in ("traceback", "kept")}
    history = record.get("history")
    if isinstance(history, list):
        out["history"] = [_compact_epoch(e) for e in history if isinstance(e, dict)]
    out["kept"] = KEPT_NOTE
    return out


def _short(value: Any) -> Any:
    """History numbers to 4 decimals (a curve needs no more; the final metrics stay exact)."""
    return round(value, 4) if isinstance(value, float) else value


def _scalars(values: Any) -> dict[str, Any]:
    if not isinstance(values, dict):
        return {}
    return {
        k: _short(v)
        for k, v in values.items()
        if v is None or (isinstance(v, int | float | str) and not isinstance(v, bool))
    }


def _compact_epoch(entry: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: _short(entry[k]) for k in ("epoch", "lr") if k in entry}
    if "train" in entry:
        out["train"] = _scalars(entry["train"])
    for split in ("val", "test"):
        if split in entry:
            metrics = entry[split]
            out[split] = (
                None
                if not isinstance(metrics, dict)
                else {k: _short(metrics[k]) for k in _EPOCH_METRICS if k in metrics}
            )
    diag = entry.get("diagnostics")
    if isinstance(diag, dict):
        kept = _scalars(diag)
        relabel = diag.get("relabel")
        kept["relabel"] = (
            {k: _short(relabel[k]) for k in _RELABEL_SCALARS if k in relabel}
            if isinstance(relabel, dict)
            else None
        )
        out["diagnostics"] = kept
    return out


def keep_records(runs: Any, directory: str | Path) -> list[Path]:
    """Write the finished runs among ``runs`` (the report's table: one row per run, with the
    path it was read from) to ``directory/<run_id>.json``; return the files written."""
    from fer_bench.results import kept_record_path, read_record, write_json_atomic

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for row in runs[runs["status"].isin(KEPT_STATUSES)].to_dict("records"):
        target = kept_record_path(directory, row["run_id"])
        write_json_atomic(target, compact_record(read_record(row["path"])))
        written.append(target)
    return written
