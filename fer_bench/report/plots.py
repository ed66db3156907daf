"""Accuracy figures: ``plots/<dataset>-<noise type>`` (accuracy against noise level, a line per
method), ``plots/<dataset>-protocols`` (one dot per method and protocol) and, for a table with a
single noise level (an ablation), a dot chart per variant with every seed shown.

Every figure is written as a 200-dpi PNG and a PDF beside it; x ticks sit at the measured levels
only, methods are dodged so that error bars do not hide each other, the legend is outside the
data. Error bars are ±1 sample std over seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import SELECT_SHORT, method_key, protocol_key, uses_protocols

DPI = 200


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, stem: Path) -> list[Path]:
    """``stem.png`` (200 dpi) and ``stem.pdf`` (no creation date: the same figure, the same
    bytes); closes the figure."""
    plt = pyplot()
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")
    fig.savefig(png, dpi=DPI, bbox_inches="tight")
    fig.savefig(pdf, bbox_inches="tight", metadata={"CreationDate": None})
    plt.close(fig)
    return [png, pdf]


def legend_outside(ax: Any) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8)


def dodge(count: int, width: float) -> list[float]:
    """Offsets that spread ``count`` series over ``width`` around each x."""
    if count <= 1:
        return [0.0] * count
    step = width / (count - 1)
    return [(i - (count - 1) / 2) * step for i in range(count)]


def plot_accuracy(
    cells: Any,
    papers: list[dict[str, Any]],
    out_dir: Path,
    select: str,
    runs: Any | None = None,
    column: str = "accuracy",
) -> list[Path]:
    """The accuracy figures of every dataset; returns the files written (PNG, PDF, ...)."""
    written: list[Path] = []
    ours = cells[(cells["source"] == "fer-bench") & (cells["n"] > 0)]
    for dataset in sorted(set(ours["dataset"])):
        frame = ours[ours["dataset"] == dataset]
        if uses_protocols(set(frame["noise_type"])):
            written += _protocol_chart(frame, dataset, out_dir, select)
            continue
        for noise_type in sorted(set(frame["noise_type"])):
            group = frame[frame["noise_type"] == noise_type]
            stem = out_dir / f"{dataset}-{noise_type}"
            if group["noise"].nunique() == 1:
                written += _dot_chart(group, runs, column, stem, select)
            else:
                ref = [
                    p for p in papers if (p["dataset"], p["noise_type"]) == (dataset, noise_type)
                ]
                written += _line_chart(group, ref, stem, select)
    return written


def _line_chart(group: Any, ref: list[dict[str, Any]], stem: Path, select: str) -> list[Path]:
    plt = pyplot()
    dataset, noise_type = group["dataset"].iloc[0], group["noise_type"].iloc[0]
    levels = sorted(set(group["noise"]) | {p["noise"] for p in ref})
    methods = sorted(set(group["method"]), key=method_key)
    offsets = dodge(len(methods), 0.03 * (max(levels) - min(levels) or 1.0))
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for i, method in enumerate(methods):
        rows = group[group["method"] == method].sort_values("noise")
        color = f"C{i % 10}"
        ax.errorbar(
            rows["noise"] + offsets[i],
            rows["mean"],
            yerr=rows["std"].fillna(0.0),
            marker="o",
            markersize=4,
            capsize=2,
            linewidth=1.2,
            elinewidth=1,
            color=color,
            label=method,
        )
        mine = [p for p in ref if p["method"] == method]
        if mine:
            ax.scatter(
                [p["noise"] for p in mine],
                [p["value"] for p in mine],
                marker="x",
                color=color,
                label=f"{method} (paper; other backbone/pretraining)",
            )
    ax.set_xticks(levels)
    ax.set_xticklabels([f"{x:g}" for x in levels])
    ax.set_xlabel(f"{noise_type} label noise (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{dataset}: test accuracy, {SELECT_SHORT[select]} (mean ± 1 std over seeds)")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    return save(fig, stem)


def _dot_chart(group: Any, runs: Any | None, column: str, stem: Path, select: str) -> list[Path]:
    """One row per variant: every seed as a small dot, the mean ± std as a bar over them."""
    plt = pyplot()
    dataset, noise_type = group["dataset"].iloc[0], group["noise_type"].iloc[0]
    noise = group["noise"].iloc[0]
    methods = sorted(set(group["method"]), key=method_key)
    fig, ax = plt.subplots(figsize=(6.4, 1.2 + 0.35 * len(methods)))
    for i, method in enumerate(methods):
        y = len(methods) - 1 - i
        row = group[group["method"] == method].iloc[0]
        if runs is not None:
            seeds = runs[
                (runs["status"] == "done")
                & (runs["dataset"] == dataset)
                & (runs["noise_type"] == noise_type)
                & (runs["noise"] == noise)
                & (runs["method"] == method)
            ][column]
            # just under the mean's bar, so that a seed at mean ± std stays visible
            ax.scatter(seeds, [y - 0.22] * len(seeds), s=12, color="0.5", zorder=2)
        std = 0.0 if row["std"] != row["std"] else row["std"]
        ax.errorbar(row["mean"], y, xerr=std, fmt="o", color=f"C{i % 10}", capsize=3, zorder=3)
    ax.set_yticks(range(len(methods)))
    ax.set_yticklabels(list(reversed(methods)), fontsize=8)
    ax.set_xlabel("test accuracy (%)")
    ax.set_title(
        f"{dataset}, {noise_type} noise {noise:g}%: {SELECT_SHORT[select]}\n"
        "grey: each seed; colour: mean ± 1 std over seeds",
        fontsize=9,
    )
    ax.grid(axis="x", alpha=0.3)
    return save(fig, stem)


def _protocol_chart(frame: Any, dataset: str, out_dir: Path, select: str) -> list[Path]:
    """Protocols on the x axis (categories, not a scale), methods dodged within each."""
    plt = pyplot()
    keys = sorted(
        set(zip(frame["noise_type"], frame["noise"], strict=True)), key=lambda k: protocol_key(*k)
    )
    labels = dict(
        zip(zip(frame["noise_type"], frame["noise"], strict=True), frame["protocol"], strict=True)
    )
    methods = sorted(set(frame["method"]), key=method_key)
    offsets = dodge(len(methods), 0.7)
    fig, ax = plt.subplots(figsize=(max(6.4, 1.4 * len(keys) + 2), 4))
    for i, method in enumerate(methods):
        rows = frame[frame["method"] == method]
        xs, ys, es = [], [], []
        for j, key in enumerate(keys):
            hit = rows[(rows["noise_type"] == key[0]) & (rows["noise"] == key[1])]
            if len(hit):
                xs.append(j + offsets[i])
                ys.append(hit["mean"].iloc[0])
                es.append(0.0 if hit["std"].isna().iloc[0] else hit["std"].iloc[0])
        ax.errorbar(
            xs, ys, yerr=es, fmt="o", markersize=4, capsize=2, color=f"C{i % 10}", label=method
        )
    for j in range(len(keys) - 1):
        ax.axvline(j + 0.5, color="0.85", linewidth=0.8)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([labels[k] for k in keys])
    ax.set_xlabel("training labels (protocol; measured noise rate)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{dataset}: test accuracy, {SELECT_SHORT[select]} (mean ± 1 std over seeds)")
    ax.grid(axis="y", alpha=0.3)
    legend_outside(ax)
    return save(fig, out_dir / f"{dataset}-protocols")
