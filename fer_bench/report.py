"""``fer-bench report``: the leaderboard (markdown, CSV, JSON) and plots from the run records.

Every record under the results directory counts: ``done`` runs give the numbers (mean ± sample
std over seeds of the final test accuracy), ``failed`` and unfinished runs are counted in their
cell, and with ``--sweep`` the runs the grid expects but nobody ran are counted as missing, so
a thin cell is never mistaken for a complete one. Numbers the papers reported are shown beside
ours with their source and never take part in the best-per-column marking.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections import Counter
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fer_bench.errors import FerBenchError

KEYS = ["dataset", "noise_type", "method", "noise"]
SELECT = {"last": "last", "val": "selected"}
DIAGNOSTICS = [
    ("given_label_auc", "given-label AUC"),
    ("weight_auc", "weight AUC"),
    ("relabel_precision", "relabel precision"),
]
CELL_COLUMNS = [*KEYS, "mean", "std", "n", "failed", "unfinished", "missing", "best", "source"]


def warn(message: str) -> None:
    print(f"fer-bench: warning: {message}", file=sys.stderr)


# --- loading ----------------------------------------------------------------------------------


def load_runs(results_dir: str | Path, select: str = "last") -> Any:
    """One row per readable record; unreadable ones are skipped with a warning line."""
    import pandas as pd

    from fer_bench.results import RECORD_NAME, read_record

    rows = []
    for path in sorted(Path(results_dir).rglob(RECORD_NAME)):
        try:
            rows.append(record_row(read_record(path), select, path.parent.name))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            reason = exc.__class__.__name__ if not str(exc) else str(exc).splitlines()[0]
            warn(f"skipping unreadable record {path}: {reason}")
    columns = [
        "run_id",
        *KEYS,
        "seed",
        "status",
        "error",
        "accuracy",
        *(k for k, _ in DIAGNOSTICS),
        "variant",
    ]
    return pd.DataFrame(rows, columns=columns)


def record_row(record: dict[str, Any], select: str, fallback_id: str) -> dict[str, Any]:
    """The fields the report needs; raises on a record that lacks them."""
    if not isinstance(record, dict):
        raise TypeError("not a JSON object")
    config = record["config"]
    status = record["status"]
    row: dict[str, Any] = {
        "run_id": record.get("run_id") or fallback_id,
        "dataset": str(config["dataset"]),
        "noise_type": str(config.get("noise_type") or "symmetric"),
        "method": str(config["method"]),
        "noise": float(config["noise"]),
        "seed": int(config["seed"]),
        "status": status,
        "error": record.get("error"),
        "accuracy": math.nan,
        "variant": variant_of(config, record.get("identity")),
    }
    for key, _ in DIAGNOSTICS:
        row[key] = math.nan
    if status == "done":
        row["accuracy"] = float(record["final"][SELECT[select]]["test"]["accuracy"])
        diag = record.get("diagnostics") or {}
        for key in ("given_label_auc", "weight_auc"):
            row[key] = _num(diag.get(key))
        relabel = diag.get("relabel") or {}
        row["relabel_precision"] = _num(relabel.get("precision"))
    return row


def variant_of(config: dict[str, Any], identity: dict[str, Any] | None = None) -> str:
    """A run's settings besides the leaderboard keys and the seed, as JSON ``{name: value}``.

    Built from the run's identity (what its run id hashes: no device or paths, input files by
    content); records older than stored identities fall back to their config. Method options
    appear with the method's defaults filled in, under their own names; dataset options as
    ``dataset.<name>``. Settings an older record lacks take today's defaults.
    """
    from fer_bench.config import RunConfig, run_settings

    if identity is None:
        identity = run_settings(config)
    base = run_settings({**RunConfig().to_dict(), "noise_type": identity.get("noise_type")})
    flat: dict[str, str] = {}
    for key, value in {**base, **identity}.items():
        if key in (*KEYS, "seed"):
            continue
        if key == "method_options":
            options = {**_method_defaults(str(identity.get("method"))), **(value or {})}
            flat.update({_option_key(k): json.dumps(v) for k, v in options.items()})
        elif key == "dataset_options":
            flat.update({f"dataset.{k}": json.dumps(v) for k, v in (value or {}).items()})
        else:
            flat[key] = json.dumps(value)
    return json.dumps(flat, sort_keys=True)


@functools.cache
def _method_defaults(name: str) -> dict[str, Any]:
    """The method's options and defaults; empty for a method this installation does not know."""
    from fer_bench.options import declared_options
    from fer_bench.registry import METHODS

    try:
        factory = METHODS.get(name)
    except FerBenchError:
        return {}
    return declared_options(factory)


def _option_key(name: str) -> str:
    """A method option's column name: its own, unless a run setting has that name too."""
    from fer_bench.config import RunConfig

    return f"method.{name}" if name in RunConfig.__dataclass_fields__ else name


def label_variants(*frames: Any) -> None:
    """Name each run's entry: its method, plus the settings that set it apart from the runs of
    the same method on the same dataset and noise type, e.g. ``mtac[au_weight=0, va_weight=0]``.

    Only settings that vary among those runs are considered, and a run shows the ones where it
    departs from the reference: the method's default for a method option, else the value most
    of the runs have. So a plain sweep keeps plain method names, and in an ablation the default
    configuration is the plain row. A run in several frames takes its settings from the first.
    """
    import pandas as pd

    frames = tuple(f for f in frames if f is not None and len(f))
    if not frames:
        return
    both = pd.concat([f[["run_id", "dataset", "noise_type", "method", "variant"]] for f in frames])
    labels: dict[str, str] = {}
    for (_, _, method), group in both.drop_duplicates("run_id").groupby(
        ["dataset", "noise_type", "method"]
    ):
        variants = {
            rid: json.loads(v) for rid, v in zip(group["run_id"], group["variant"], strict=True)
        }
        defaults = {_option_key(k): json.dumps(v) for k, v in _method_defaults(method).items()}
        reference: dict[str, str | None] = {}
        for key in sorted({k for v in variants.values() for k in v}):
            values = [v.get(key) for v in variants.values()]
            if len(set(values)) > 1:
                reference[key] = defaults.get(key, Counter(values).most_common(1)[0][0])
        for rid, variant in variants.items():
            shown = [
                f"{k}={_plain(variant.get(k))}"
                for k, ref in reference.items()
                if variant.get(k) != ref
            ]
            labels[rid] = f"{method}[{', '.join(shown)}]" if shown else method
    for frame in frames:
        frame["method"] = frame["run_id"].map(labels)


def _plain(text: str | None) -> str:
    if text is None:
        return "default"
    value = json.loads(text)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str) and len(value) == 40 and all(c in "0123456789abcdef" for c in value):
        return value[:10]  # a file's sha1 (pretrained weights, noise file)
    return str(value)


def _num(value: Any) -> float:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    )


def expected_runs(sweep_file: str | Path) -> Any:
    """The runs a sweep file expands to: run id and the leaderboard keys of each."""
    import pandas as pd

    from fer_bench import runner
    from fer_bench.sweep import load_sweep

    sweep = load_sweep(sweep_file)
    rows = {}
    for config in sweep.configs:
        cfg = runner.resolve_config(config)
        identity = cfg.identity()
        run_id = cfg.run_id(identity)
        rows[run_id] = {
            "run_id": run_id,
            "dataset": cfg.dataset,
            "noise_type": cfg.noise_type,
            "method": cfg.method,
            "noise": float(cfg.noise),
            "seed": cfg.seed,
            "variant": variant_of(cfg.to_dict(), identity),
        }
    return pd.DataFrame(list(rows.values()), columns=["run_id", *KEYS, "seed", "variant"])


def load_paper_numbers(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The reported numbers with their citation resolved; a malformed file is an error."""
    if path is None:
        text = resources.files("fer_bench").joinpath("paper_numbers.yaml").read_text()
        where = "fer_bench/paper_numbers.yaml"
    else:
        text, where = Path(path).read_text(), str(path)
    data = yaml.safe_load(text) or {}
    sources = data.get("sources") or {}
    out = []
    required = ("method", "dataset", "noise_type", "noise", "metric", "value", "source", "where")
    for i, entry in enumerate(data.get("numbers") or []):
        missing = [k for k in required if k not in entry]
        if missing:
            raise FerBenchError(f"{where}: number {i} lacks {', '.join(missing)}")
        if entry["source"] not in sources:
            raise FerBenchError(f"{where}: number {i} cites unknown source '{entry['source']}'")
        out.append({**entry, "noise": float(entry["noise"]), "citation": sources[entry["source"]]})
    return out


# --- aggregation ------------------------------------------------------------------------------


def aggregate(runs: Any, expected: Any | None = None) -> Any:
    """One row per (dataset, noise type, method, noise level): mean, std, n and the gaps."""
    import pandas as pd

    done = runs[runs["status"] == "done"]
    stats = done.groupby(KEYS)["accuracy"].agg(mean="mean", std="std", n="count")
    parts = [stats]
    for name, mask in (
        ("failed", runs["status"] == "failed"),
        ("unfinished", ~runs["status"].isin(["done", "failed"])),
    ):
        parts.append(runs[mask].groupby(KEYS).size().rename(name))
    if expected is not None and len(expected):
        absent = expected[~expected["run_id"].isin(runs["run_id"])]
        parts.append(absent.groupby(KEYS).size().rename("missing"))
    table = pd.concat(parts, axis=1).reset_index()
    for col in ("n", "failed", "unfinished", "missing"):
        if col not in table:
            table[col] = 0
        table[col] = table[col].fillna(0).astype(int)
    if table.empty:
        table = pd.DataFrame(columns=[*KEYS, "mean", "std", "n", "failed", "unfinished", "missing"])
    table["best"] = False
    scored = table[table["n"] > 0]
    if len(scored):
        top = scored.groupby(["dataset", "noise_type", "noise"])["mean"].transform("max")
        best_idx = scored.index[scored["mean"].round(2) == top.round(2)]
        table.loc[best_idx, "best"] = True
    table["source"] = "fer-bench"
    return table.sort_values(KEYS, key=_method_order).reset_index(drop=True)[CELL_COLUMNS]


def _method_order(col: Any) -> Any:
    """Sort the cross-entropy baseline first, the rest alphabetically."""
    if col.name == "method":
        return col.map(lambda m: (m.split("[")[0] != "ce", m))
    return col


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
    return pd.concat(frames, axis=1).reset_index().sort_values(KEYS, key=_method_order)


# --- formatting -------------------------------------------------------------------------------


def format_stat(mean: float, std: float, n: int, digits: int = 2) -> str:
    if n == 0 or mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    spread = "–" if std is None or math.isnan(std) else f"{std:.{digits}f}"
    return f"{mean:.{digits}f} ± {spread} ({n})"


def format_cell(row: Any) -> str:
    text = format_stat(row["mean"], row["std"], int(row["n"]))
    if row["best"]:
        text = f"**{text}**"
    notes = [f"{k}: {int(row[k])}" for k in ("failed", "unfinished", "missing") if row[k]]
    return "; ".join([text, *notes])


def _noise_header(noise: float) -> str:
    return f"{noise:g}%"


def _display_path(path: str) -> str:
    """Relative to the working directory where possible: committed tables carry no machine paths."""
    import os

    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def leaderboard_markdown(
    cells: Any, papers: list[dict[str, Any]], diag: Any, select: str, results_dir: str
) -> str:
    from tabulate import tabulate

    what = "last epoch" if select == "last" else "epoch with the best validation accuracy"
    lines = [
        "# Leaderboard",
        "",
        f"Test accuracy (%) at the {what}: mean ± sample std over seeds (number of seeds). "
        "Best mean per column in bold. `failed`, `unfinished` and `missing` count runs that gave no "
        f"number. Records: `{_display_path(results_dir)}`. Generated {_now()}.",
        "",
    ]
    footnotes: dict[tuple[str, str, str], tuple[int, dict[str, Any]]] = {}
    for (dataset, noise_type), group in cells.groupby(["dataset", "noise_type"], sort=False):
        ours = group[group["source"] == "fer-bench"]
        ref = [p for p in papers if p["dataset"] == dataset and p["noise_type"] == noise_type]
        noises = sorted(set(ours["noise"]) | {p["noise"] for p in ref})
        headers = ["method", *(_noise_header(x) for x in noises)]
        rows = []
        for method, mrows in ours.groupby("method", sort=False):
            by_noise = {r["noise"]: format_cell(r) for _, r in mrows.iterrows()}
            rows.append([method, *(by_noise.get(x, "–") for x in noises)])
        for method in sorted({p["method"] for p in ref}):
            by_noise = {}
            for p in (p for p in ref if p["method"] == method):
                key = (p["source"], p["where"], p.get("note") or "")
                mark = footnotes.setdefault(key, (len(footnotes) + 1, p))[0]
                by_noise[p["noise"]] = f"{p['value']:.2f} [{mark}]"
            rows.append([f"{method} (paper)", *(by_noise.get(x, "") for x in noises)])
        lines += [f"## {dataset}, {noise_type} noise", ""]
        lines += [tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), ""]
    if footnotes:
        lines += ["Reported by the papers (not run here; not ranked):", ""]
        for mark, p in footnotes.values():
            note = f" Note: {p['note']}." if p.get("note") else ""
            url = p["citation"].get("url")
            lines.append(
                f"[{mark}] {p['citation']['paper']}; {p['where']}"
                + (f"; {url}" if url else "")
                + f".{note}"
            )
        lines.append("")
    lines += diagnostics_markdown(diag)
    return "\n".join(lines)


def diagnostics_markdown(diag: Any) -> list[str]:
    from tabulate import tabulate

    if diag is None or diag.empty:
        return []
    lines = [
        "## Noise diagnostics",
        "",
        "ROC-AUC of the given-label probability and of the method's sample weight for telling "
        "flipped labels from clean ones, and the precision of relabeling; mean ± std (n) over "
        "seeds of finished runs, – where the method has no such quantity.",
        "",
    ]
    headers = ["dataset", "noise type", "method", "noise", *(label for _, label in DIAGNOSTICS)]
    rows = []
    for _, r in diag.iterrows():
        stats = [
            format_stat(r[f"{k}_mean"], r[f"{k}_std"], int(r[f"{k}_n"]), digits=3)
            for k, _ in DIAGNOSTICS
        ]
        rows.append([r["dataset"], r["noise_type"], r["method"], _noise_header(r["noise"]), *stats])
    lines += [tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), ""]
    return lines


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _clean(value: Any) -> Any:
    """JSON-safe: NaN -> null, numpy scalars -> Python."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def paper_cells(papers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reported numbers in the shape of our cells, for the CSV and JSON."""
    return [
        {
            "dataset": p["dataset"],
            "noise_type": p["noise_type"],
            "method": p["method"],
            "noise": p["noise"],
            "mean": float(p["value"]),
            "std": None,
            "n": None,
            "failed": None,
            "unfinished": None,
            "missing": None,
            "best": False,
            "source": f"{p['citation']['paper']}; {p['where']}",
        }
        for p in papers
    ]


# --- plots ------------------------------------------------------------------------------------


def plot_accuracy(
    cells: Any, papers: list[dict[str, Any]], out_dir: Path, select: str
) -> list[Path]:
    """One PNG per dataset and noise type: accuracy against noise level, a line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    ours = cells[(cells["source"] == "fer-bench") & (cells["n"] > 0)]
    for (dataset, noise_type), group in ours.groupby(["dataset", "noise_type"], sort=False):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for i, (method, rows) in enumerate(group.groupby("method", sort=False)):
            rows = rows.sort_values("noise")
            color = f"C{i % 10}"
            ax.errorbar(
                rows["noise"],
                rows["mean"],
                yerr=rows["std"].fillna(0.0),
                marker="o",
                capsize=3,
                color=color,
                label=f"{method} (±1 std over seeds)",
            )
            ref = [
                p
                for p in papers
                if (p["dataset"], p["noise_type"], p["method"]) == (dataset, noise_type, method)
            ]
            if ref:
                ax.scatter(
                    [p["noise"] for p in ref],
                    [p["value"] for p in ref],
                    marker="x",
                    color=color,
                    label=f"{method} (paper)",
                )
        ax.set_xlabel(f"{noise_type} label noise (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(
            f"{dataset}: test accuracy at the {'last' if select == 'last' else 'val-selected'} epoch"
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{dataset}-{noise_type}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


# --- the whole report -------------------------------------------------------------------------


def build_report(
    results_dir: str | Path,
    out_dir: str | Path,
    select: str = "last",
    sweep_file: str | Path | None = None,
    plots: bool = True,
    paper_numbers: str | Path | None = None,
) -> dict[str, Any]:
    """Write leaderboard.md/.csv/.json (and plots/) under ``out_dir``; return the JSON content."""
    import pandas as pd

    if select not in SELECT:
        raise FerBenchError(f"--select must be one of {', '.join(SELECT)}, got '{select}'")
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    if not results_dir.is_dir():
        raise FerBenchError(f"no results directory {results_dir}")
    runs = load_runs(results_dir, select)
    expected = expected_runs(sweep_file) if sweep_file else None
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

    cells = aggregate(runs, expected)
    papers = load_paper_numbers(paper_numbers)
    shown = {(d, t) for d, t in zip(cells["dataset"], cells["noise_type"], strict=True)}
    papers = [p for p in papers if (p["dataset"], p["noise_type"]) in shown]
    diag = diagnostics_table(runs)

    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = leaderboard_markdown(cells, papers, diag, select, str(results_dir))
    (out_dir / "leaderboard.md").write_text(markdown)

    records = [{k: _clean(v) for k, v in row.items()} for row in cells.to_dict("records")]
    all_cells = records + paper_cells(papers)
    pd.DataFrame(all_cells, columns=CELL_COLUMNS).to_csv(out_dir / "leaderboard.csv", index=False)
    diag_records = [{k: _clean(v) for k, v in row.items()} for row in diag.to_dict("records")]
    content = {
        "metric": "test accuracy (%)",
        "select": select,
        "results_dir": str(results_dir),
        "sweep": str(sweep_file) if sweep_file else None,
        "generated_at": _now(),
        "runs": {
            "done": int((runs["status"] == "done").sum()),
            "failed": int((runs["status"] == "failed").sum()),
            "unfinished": int((~runs["status"].isin(["done", "failed"])).sum()),
            "missing": int(cells["missing"].sum()),
        },
        "cells": all_cells,
        "failures": [
            {"run_id": r["run_id"], "error": r["error"]}
            for r in runs[runs["status"] == "failed"].to_dict("records")
        ],
        "diagnostics": diag_records,
        "papers": papers,
    }
    (out_dir / "leaderboard.json").write_text(json.dumps(content, indent=1) + "\n")
    content["markdown"] = markdown
    content["plots"] = (
        [str(p) for p in plot_accuracy(cells, papers, out_dir / "plots", select)] if plots else []
    )
    return content


def register_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report",
        help="write the leaderboard (markdown, CSV, JSON) and plots from the run records",
        description="Aggregate every run record under --results into a leaderboard.",
    )
    p.add_argument(
        "--results", help="run records (default: the sweep's output_dir, else results/runs)"
    )
    p.add_argument("--out", default="results", help="where to write leaderboard.* and plots/")
    p.add_argument(
        "--select",
        choices=sorted(SELECT),
        default="last",
        help="last epoch (default) or the epoch with the best validation accuracy",
    )
    p.add_argument("--sweep", help="count the runs this sweep file expects but that are absent")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    results = args.results
    if results is None:
        from fer_bench.sweep import load_sweep

        results = load_sweep(args.sweep).output_dir if args.sweep else Path("results/runs")
    content = build_report(
        results, args.out, select=args.select, sweep_file=args.sweep, plots=not args.no_plots
    )
    print(content["markdown"])
    out = Path(args.out)
    written = [out / "leaderboard.md", out / "leaderboard.csv", out / "leaderboard.json"]
    print("wrote " + ", ".join(str(p) for p in [*written, *content["plots"]]), file=sys.stderr)
    return 0
