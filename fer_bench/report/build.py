"""The whole report: records in, ``leaderboard.md|csv|json|tex`` and ``plots/`` out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fer_bench.errors import FerBenchError
from fer_bench.sweep import Sweep, load_sweep

from .aggregate import aggregate, diagnostics_table
from .common import (
    CELL_COLUMNS,
    KEYS,
    PAIRED_TEST,
    SELECT,
    clean,
    display_path,
    now,
    warn,
)
from .compute import compute_table
from .latex import leaderboard_latex
from .load import expected_runs, load_runs
from .markdown import leaderboard_markdown
from .papers import load_paper_numbers, paper_cells
from .tables import diagnostics_table as diagnostics_tables
from .tables import selection_tables
from .variants import label_variants


def select_runs(
    results_dir: Path, select: str, sweep_file: str | Path | None, sweep: Sweep | None = None
) -> tuple[Any, Any]:
    """The runs the report counts (named by variant) and the runs the sweep expects; a sweep's
    ``kept_records`` count where ``results_dir`` has no record of that run."""
    import pandas as pd

    runs = load_runs(results_dir, select)
    if sweep_file and sweep is None:
        sweep = load_sweep(sweep_file)
    kept_dir = sweep.kept_records if sweep else None
    if kept_dir is not None and kept_dir.is_dir() and kept_dir != Path(results_dir).resolve():
        kept = load_runs(kept_dir, select)
        kept = kept[~kept["run_id"].isin(runs["run_id"])]
        runs = pd.concat([runs, kept], ignore_index=True) if len(kept) else runs
    expected = expected_runs(sweep) if sweep else None
    if expected is not None:
        outside = runs[~runs["run_id"].isin(expected["run_id"])]
        if len(outside):
            warn(f"{len(outside)} record(s) under {results_dir} are not in {sweep_file}; left out")
        runs = runs[runs["run_id"].isin(expected["run_id"])]
    if runs.empty and (expected is None or expected.empty):
        raise FerBenchError(f"no run records under {results_dir}")
    runs = runs.sort_values("status", key=lambda s: s != "done", kind="stable")
    repeated = runs["run_id"].duplicated()
    if repeated.any():
        warn(
            f"{int(repeated.sum())} record(s) repeat a run id found elsewhere under {results_dir}; "
            "each run counts once (a finished copy first)"
        )
        runs = runs[~repeated]
    runs = runs.copy()
    label_variants(expected, runs)  # a sweep's own configs name its runs
    same = runs[runs["status"] == "done"].duplicated([*KEYS, "seed"], keep=False)
    if same.any():
        warn(
            f"{int(same.sum())} finished runs of one entry share a seed but not a run id (records "
            "from different fer-bench versions?); each counts in its cell"
        )
    return runs, expected


def _records(frame: Any) -> list[dict[str, Any]]:
    return [{k: clean(v) for k, v in row.items()} for row in frame.to_dict("records")]


def build_report(
    results_dir: str | Path,
    out_dir: str | Path,
    select: str = "last",
    sweep_file: str | Path | None = None,
    plots: bool = True,
    paper_numbers: str | Path | None = None,
    confusion: list[str] | None = None,
    keep_records: str | Path | None = None,
) -> dict[str, Any]:
    """Write leaderboard.md/.csv/.json/.tex (and plots/) under ``out_dir``; return the JSON
    content. ``select`` is the epoch selection of the CSV and the JSON's ``cells`` (the JSON
    holds both); ``confusion`` names the protocols to draw confusion matrices at;
    ``keep_records`` copies the finished records, compacted, to that directory."""
    import pandas as pd

    if select not in SELECT:
        raise FerBenchError(f"--select must be one of {', '.join(SELECT)}, got '{select}'")
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    sweep = load_sweep(sweep_file) if sweep_file else None
    kept_dir = sweep.kept_records if sweep else None
    if not results_dir.is_dir() and not (kept_dir and kept_dir.is_dir()):
        raise FerBenchError(f"no results directory {results_dir}")
    runs, expected = select_runs(results_dir, select, sweep_file, sweep)
    cells = {name: aggregate(runs, expected, f"accuracy_{name}") for name in SELECT}
    papers = load_paper_numbers(paper_numbers)
    shown = set(zip(cells[select]["dataset"], cells[select]["noise_type"], strict=True))
    papers = [p for p in papers if (p["dataset"], p["noise_type"]) in shown]
    diag = diagnostics_table(runs)

    out_dir.mkdir(parents=True, exist_ok=True)
    figures: list[Path] = []
    if plots:
        from .curves import plot_confusions, plot_curves
        from .plots import plot_accuracy

        plot_dir = out_dir / "plots"
        column = f"accuracy_{select}"
        figures += plot_accuracy(cells[select], papers, plot_dir, select, runs, column)
        figures += plot_curves(runs, plot_dir)
        figures += plot_confusions(runs, list(confusion or []), plot_dir, select)

    marks: dict = {}
    order = [select, *(name for name in SELECT if name != select)]
    tables = [t for name in order for t in selection_tables(cells[name], papers, name, marks)]
    diag_table = diagnostics_tables(diag)
    compute = compute_table(runs)
    after = [t for t in (diag_table, compute) if t is not None]
    markdown = leaderboard_markdown(
        tables, after, select, str(results_dir), runs, (out_dir, figures)
    )
    from .cross import cross_dataset_markdown, cross_dataset_rows

    cross = cross_dataset_rows(results_dir)
    if cross:
        markdown = markdown.rstrip("\n") + "\n\n" + cross_dataset_markdown(cross)
    (out_dir / "leaderboard.md").write_text(markdown)
    generated = now()
    latex_tables = [*tables, *after]
    (out_dir / "leaderboard.tex").write_text(leaderboard_latex(latex_tables, generated))

    padding = {k: None for k in CELL_COLUMNS}
    reported = [{**padding, **c} for c in paper_cells(papers)]
    by_select = {name: _records(cells[name]) + reported for name in SELECT}
    all_cells = by_select[select]
    pd.DataFrame(all_cells, columns=CELL_COLUMNS).to_csv(out_dir / "leaderboard.csv", index=False)
    content = {
        "metric": "test accuracy (%)",
        "select": select,
        "results_dir": display_path(results_dir),
        "sweep": str(sweep_file) if sweep_file else None,
        "generated_at": generated,
        "runs": {
            "done": int((runs["status"] == "done").sum()),
            "failed": int((runs["status"] == "failed").sum()),
            "unfinished": int((~runs["status"].isin(["done", "failed"])).sum()),
            "missing": int(cells[select]["missing"].sum()),
        },
        "cells": all_cells,
        "cells_by_select": by_select,
        "paired_test": PAIRED_TEST,
        "failures": [
            {"run_id": r["run_id"], "error": r["error"]}
            for r in runs[runs["status"] == "failed"].to_dict("records")
        ],
        "diagnostics": _records(diag),
        "compute": [dict(zip(compute.headers, row, strict=True)) for row in compute.rows]
        if compute
        else [],
        "cross_dataset": [{k: clean(v) for k, v in r.items()} for r in cross],
        "papers": papers,
    }
    (out_dir / "leaderboard.json").write_text(json.dumps(content, indent=1) + "\n")
    content["markdown"] = markdown
    content["plots"] = [str(p) for p in figures]
    content["kept_records"] = []
    if keep_records is not None:
        from .keep import keep_records as keep

        content["kept_records"] = [str(p) for p in keep(runs, keep_records)]
    return content
