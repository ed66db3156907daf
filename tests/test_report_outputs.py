"""What a paper can use: booktabs LaTeX that compiles, and figures a reviewer accepts (ticks at
the measured levels, dodged error bars, the legend outside, PNG at 200 dpi with a PDF beside it),
learning curves per protocol, ablations as a dot chart and confusion matrices on request."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from report_helpers import ferplus_runs, full_record, write_record

from fer_bench.cli import main
from fer_bench.report import build_report
from fer_bench.report import curves as curves_module
from fer_bench.report import plots as plots_module


@pytest.fixture
def figures(monkeypatch):
    """Capture figures instead of writing them: (file stem, figure) per figure."""
    seen = []

    def capture(fig, stem):
        fig.canvas.draw()
        seen.append((stem.name, fig))
        return []

    monkeypatch.setattr(plots_module, "save", capture)
    monkeypatch.setattr(curves_module, "save", capture)
    yield seen
    plots_module.pyplot().close("all")


def _symmetric_sweep(root, levels=(0, 10, 20, 30)):
    for method in ("ce", "scn", "mtac"):
        for noise in levels:
            for seed in range(2):
                acc = 80.0 - noise / 2 + seed + (method == "scn")
                write_record(
                    root,
                    full_record(
                        method, "symmetric", noise, seed, [acc - 5, acc], dataset="synthetic"
                    ),
                )
    return root


def test_latex_tables_are_booktabs_and_compile(tmp_path):
    root = ferplus_runs(tmp_path / "runs", epochs=2)
    record = full_record("mtac", "real", 0, 0, [60.0, 61.0], rate_actual=32.3)
    record["run_id"] += "-abl"
    record["config"]["method_options"] = {"au_weight": 0}
    write_record(root, record)
    write_record(root, full_record("ce_aux", "real", 0, 0, [70.0, 71.0], rate_actual=32.3))
    build_report(root, tmp_path / "out", plots=False)
    tex = (tmp_path / "out" / "leaderboard.tex").read_text()
    assert tex.count(r"\begin{table}") == tex.count(r"\bottomrule") == tex.count(r"\toprule")
    assert tex.count(r"\begin{table}") >= 7  # 2 selections x (accuracy, Δ, gap) + diagnostics
    assert r"method & clean & real (32.3 \%) & annotator (19.4 \%) \\" in tex
    assert r"ce\_aux &" in tex and r"mtac{[}au\_weight=0{]} &" in tex
    assert r"\textbf{75.00 $\pm$ 0.00 (3)}" in tex
    assert "ttest\\_rel" in tex and all(ord(c) < 128 for c in tex)
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed: structure checked, not compiled")
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        "\\input{out/leaderboard.tex}\n\\end{document}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "doc.pdf").read_bytes()[:5] == b"%PDF-"


def test_noise_level_plot_ticks_dodging_and_legend(tmp_path, figures):
    root = _symmetric_sweep(tmp_path / "runs")
    build_report(root, tmp_path / "out")
    stems = [name for name, _ in figures]
    assert stems[0] == "synthetic-symmetric"
    assert sorted(stems[1:]) == [f"synthetic-symmetric-{x}" for x in (0, 10, 20, 30)]  # curves
    ax = figures[0][1].axes[0]
    assert list(ax.get_xticks()) == [0, 10, 20, 30]  # the measured levels only
    xs = [tuple(c.lines[0].get_xdata()) for c in ax.containers]
    assert len(xs) == 3 and len({x[0] for x in xs}) == 3  # dodged: no two methods share an x
    assert all(abs(x[0]) < 1.0 for x in xs)  # ...but stay at their level
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 > ax.get_window_extent().x1  # outside the data
    curve = figures[1][1]
    assert [a.get_title() for a in curve.axes] == ["validation accuracy", "test accuracy"]
    assert len(curve.axes[0].collections) == 3  # a ±std band per method


def test_a_single_noise_level_is_a_dot_chart_per_variant(tmp_path, figures):
    root = tmp_path / "runs"
    for seed in range(3):
        write_record(
            root, full_record("mtac", "symmetric", 30, seed, [70.0 + seed], dataset="synthetic")
        )
        record = full_record("mtac", "symmetric", 30, seed, [65.0 + seed], dataset="synthetic")
        record["run_id"] += "-abl"
        record["config"]["method_options"] = {"relabel": False}
        write_record(root, record)
    build_report(root, tmp_path / "out")
    ax = dict(figures)["synthetic-symmetric"].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["mtac[relabel=false]", "mtac"]
    assert ax.get_xlabel() == "test accuracy (%)"
    assert all(c.lines[0].get_linestyle() == "None" for c in ax.containers)  # no line over one x
    assert sum(len(c.get_offsets()) for c in ax.collections) >= 6  # every seed drawn


def test_figures_are_png_at_200_dpi_with_a_pdf_and_confusion_on_request(tmp_path, capsys):
    from PIL import Image

    root = tmp_path / "runs"
    for method in ("ce", "scn"):
        for noise_type, rate in (("symmetric", 0.0), ("real", 32.3)):
            write_record(
                root, full_record(method, noise_type, 0, 0, [50.0, 60.0], rate_actual=rate)
            )
    out = tmp_path / "out"
    assert main(["report", "--results", str(root), "--out", str(out), "--confusion", "real"]) == 0
    plots = out / "plots"
    for stem in ("ferplus-protocols", "curves/ferplus-real-0", "confusion/ferplus-real-0-scn"):
        png, pdf = plots / f"{stem}.png", plots / f"{stem}.pdf"
        assert round(Image.open(png).info["dpi"][0]) == 200
        assert pdf.read_bytes()[:5] == b"%PDF-"
    assert len(list((plots / "confusion").glob("*.png"))) == 2  # ce, scn
    md = (out / "leaderboard.md").read_text()
    assert (
        "- [plots/confusion/ferplus-real-0-scn.png](plots/confusion/ferplus-real-0-scn.png)" in md
    )
    capsys.readouterr()
    argv = ["report", "--results", str(root), "--out", str(tmp_path / "o2")]
    assert main([*argv, "--confusion", "sym:x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--confusion sym:x" in err
    assert not (tmp_path / "o2").exists()  # refused before anything was written
