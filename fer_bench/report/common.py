"""What every part of the report shares: the leaderboard keys, protocols, ordering, JSON cleaning.

Nothing here imports pandas, matplotlib or torch at module level.
"""

from __future__ import annotations

import math
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

KEYS = ["dataset", "noise_type", "method", "noise"]
#: ``--select``: the record's ``final`` entry each choice reads. Never the test set.
SELECT = {"last": "last", "val": "selected"}
SELECT_TEXT = {
    "last": "last epoch",
    "val": "epoch with the best validation accuracy",
}
SELECT_SHORT = {"last": "last epoch", "val": "validation-selected epoch"}
DIAGNOSTICS = [
    ("given_label_auc", "given-label AUC"),
    ("weight_auc", "weight AUC"),
    ("relabel_precision", "relabel precision"),
    ("relabel_recall", "relabel recall"),
]
COMPARISON_COLUMNS = ["delta_ce_mean", "delta_ce_std", "delta_ce_n", "p_value", "gap_recovered"]
CELL_COLUMNS = [
    *KEYS,
    "mean",
    "std",
    "n",
    "failed",
    "unfinished",
    "missing",
    "best",
    "source",
    "protocol",
    "noise_actual",
    *COMPARISON_COLUMNS,
]
#: Where a report goes unless ``--out`` says otherwise: git-ignored, the user's own. The
#: committed tables under results/ are rewritten only by ``--out results --overwrite``.
DEFAULT_OUT = Path("results/reports")
#: Noise types with a requested rate; at rate 0 they are the clean labels.
RATE_TYPES = ("symmetric", "asymmetric", "bernoulli")
_SHORT_TYPE = {"symmetric": "sym", "asymmetric": "asym", "bernoulli": "bernoulli"}
#: Measured-noise protocols first (the question the benchmark asks), in this order.
_PROTOCOL_ORDER = ("real", "annotator", "file")
#: The test the leaderboard's p-values come from; named in every table that shows them.
PAIRED_TEST = "two-sided paired t-test over seeds (scipy.stats.ttest_rel, n − 1 degrees of freedom)"
#: A method whose fair control is another method: the report shows them side by side.
CONTROLS = {"mtac": "ce_aux"}


def warn(message: str) -> None:
    print(f"fer-bench: warning: {message}", file=sys.stderr)


def num(value: Any) -> float:
    """A finite-or-NaN float from a JSON number; NaN for anything else (None, bools, text)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return math.nan


def is_nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def clean(value: Any) -> Any:
    """JSON-safe: NaN -> null, numpy scalars -> Python."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def display_path(path: str | Path) -> str:
    """Relative to the working directory where possible: committed tables carry no machine paths."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def base_method(label: str) -> str:
    """``mtac`` for ``mtac[au_weight=0]``."""
    return str(label).split("[")[0]


def method_key(label: str) -> tuple[int, str, int, str]:
    """Sort key: the cross-entropy baseline first, the rest alphabetically, and a control right
    before the method it controls (``ce_aux`` beside ``mtac``)."""
    base = base_method(label)
    if base == "ce":
        return (0, "", 0, label)
    controlled = {control: method for method, control in CONTROLS.items()}
    if base in controlled:
        return (1, controlled[base], 0, label)
    return (1, base, 1, label)


def method_order(col: Any) -> Any:
    """For ``DataFrame.sort_values(key=...)``: methods by :func:`method_key`."""
    if col.name == "method":
        return col.map(method_key)
    return col


def is_clean(noise_type: str, noise: float) -> bool:
    return noise_type in RATE_TYPES and float(noise) == 0.0


def protocol_label(noise_type: str, noise: float, actual: float | None = None) -> str:
    """A protocol's column header: ``clean``, ``sym 30 %``, ``real (32.3 %)`` (measured rate)."""
    if noise_type in RATE_TYPES:
        if float(noise) == 0.0:
            return "clean"
        return f"{_SHORT_TYPE[noise_type]} {float(noise):g} %"
    if actual is None or is_nan(actual):
        return noise_type
    return f"{noise_type} ({float(actual):.1f} %)"


def protocol_key(noise_type: str, noise: float) -> tuple[int, int, str, float]:
    """Column order: clean, the measured protocols (real, annotator, file), then rates."""
    if is_clean(noise_type, noise):
        return (0, RATE_TYPES.index(noise_type), "", 0.0)
    if noise_type in _PROTOCOL_ORDER:
        return (1, _PROTOCOL_ORDER.index(noise_type), "", float(noise))
    if noise_type in RATE_TYPES:
        return (2, RATE_TYPES.index(noise_type), "", float(noise))
    return (3, 0, noise_type, float(noise))


def uses_protocols(noise_types: set[str]) -> bool:
    """A dataset's table has one column per protocol (clean, real, annotator, sym 30 %) when its
    runs mix noise types or use a measured one; else one column per noise level, as always."""
    return len(noise_types) > 1 or any(t not in RATE_TYPES for t in noise_types)


def safe_name(text: str) -> str:
    """A file-name-safe version of a label."""
    out = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))
    return out.strip("_") or "x"
