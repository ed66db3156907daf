"""The leaderboard's tables as plain data (title, headers, rows of text, notes), built once and
rendered to markdown (:mod:`.markdown`) and LaTeX (:mod:`.latex`) alike.

Per dataset: the accuracy table of one epoch selection (methods as rows; noise levels as
columns, or protocols where a dataset's runs mix noise types or use measured noise), then Δ vs
CE with its paired test, then the share of CE's clean-vs-noisy gap each method recovers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .common import (
    CONTROLS,
    DIAGNOSTICS,
    PAIRED_TEST,
    RATE_TYPES,
    SELECT_SHORT,
    base_method,
    is_clean,
    is_nan,
    method_key,
    protocol_key,
    protocol_label,
    uses_protocols,
)
from .papers import footnote

PAPERS_INTRO = (
    "Reported by the papers (not run here; not ranked; each note gives the backbone, its "
    "pretraining and how the epoch was chosen, which differ from our rows):"
)


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    intro: str = ""
    level: int = 2  # markdown heading level


@dataclass
class Group:
    """One accuracy table's scope: a dataset and its columns, as (noise type, noise) pairs."""

    dataset: str
    title: str
    columns: list[tuple[str, float]]
    headers: list[str]


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


def noise_header(noise: float) -> str:
    return f"{noise:g}%"


def groups(cells: Any, papers: list[dict[str, Any]]) -> list[Group]:
    """The accuracy tables, in order: per dataset either one table over its protocols or one
    per noise type over its noise levels (with the papers' levels added as columns)."""
    out = []
    for dataset in sorted(set(cells["dataset"])):
        ours = cells[cells["dataset"] == dataset]
        ref = [p for p in papers if p["dataset"] == dataset]
        types = set(ours["noise_type"])
        if uses_protocols(types):
            keys = set(zip(ours["noise_type"], ours["noise"], strict=True))
            keys |= {(p["noise_type"], p["noise"]) for p in ref if p["noise_type"] in types}
            columns = sorted(keys, key=lambda k: protocol_key(*k))
            labels = dict(
                zip(
                    zip(ours["noise_type"], ours["noise"], strict=True),
                    ours["protocol"],
                    strict=True,
                )
            )
            headers = _unique([labels.get(k) or protocol_label(*k) for k in columns], columns)
            out.append(Group(dataset, f"{dataset}, noise protocols", columns, headers))
            continue
        for noise_type in sorted(types):
            levels = set(ours[ours["noise_type"] == noise_type]["noise"])
            levels |= {p["noise"] for p in ref if p["noise_type"] == noise_type}
            columns = [(noise_type, x) for x in sorted(levels)]
            headers = [noise_header(x) for _, x in columns]
            out.append(Group(dataset, f"{dataset}, {noise_type} noise", columns, headers))
    return out


def _unique(headers: list[str], columns: list[tuple[str, float]]) -> list[str]:
    seen: dict[str, int] = {}
    for h in headers:
        seen[h] = seen.get(h, 0) + 1
    return [f"{h} ({t})" if seen[h] > 1 else h for h, (t, _) in zip(headers, columns, strict=True)]


def _in_group(cells: Any, group: Group) -> Any:
    keys = set(group.columns)
    mask = [
        d == group.dataset and (t, x) in keys
        for d, t, x in zip(cells["dataset"], cells["noise_type"], cells["noise"], strict=True)
    ]
    return cells[mask]


def _methods(frame: Any) -> list[str]:
    return sorted(set(frame["method"]), key=method_key)


def control_notes(methods: list[str], short: bool = False) -> list[str]:
    """``ce_aux (the control for mtac) missing`` where a method's control has no row."""
    bases = {base_method(m) for m in methods}
    why = (
        ""
        if short
        else ": without it, what {m} gains over CE cannot be told apart from what its "
        "auxiliary heads alone give"
    )
    return [
        f"{control} (the control for {method}) missing" + why.format(m=method) + "."
        for method, control in CONTROLS.items()
        if method in bases and control not in bases
    ]


def accuracy_table(
    cells: Any, group: Group, papers: list[dict[str, Any]], select: str, marks: dict
) -> Table:
    """``marks`` numbers the papers' footnotes across the whole document."""
    ours = _in_group(cells, group)
    rows = []
    for method in _methods(ours):
        by_key = {(r["noise_type"], r["noise"]): format_cell(r) for _, r in _rows(ours, method)}
        rows.append([method, *(by_key.get(k, "–") for k in group.columns)])
    ref = [
        p
        for p in papers
        if p["dataset"] == group.dataset and (p["noise_type"], p["noise"]) in set(group.columns)
    ]
    used = []
    for label in sorted({paper_label(p) for p in ref}):
        by_key = {}
        for p in (p for p in ref if paper_label(p) == label):
            key = (p["source"], p["where"], p.get("note") or "")
            mark = marks.setdefault(key, (len(marks) + 1, p))[0]
            used.append(mark)
            by_key[(p["noise_type"], p["noise"])] = f"{p['value']:.2f} [{mark}]"
        rows.append([label, *(by_key.get(k, "") for k in group.columns)])
    notes = control_notes(_methods(ours))
    if used:
        notes.append(PAPERS_INTRO)
        notes += [
            footnote(m, p) for m, p in sorted(marks.values(), key=lambda v: v[0]) if m in used
        ]
    return Table(f"{group.title} — {SELECT_SHORT[select]}", ["method", *group.headers], rows, notes)


def paper_label(number: dict[str, Any]) -> str:
    """``scn (paper, IR50)``: the backbone in the row itself, so that nobody reads a reported
    number as one more row of ours."""
    backbone = str(number.get("backbone") or "").split(" (")[0].split(",")[0].strip()
    return f"{number['method']} (paper, {backbone})" if backbone else f"{number['method']} (paper)"


def _rows(frame: Any, method: str) -> Any:
    return frame[frame["method"] == method].iterrows()


def format_delta(row: Any) -> str:
    n = int(row["delta_ce_n"])
    if n == 0 or is_nan(row["delta_ce_mean"]):
        return "–"
    std = "–" if is_nan(row["delta_ce_std"]) else f"{row['delta_ce_std']:.2f}"
    text = f"{row['delta_ce_mean']:+.2f} ± {std} ({n})"
    p = row["p_value"]
    if not is_nan(p):
        text += ", p < 0.001" if p < 0.001 else f", p = {p:.3f}"
    return text


def delta_table(cells: Any, group: Group, select: str) -> Table | None:
    ours = _in_group(cells, group)
    rows = []
    for method in _methods(ours):
        if method == "ce":
            continue
        by_key = {(r["noise_type"], r["noise"]): format_delta(r) for _, r in _rows(ours, method)}
        if any(v != "–" for v in by_key.values()):
            rows.append([method, *(by_key.get(k, "–") for k in group.columns)])
    if not rows:
        return None
    notes = [
        "Δ = method − CE (`ce`), test accuracy in points, paired per seed: a seed gives every "
        "method the same noisy labels. Mean ± sample std over the seeds both finished (n); "
        f"p: {PAIRED_TEST}, not corrected for multiple comparisons. With 3 seeds only large, "
        "consistent differences reach p < 0.05.",
        *control_notes([r[0] for r in rows], short=True),
    ]
    title = f"Δ vs CE — {group.title}, {SELECT_SHORT[select]}"
    return Table(title, ["method", *group.headers], rows, notes, level=3)


def gap_table(cells: Any, group: Group, select: str) -> Table | None:
    ours = _in_group(cells, group)
    columns = [
        (k, h) for k, h in zip(group.columns, group.headers, strict=True) if not is_clean(*k)
    ]
    rows = []
    for method in _methods(ours):
        if method == "ce":
            continue
        by_key = {
            (r["noise_type"], r["noise"]): "–"
            if is_nan(r["gap_recovered"])
            else f"{100 * r['gap_recovered']:.0f} %"
            for _, r in _rows(ours, method)
        }
        if any(by_key.get(k, "–") != "–" for k, _ in columns):
            rows.append([method, *(by_key.get(k, "–") for k, _ in columns)])
    if not rows:
        return None
    notes = [
        "The share of cross-entropy's clean-vs-noisy gap a method recovers under each noisy "
        "protocol: (acc − acc CE) / (acc CE on clean labels − acc CE), from the means above. "
        "0 % = no better than CE, 100 % = as good as CE trained on the clean labels; – where CE "
        "lost no accuracy to the noise or a cell is missing.",
        *control_notes([r[0] for r in rows], short=True),
    ]
    title = f"Clean-vs-noisy gap recovered — {group.title}, {SELECT_SHORT[select]}"
    return Table(title, ["method", *(h for _, h in columns)], rows, notes, level=3)


def selection_tables(
    cells: Any, papers: list[dict[str, Any]], select: str, marks: dict
) -> list[Table]:
    """Every table of one epoch selection, dataset by dataset."""
    out: list[Table] = []
    for group in groups(cells, papers):
        out.append(accuracy_table(cells, group, papers, select, marks))
        out += [
            t for t in (delta_table(cells, group, select), gap_table(cells, group, select)) if t
        ]
    return out


DIAGNOSTICS_INTRO = (
    "ROC-AUC of the given-label probability and of the method's sample weight for telling "
    "flipped labels from clean ones, and the precision (restored / changed) and recall "
    "(restored / noisy labels) of relabeling; mean ± std (n) over seeds of finished runs, – "
    "where the method has no such quantity (or, for recall, where a record predates it)."
)


def diagnostics_table(diag: Any) -> Table | None:
    if diag is None or diag.empty:
        return None
    headers = ["dataset", "noise type", "method", "noise", *(label for _, label in DIAGNOSTICS)]
    rows = []
    for _, r in diag.iterrows():
        stats = [
            format_stat(r[f"{k}_mean"], r[f"{k}_std"], int(r[f"{k}_n"]), digits=3)
            for k, _ in DIAGNOSTICS
        ]
        if r["noise_type"] in RATE_TYPES or is_nan(r.get("noise_actual")):
            noise = noise_header(r["noise"])
        else:
            noise = f"{r['noise_actual']:.1f}% measured"
        rows.append([r["dataset"], r["noise_type"], r["method"], noise, *stats])
    notes = control_notes(sorted(set(diag["method"])), short=True)
    return Table("Noise diagnostics", headers, rows, notes, intro=DIAGNOSTICS_INTRO)
