"""``fer-bench report``: its options and what it prints."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fer_bench.config import DEFAULT_OUTPUT_DIR
from fer_bench.errors import FerBenchError

from .common import DEFAULT_OUT, SELECT


def register_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report",
        help="write the leaderboard (markdown, CSV, JSON, LaTeX) and plots from the run records",
        description="Aggregate every run record under --results into a leaderboard.",
    )
    p.add_argument(
        "--results",
        help="run records: run directories (<run_id>/record.json) and/or kept records "
        "(<run_id>.json) [default: the sweep's output_dir, else results/runs]",
    )
    p.add_argument(
        "--out",
        help=f"where to write leaderboard.* and plots/ [{DEFAULT_OUT}, git-ignored]; a directory "
        "that already holds a leaderboard (such as the committed results/) needs --overwrite",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the leaderboard already in --out (how the committed tables are regenerated)",
    )
    p.add_argument(
        "--select",
        choices=sorted(SELECT),
        default="last",
        help="the epoch selection of the CSV, the plots and the first tables: last epoch "
        "(default) or the epoch with the best validation accuracy (the markdown, LaTeX and "
        "JSON hold both)",
    )
    p.add_argument("--sweep", help="count the runs this sweep file expects but that are absent")
    p.add_argument("--no-plots", action="store_true", help="skip the figures")
    p.add_argument(
        "--confusion",
        action="append",
        metavar="PROTOCOL",
        help="also draw each method's test confusion matrix at this protocol: clean, a noise "
        "level (30), real, annotator or TYPE:LEVEL (asymmetric:20); repeatable",
    )
    p.add_argument(
        "--keep-records",
        metavar="DIR",
        help="copy the finished records the report counts to DIR/<run_id>.json, without "
        "tracebacks and with a compact per-epoch history, for committing beside the tables",
    )
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    results = args.results
    if results is None:
        from fer_bench.sweep import load_sweep

        results = load_sweep(args.sweep).output_dir if args.sweep else Path(DEFAULT_OUTPUT_DIR)
    out = Path(args.out) if args.out else DEFAULT_OUT
    existing = out / "leaderboard.md"
    if args.out and existing.exists() and not args.overwrite:
        raise FerBenchError(
            f"{existing} exists (committed tables are rewritten only on purpose); pass "
            f"--overwrite to replace it, or write elsewhere (default: {DEFAULT_OUT})"
        )
    if args.confusion and args.no_plots:
        raise FerBenchError("--confusion draws figures; it cannot go with --no-plots")
    from .curves import confusion_matcher

    for spec in args.confusion or []:
        confusion_matcher(spec)  # a malformed one is refused before anything is read
    from .build import build_report

    content = build_report(
        results,
        out,
        select=args.select,
        sweep_file=args.sweep,
        plots=not args.no_plots,
        confusion=args.confusion,
        keep_records=args.keep_records,
    )
    print(content["markdown"])
    names = ("leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.tex")
    written = [str(out / name) for name in names]
    print("wrote " + ", ".join([*written, *content["plots"]]), file=sys.stderr)
    if args.keep_records:
        kept = len(content["kept_records"])
        print(f"kept {kept} finished record(s) in {args.keep_records}", file=sys.stderr)
    return 0
