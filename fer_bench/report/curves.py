"""Per-epoch figures: learning curves and confusion matrices.

``plots/curves/<dataset>-<noise type>-<noise>``: validation and test accuracy per epoch, one
line per method, mean with a ±1 std band over seeds (noisy labels are memorised late; this is
where it shows). ``plots/confusion/<dataset>-<noise type>-<noise>-<method>`` (``--confusion``):
the test confusion matrix at the report's epoch selection, summed over seeds, rows normalised.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fer_bench.errors import FerBenchError

from .common import (
    RATE_TYPES,
    SELECT_SHORT,
    is_clean,
    method_key,
    protocol_label,
    safe_name,
)
from .plots import legend_outside, pyplot, save

CONFUSION_FORMS = "clean, a noise level (30), a measured protocol (real, annotator) or TYPE:LEVEL"


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _label(runs: Any) -> str:
    noise_type, noise = runs["noise_type"].iloc[0], runs["noise"].iloc[0]
    actual = None if noise_type in RATE_TYPES else runs["noise_actual"].mean()
    return protocol_label(noise_type, noise, actual)


def plot_curves(runs: Any, out_dir: Path) -> list[Path]:
    """One figure per dataset × noise type × noise level with per-epoch history."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    done = runs[
        (runs["status"] == "done") & runs["curve"].map(lambda c: isinstance(c, list) and bool(c))
    ]
    written: list[Path] = []
    for (dataset, noise_type, noise), group in done.groupby(["dataset", "noise_type", "noise"]):
        has_val = any(not math.isnan(v) for c in group["curve"] for _, v, _ in c)
        panels = [("validation", 1), ("test", 2)] if has_val else [("test", 2)]
        fig, axes = plt.subplots(
            1, len(panels), figsize=(4.2 * len(panels) + 1.8, 3.6), sharey=True, squeeze=False
        )
        methods = sorted(set(group["method"]), key=method_key)
        for i, method in enumerate(methods):
            curves = list(group[group["method"] == method]["curve"])
            epochs = sorted({e for c in curves for e, _, _ in c})
            for ax, (_, index) in zip(axes[0], panels, strict=True):
                by_epoch = {e: [] for e in epochs}
                for c in curves:
                    for point in c:
                        by_epoch[point[0]].append(point[index])
                stats = [_mean_std(by_epoch[e]) for e in epochs]
                mean = [m for m, _ in stats]
                low = [m - s for m, s in stats]
                high = [m + s for m, s in stats]
                color = f"C{i % 10}"
                ax.plot(epochs, mean, color=color, linewidth=1.2, label=f"{method} ({len(curves)})")
                ax.fill_between(epochs, low, high, color=color, alpha=0.18, linewidth=0)
        for ax, (name, _) in zip(axes[0], panels, strict=True):
            ax.set_title(f"{name} accuracy", fontsize=9)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("accuracy (%)")
        legend_outside(axes[0][-1])
        fig.suptitle(
            f"{dataset}, {_label(group)}: accuracy per epoch, mean ± 1 std over seeds (n)",
            fontsize=10,
        )
        stem = out_dir / "curves" / f"{dataset}-{noise_type}-{noise:g}"
        written += save(fig, stem)
    return written


def confusion_matcher(spec: str) -> Any:
    """``(noise_type, noise) -> bool`` for one ``--confusion`` value."""
    from fer_bench.config import NOISE_TYPES

    text = str(spec).strip()
    if text == "clean":
        return is_clean
    kind, _, level = text.partition(":") if ":" in text else ("", "", text)
    if kind or text in NOISE_TYPES:
        kind = kind or text
        if kind not in NOISE_TYPES:
            raise FerBenchError(
                f"--confusion {spec}: unknown noise type '{kind}'; known: {', '.join(NOISE_TYPES)}"
            )
        if not level or level == kind:
            return lambda t, x: t == kind
        rate = _rate(level, spec)
        return lambda t, x: t == kind and float(x) == rate
    rate = _rate(text, spec)
    return lambda t, x: t in RATE_TYPES and float(x) == rate


def _rate(text: str, spec: str) -> float:
    try:
        return float(text.rstrip("%"))
    except ValueError:
        raise FerBenchError(f"--confusion {spec}: expected {CONFUSION_FORMS}") from None


def plot_confusions(runs: Any, specs: list[str], out_dir: Path, select: str) -> list[Path]:
    """A row-normalised test confusion matrix per method at each protocol ``specs`` names."""
    column = f"confusion_{select}"
    done = runs[(runs["status"] == "done") & runs[column].map(lambda c: isinstance(c, list))]
    written: list[Path] = []
    for spec in specs:
        match = confusion_matcher(spec)
        hits = done[[match(t, x) for t, x in zip(done["noise_type"], done["noise"], strict=True)]]
        if hits.empty:
            from .common import warn

            warn(f"--confusion {spec}: no finished run at that noise level")
            continue
        for (dataset, noise_type, noise, method), group in hits.groupby(
            ["dataset", "noise_type", "noise", "method"]
        ):
            stem = f"{dataset}-{noise_type}-{noise:g}-{safe_name(method)}"
            written += _confusion_figure(group, column, out_dir / "confusion" / stem, select)
    return written


def _confusion_figure(group: Any, column: str, stem: Path, select: str) -> list[Path]:
    plt = pyplot()
    matrices = list(group[column])
    size = len(matrices[0])
    total = [[sum(m[i][j] for m in matrices) for j in range(size)] for i in range(size)]
    share = [[100 * v / (sum(row) or 1) for v in row] for row in total]
    names = next((n for n in group["class_names"] if isinstance(n, list)), None)
    names = names if names and len(names) == size else [str(i) for i in range(size)]
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * size, 0.8 + 0.62 * size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=100)
    for i in range(size):
        for j in range(size):
            colour = "white" if share[i][j] > 60 else "black"
            ax.text(j, i, f"{share[i][j]:.0f}", ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(size))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(size))
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (% of row)")
    method = group["method"].iloc[0]
    ax.set_title(
        f"{method}: {group['dataset'].iloc[0]}, {_label(group)}\n"
        f"test set, {SELECT_SHORT[select]}, {len(matrices)} seed(s) summed",
        fontsize=9,
    )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return save(fig, stem)
