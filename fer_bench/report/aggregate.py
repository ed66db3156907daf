"""From one row per run to one cell per (dataset, noise type, method, noise level).

A cell is the mean, sample std and number of seeds of the finished runs, the counts of runs that
gave no number, and the comparison with cross-entropy: the paired difference per seed (every
method sees the same noisy labels for a seed) with a paired t-test, and for a noisy protocol the
share of CE's clean-vs-noisy gap that the method recovers.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from .common import (
    CELL_COLUMNS,
    DIAGNOSTICS,
    KEYS,
    RATE_TYPES,
    is_clean,
    method_order,
    protocol_key,
    protocol_label,
)

#: The row every other row is compared with: the plain cross-entropy baseline.
BASELINE = "ce"


def aggregate(runs: Any, expected: Any | None = None, column: str = "accuracy") -> Any:
    """One row per (dataset, noise type, method, noise level): mean, std, n, the runs that gave
    no number, the measured noise rate and the comparison with CE (:func:`add_comparisons`)."""
    import pandas as pd

    done = runs[runs["status"] == "done"]
    stats = done.groupby(KEYS)[column].agg(mean="mean", std="std", n="count")
    parts = [stats]
    for name, mask in (
        ("failed", runs["status"] == "failed"),
        ("unfinished", ~runs["status"].isin(["done", "failed"])),
    ):
        parts.append(runs[mask].groupby(KEYS).size().rename(name))
    if expected is not None and len(expected):
        absent = expected[~expected["run_id"].isin(runs["run_id"])]
        parts.append(absent.groupby(KEYS).size().rename("missing"))
    if "noise_actual" in runs and len(runs):
        parts.append(runs.groupby(KEYS)["noise_actual"].mean())
    table = pd.concat(parts, axis=1).reset_index()
    for col in ("n", "failed", "unfinished", "missing"):
        if col not in table:
            table[col] = 0
        table[col] = table[col].fillna(0).astype(int)
    if table.empty:
        table = pd.DataFrame(columns=[*KEYS, "mean", "std", "n", "failed", "unfinished", "missing"])
    if "noise_actual" not in table:
        table["noise_actual"] = math.nan
    table["best"] = False
    scored = table[table["n"] > 0]
    if len(scored):
        top = scored.groupby(["dataset", "noise_type", "noise"])["mean"].transform("max")
        best_idx = scored.index[scored["mean"].round(2) == top.round(2)]
        table.loc[best_idx, "best"] = True
    table["source"] = "fer-bench"
    table["protocol"] = [protocol_of(table, i) for i in table.index]
    add_comparisons(table, runs, column)
    return table.sort_values(KEYS, key=method_order).reset_index(drop=True)[CELL_COLUMNS]


def protocol_of(cells: Any, index: Any) -> str:
    """The protocol's header, with the rate measured over every run of the protocol."""
    row = cells.loc[index]
    same = cells[
        (cells["dataset"] == row["dataset"])
        & (cells["noise_type"] == row["noise_type"])
        & (cells["noise"] == row["noise"])
    ]
    actual = same["noise_actual"].mean() if row["noise_type"] not in RATE_TYPES else None
    return protocol_label(row["noise_type"], row["noise"], actual)


def paired_difference(method: list[float], baseline: list[float]) -> dict[str, Any]:
    """Mean and sample std of the per-seed differences and the paired t-test's p-value (None
    with fewer than two pairs, or where the differences do not vary)."""
    diffs = [m - b for m, b in zip(method, baseline, strict=True)]
    n = len(diffs)
    out: dict[str, Any] = {"delta_ce_n": n, "delta_ce_mean": math.nan, "delta_ce_std": math.nan}
    out["p_value"] = math.nan
    if n == 0:
        return out
    mean = sum(diffs) / n
    out["delta_ce_mean"] = mean
    if n < 2:
        return out
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    out["delta_ce_std"] = std
    if std > 0:
        from scipy.stats import ttest_rel

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(ttest_rel(method, baseline).pvalue)
        out["p_value"] = p if math.isfinite(p) else math.nan
    return out


def add_comparisons(cells: Any, runs: Any, column: str) -> None:
    """Fill Δ vs CE (paired over the seeds both have), its p-value and the gap recovered, in
    place. CE is the plain ``ce`` row of the same dataset and protocol; the gap of method m
    under protocol p is (acc m,p − acc CE,p) / (acc CE,clean − acc CE,p), from the means."""
    for col in ("delta_ce_mean", "delta_ce_std", "p_value", "gap_recovered"):
        cells[col] = math.nan
    cells["delta_ce_n"] = 0
    if cells.empty:
        return
    done = runs[runs["status"] == "done"]
    by_cell = {
        key: dict(zip(group["seed"], group[column], strict=True))
        for key, group in done.groupby(KEYS)
    }
    means = {
        (r["dataset"], r["noise_type"], r["method"], r["noise"]): r["mean"]
        for r in cells.to_dict("records")
        if r["n"] > 0
    }
    for i, row in cells.iterrows():
        dataset, noise_type, method, noise = (row[k] for k in KEYS)
        if method == BASELINE or row["n"] == 0:
            continue
        ours = by_cell.get((dataset, noise_type, method, noise), {})
        ce = by_cell.get((dataset, noise_type, BASELINE, noise), {})
        seeds = sorted(set(ours) & set(ce))
        pair = paired_difference([ours[s] for s in seeds], [ce[s] for s in seeds])
        for key, value in pair.items():
            cells.at[i, key] = value
        cells.at[i, "gap_recovered"] = _gap(means, dataset, noise_type, method, noise)


def _gap(means: dict[tuple, float], dataset: str, noise_type: str, method: str, noise: float):
    if is_clean(noise_type, noise):
        return math.nan
    noisy_ce = means.get((dataset, noise_type, BASELINE, noise))
    clean = [
        (protocol_key(t, x), m)
        for (d, t, name, x), m in means.items()
        if d == dataset and name == BASELINE and is_clean(t, x)
    ]
    if noisy_ce is None or not clean:
        return math.nan
    clean_ce = min(clean)[1]  # symmetric 0 first
    gap = clean_ce - noisy_ce
    if not gap > 0:
        return math.nan  # CE lost nothing to the noise: there is no gap to recover
    return (means[(dataset, noise_type, method, noise)] - noisy_ce) / gap


def diagnostics_table(runs: Any) -> Any:
    """Per dataset, noise type, method and noise level: mean, std and n of each diagnostic."""
    import pandas as pd

    done = runs[runs["status"] == "done"]
    if done.empty:
        return pd.DataFrame(columns=[*KEYS])
    frames = []
    for key, _ in DIAGNOSTICS:
        agg = done.groupby(KEYS)[key].agg(["mean", "std", "count"])
        agg.columns = [f"{key}_mean", f"{key}_std", f"{key}_n"]
        frames.append(agg)
    frames.append(done.groupby(KEYS)["noise_actual"].mean())
    table = pd.concat(frames, axis=1).reset_index()
    return table.sort_values(KEYS, key=method_order).reset_index(drop=True)
