"""``fer-bench report``: the leaderboard (markdown, CSV, JSON, LaTeX) and figures from run records.

Every record under the results directory counts: ``done`` runs give the numbers (mean ± sample
std over seeds of the test accuracy, at the last epoch and at the validation-selected one),
``failed`` and unfinished runs are counted in their cell, and with ``--sweep`` the runs the grid
expects but nobody ran are counted as missing, so a thin cell is never mistaken for a complete
one. Numbers the papers reported are shown beside ours with their source and setting and never
take part in the best-per-column marking.

One module per job, none importing torch at module level (``fer-bench status`` and ``report``
answer without it):

``load``      records (run directories and kept ``<run_id>.json``) -> one row per run; sweeps
``variants``  naming rows by the settings that set a run apart (``mtac[au_weight=0]``)
``aggregate`` cells: mean/std/n per protocol, Δ vs CE with a paired test, gap recovered
``tables``    the tables as data; ``markdown`` and ``latex`` render them
``papers``    the papers' numbers and their setting (backbone, pretraining, epoch selection)
``plots``     accuracy figures; ``curves`` learning curves and confusion matrices
``keep``      compact records for committing (``--keep-records``)
``build``     the whole report; ``cli`` the command
"""

from __future__ import annotations

from .aggregate import aggregate, diagnostics_table, paired_difference
from .build import build_report
from .cli import register_cli
from .common import CELL_COLUMNS, DEFAULT_OUT, DIAGNOSTICS, KEYS, SELECT, warn
from .keep import compact_record, keep_records
from .load import expected_runs, load_runs, record_row
from .papers import load_paper_numbers, paper_cells
from .plots import plot_accuracy
from .tables import format_cell, format_stat
from .variants import label_variants, variant_of

__all__ = [
    "CELL_COLUMNS",
    "DEFAULT_OUT",
    "DIAGNOSTICS",
    "KEYS",
    "SELECT",
    "aggregate",
    "build_report",
    "compact_record",
    "diagnostics_table",
    "expected_runs",
    "format_cell",
    "format_stat",
    "keep_records",
    "label_variants",
    "load_paper_numbers",
    "load_runs",
    "paired_difference",
    "paper_cells",
    "plot_accuracy",
    "record_row",
    "register_cli",
    "variant_of",
    "warn",
]
