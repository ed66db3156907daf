"""``leaderboard.md``: the tables of :mod:`.tables` as GitHub markdown, with the figures linked."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .common import SELECT_TEXT, display_path, now
from .tables import Table


def table_markdown(table: Table) -> list[str]:
    from tabulate import tabulate

    lines = [f"{'#' * table.level} {table.title}", ""]
    if table.intro:
        lines += [table.intro, ""]
    body = tabulate(table.rows, headers=table.headers, tablefmt="github", disable_numparse=True)
    lines += [body, ""]
    for note in table.notes:
        lines += [note, ""]
    return lines


def header_lines(select: str, results_dir: str, runs: Any) -> list[str]:
    lines = [
        "# Leaderboard",
        "",
        f"Test accuracy (%) at the {SELECT_TEXT[select]}: mean ± sample std over seeds (number "
        "of seeds). Best mean per column in bold. `failed`, `unfinished` and `missing` count runs "
        f"that gave no number. Records: `{display_path(results_dir)}`. Generated {now()}.",
        "",
        "Every table comes twice: at the last epoch and at the epoch with the best validation "
        "accuracy. No number is selected on the test set.",
        "",
    ]
    done = runs[runs["status"] == "done"]
    setups = sorted({s for s in done["setup"] if isinstance(s, str)})
    if setups:
        lines += [f"Our runs: {'; '.join(setups)}.", ""]
    held_out = {v for v in done["val_labels"] if isinstance(v, str)}
    if "noisy" in held_out:
        lines += [
            "Where a dataset has no validation split of its own, the validation split is held "
            "out of the noisy training set, so the selection sees noisy labels, as a "
            "practitioner's would.",
            "",
        ]
    return lines


def figures_lines(out_dir: Path, figures: Iterable[Path]) -> list[str]:
    pngs = [Path(p) for p in figures if str(p).endswith(".png")]
    if not pngs:
        return []
    lines = ["## Figures", "", "Each PNG (200 dpi) has a PDF beside it.", ""]
    for path in pngs:
        try:
            rel = path.relative_to(out_dir)
        except ValueError:
            rel = path
        lines.append(f"- [{rel.as_posix()}]({rel.as_posix()})")
    return [*lines, ""]


def leaderboard_markdown(
    tables: list[Table],
    after: list[Table],
    select: str,
    results_dir: str,
    runs: Any,
    figures: tuple[Path, list[Path]] | None = None,
) -> str:
    lines = header_lines(select, results_dir, runs)
    for table in tables:
        lines += table_markdown(table)
    for table in after:  # diagnostics, compute
        lines += table_markdown(table)
    if figures is not None:
        lines += figures_lines(*figures)
    return "\n".join(lines)
