"""The leaderboard's compute table: what a run of each method cost, where it ran.

Measured from the records themselves (wall time summed over a run's attempts, its epochs, the
device and the torch threads), so a two-network method's price is stated beside the numbers it
bought, on the hardware that made them, and compared with CE's on the same hardware.
"""

from __future__ import annotations

from typing import Any

from .common import method_key
from .tables import Table

COMPUTE_INTRO = (
    "Wall time of finished runs (training, per-epoch validation and test evaluation; summed over "
    "resumed attempts), median over runs, grouped by the hardware that ran them; × CE is the "
    "ratio to CE's median per epoch on the same dataset and hardware. On a machine shared with other "
    "work the times include the contention; `fer-bench bench` measures throughput alone."
)


def compute_table(runs: Any) -> Table | None:
    done = runs[
        (runs["status"] == "done")
        & runs["hardware"].notna()
        & (runs["wall_time_s"] > 0)
        & (runs["epochs_run"] > 0)
    ].copy()
    if done.empty:
        return None
    done["per_epoch"] = done["wall_time_s"] / done["epochs_run"]
    rows = []
    for (dataset, hardware), group in done.groupby(["dataset", "hardware"], sort=True):
        medians = group.groupby("method")["per_epoch"].median()
        ce = medians.get("ce")
        for method in sorted(medians.index, key=method_key):
            mine = group[group["method"] == method]
            ratio = f"{medians[method] / ce:.1f}" if ce else "–"
            rows.append(
                [
                    dataset,
                    hardware,
                    method,
                    str(len(mine)),
                    f"{medians[method]:.1f}",
                    f"{mine['wall_time_s'].median() / 60:.1f}",
                    ratio,
                ]
            )
    headers = ["dataset", "hardware", "method", "runs", "s / epoch", "min / run", "× CE"]
    return Table("Compute", headers, rows, intro=COMPUTE_INTRO)
