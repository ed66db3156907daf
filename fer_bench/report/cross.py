"""The cross-dataset table: evaluation records (``fer-bench eval``) as train x test dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def cross_dataset_rows(results_dir: Path) -> list[dict[str, Any]]:
    """One row per (train dataset, method, noise, test dataset): accuracy mean, std, seeds."""
    import pandas as pd

    from fer_bench.evaluate import read_evaluations

    evals = read_evaluations(results_dir)
    if not evals:
        return []
    frame = pd.DataFrame(
        {
            "train_dataset": e["train_dataset"],
            "method": e["method"],
            "noise": f"{e['noise_type']} {e['noise']:g}",
            "test_dataset": e["test_dataset"],
            "classes": len(e["classes"]),
            "seed": e["seed"],
            "accuracy": e["metrics"]["accuracy"],
        }
        for e in evals
    )
    keys = ["train_dataset", "method", "noise", "test_dataset", "classes"]
    grouped = frame.groupby(keys, sort=True)["accuracy"]
    out = grouped.agg(["mean", "std", "count"]).reset_index()
    return [
        {
            **{k: row[k] for k in keys},
            "mean": row["mean"],
            "std": row["std"],
            "n": int(row["count"]),
        }
        for row in out.to_dict("records")
    ]


def cross_dataset_markdown(rows: list[dict[str, Any]]) -> str:
    """Rows: trained on (dataset, method, noise); columns: the test set evaluated on."""
    if not rows:
        return ""
    tests = sorted({r["test_dataset"] for r in rows})
    trained = sorted({(r["train_dataset"], r["method"], r["noise"]) for r in rows})
    cell = {(r["train_dataset"], r["method"], r["noise"], r["test_dataset"]): r for r in rows}
    lines = [
        "## Cross-dataset evaluation",
        "",
        "Test accuracy (%) of each run's final weights on another dataset's test split "
        "(`fer-bench eval`), mean ± std over seeds (n); classes matched by name, the ones only "
        "one side has dropped (shared classes in brackets).",
        "",
        "| trained on | method | noise | " + " | ".join(tests) + " |",
        "|---|---|---|" + "---|" * len(tests),
    ]
    for train, method, noise in trained:
        parts = []
        for test in tests:
            r = cell.get((train, method, noise, test))
            if r is None:
                parts.append("–")
                continue
            std = "" if r["n"] < 2 else f" ± {r['std']:.2f}"
            parts.append(f"{r['mean']:.2f}{std} (n={r['n']}) [{r['classes']}]")
        lines.append(f"| {train} | {method} | {noise} | " + " | ".join(parts) + " |")
    return "\n".join(lines) + "\n"
