"""``fer-bench report`` on fabricated run records (records are plain JSON)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fer_bench.cli import main
from fer_bench.errors import FerBenchError
from fer_bench.report import build_report, load_paper_numbers
from fer_bench.results import write_json_atomic


def metrics(acc: float) -> dict:
    return {
        "accuracy": acc,
        "mean_class_accuracy": acc - 1,
        "macro_f1": acc - 2,
        "per_class_accuracy": [acc] * 7,
        "confusion": [[1] * 7 for _ in range(7)],
    }


def write_run(
    root: Path,
    method: str,
    noise: float,
    seed: int,
    acc: float | None = None,
    val_acc: float | None = None,
    status: str = "done",
    dataset: str = "rafdb",
    noise_type: str = "symmetric",
    diagnostics: dict | None = None,
    error: str | None = None,
    extra_config: dict | None = None,
    run_id: str | None = None,
) -> str:
    run_id = run_id or f"{dataset}-{method}-{noise_type[:3]}{noise:g}-s{seed}"
    record = {
        "schema": 1,
        "run_id": run_id,
        "status": status,
        "error": error,
        "config": {
            "method": method,
            "dataset": dataset,
            "noise": noise,
            "noise_type": noise_type,
            "seed": seed,
            "epochs": 4,
            **(extra_config or {}),
        },
        "history": [],
    }
    if status == "done":
        record["final"] = {
            "last": {"epoch": 4, "test": metrics(acc), "val": metrics(acc)},
            "selected": {"epoch": 3, "test": metrics(val_acc or acc), "val": metrics(acc)},
        }
        record["diagnostics"] = diagnostics or {
            "given_label_auc": None,
            "weight_auc": None,
            "relabel": None,
        }
    write_json_atomic(root / run_id / "record.json", record)
    return run_id


@pytest.fixture
def results(tmp_path):
    """Two methods, noise 0/20, three seeds, plus one failed and one unfinished run."""
    root = tmp_path / "runs"
    accs = {
        ("ce", 0): [80.0, 82.0, 84.0],
        ("ce", 20): [70.0, 71.0, 75.0],
        ("scn", 0): [81.0, 81.5, 82.5],
        ("scn", 20): [76.0, 78.0, 77.0],
    }
    for (method, noise), values in accs.items():
        for seed, acc in enumerate(values):
            diag = {
                "given_label_auc": 0.8 + seed * 0.01,
                "weight_auc": 0.7 + seed * 0.02 if method == "scn" else None,
                "relabel": {"precision": 0.5 + seed * 0.1} if method == "scn" else None,
            }
            write_run(root, method, noise, seed, acc, val_acc=acc + 1, diagnostics=diag)
    write_run(root, "mtac", 20, 0, status="failed", error="CUDA out of memory")
    write_run(root, "mtac", 20, 1, status="running")
    return root, accs


def test_aggregation_best_marking_and_gaps(results, tmp_path):
    root, accs = results
    content = build_report(root, tmp_path / "out", plots=False)
    cells = {(c["method"], c["noise"]): c for c in content["cells"] if c["source"] == "fer-bench"}
    for key, values in accs.items():
        cell = cells[(key[0], float(key[1]))]
        assert cell["mean"] == pytest.approx(statistics.mean(values))
        assert cell["std"] == pytest.approx(statistics.stdev(values))  # sample std over seeds
        assert cell["n"] == 3 and cell["failed"] == 0
    assert cells[("ce", 0.0)]["best"] and not cells[("scn", 0.0)]["best"]  # 82.00 > 81.67
    assert cells[("scn", 20.0)]["best"] and not cells[("ce", 20.0)]["best"]
    mtac = cells[("mtac", 20.0)]
    assert (mtac["n"], mtac["failed"], mtac["unfinished"], mtac["mean"]) == (0, 1, 1, None)
    assert not mtac["best"]
    assert content["runs"] == {"done": 12, "failed": 1, "unfinished": 1, "missing": 0}
    assert content["failures"][0]["error"] == "CUDA out of memory"

    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "**82.00 ± 2.00 (3)**" in md  # ce at 0 %: best, bold
    assert "| 81.67 ± 0.76 (3)" in md  # scn at 0 %: not bold
    assert "**77.00 ± 1.00 (3)**" in md
    assert "– ; failed: 1; unfinished: 1" not in md and "–; failed: 1; unfinished: 1" in md
    assert "## rafdb, symmetric noise" in md
    header = next(line for line in md.splitlines() if line.startswith("| method"))
    assert header.split("|")[2].strip() == "0%" and header.split("|")[3].strip() == "20%"
    rows = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ")]
    assert rows[1:4] == ["ce", "mtac", "scn"]  # the baseline first


def test_runs_that_differ_beyond_the_seed_are_separate_entries(tmp_path):
    """An ablation (other method options) or another epoch count must never be averaged into
    the plain method's cell; settings only the execution differs in must not split a cell."""
    root = tmp_path / "runs"
    for seed in (0, 1):
        write_run(root, "mtac", 30, seed, 70.0 + seed, extra_config={"device": f"cuda:{seed}"})
        write_run(
            root,
            "mtac",
            30,
            seed,
            60.0 + seed,
            run_id=f"abl-{seed}",
            extra_config={"method_options": {"au_weight": 0, "relabel": False}},
        )
        write_run(root, "ce", 30, seed, 50.0, extra_config={"epochs": 8})
    # spelling out a default is the default configuration
    write_run(root, "mtac", 30, 2, 72.0, extra_config={"method_options": {"au_weight": 0.5}})
    write_run(root, "ce", 30, 0, 40.0, run_id="ce-short", extra_config={"epochs": 2})
    content = build_report(root, tmp_path / "out", plots=False)
    cells = {c["method"]: c for c in content["cells"]}
    assert cells["mtac"]["mean"] == pytest.approx(71.0) and cells["mtac"]["n"] == 3
    assert cells["mtac[au_weight=0, relabel=false]"]["mean"] == pytest.approx(60.5)
    # the configuration most runs share keeps the plain name; the stray run is labelled
    assert cells["ce"]["n"] == 2 and cells["ce[epochs=2]"]["mean"] == 40.0
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    rows = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ")]
    assert rows[1:5] == ["ce", "ce[epochs=2]", "mtac", "mtac[au_weight=0, relabel=false]"]


def test_variants_follow_the_run_identity(tmp_path):
    """Same weights at two mount points are one entry, a dataset option never stands in for the
    run setting of the same name, and a key an older record lacks takes today's default."""
    root = tmp_path / "runs"
    weights = "ab" * 20  # the sha1 the run id hashes instead of the path
    for seed, (path, size) in enumerate([("/a/w.pth", 112), ("/b/w.pth", 112), ("/a/w.pth", 224)]):
        identity = {
            "method": "scn",
            "dataset": "rafdb",
            "noise": 30.0,
            "noise_type": "symmetric",
            "seed": seed,
            "epochs": 4,
            "image_size": size,
            "pretrained": weights,
            "dataset_options": {"image_size": 100},
        }
        run_id = write_run(
            root,
            "scn",
            30,
            seed,
            60.0 + seed,
            extra_config={"pretrained": path, "image_size": size},
        )
        record_path = root / run_id / "record.json"
        record = json.loads(record_path.read_text())
        record["identity"] = identity
        write_json_atomic(record_path, record)
    write_run(root, "ce", 30, 0, 50.0, extra_config={"noise_file_base": 1})
    write_run(root, "ce", 30, 1, 52.0)  # written before noise_file_base existed
    content = build_report(root, tmp_path / "o", plots=False)
    cells = {c["method"]: c for c in content["cells"] if c["source"] == "fer-bench"}
    assert cells["scn"]["n"] == 2 and cells["scn[image_size=224]"]["n"] == 1
    assert cells["ce"]["n"] == 2


def test_a_run_copied_elsewhere_in_the_results_counts_once(results, tmp_path, capsys):
    import shutil

    root, accs = results
    run_id = next(p.parent.name for p in root.glob("rafdb-ce-sym20-*/record.json"))
    shutil.copytree(root / run_id, root / "backup" / run_id)
    content = build_report(root, tmp_path / "out", plots=False)
    cell = next(c for c in content["cells"] if (c["method"], c["noise"]) == ("ce", 20.0))
    assert cell["n"] == 3 and cell["mean"] == pytest.approx(statistics.mean(accs[("ce", 20)]))
    assert "repeat a run id" in capsys.readouterr().err


def test_select_val_uses_the_validation_selected_epoch(results, tmp_path):
    root, accs = results
    content = build_report(root, tmp_path / "out", select="val", plots=False)
    cell = next(c for c in content["cells"] if (c["method"], c["noise"]) == ("ce", 20.0))
    assert cell["mean"] == pytest.approx(statistics.mean(accs[("ce", 20)]) + 1)
    assert content["select"] == "val"
    with pytest.raises(FerBenchError, match="--select"):
        build_report(root, tmp_path / "out", select="best", plots=False)


def test_missing_runs_from_a_sweep_are_counted(tmp_path, capsys):
    root = tmp_path / "runs"
    sweep = tmp_path / "s.yaml"
    grid = {
        "method": "ce",
        "dataset": "synthetic",
        "noise": [0, 10],
        "seed": [0, 1],
        "epochs": 1,
    }
    sweep.write_text(yaml.safe_dump({"output_dir": str(root), "grid": grid}))
    from fer_bench.runner import resolve_config
    from fer_bench.sweep import load_sweep

    configs = [resolve_config(c) for c in load_sweep(sweep).configs]
    present = next(c for c in configs if (c.noise, c.seed) == (0, 0))
    run_id = write_run(root, "ce", 0, 0, 60.0, dataset="synthetic")
    (root / run_id).rename(root / present.run_id())  # the sweep's own run id
    record = json.loads((root / present.run_id() / "record.json").read_text())
    record["run_id"] = present.run_id()
    write_json_atomic(root / present.run_id() / "record.json", record)
    write_run(root, "ce", 30, 0, 10.0, dataset="synthetic")  # not in the sweep: left out

    content = build_report(root, tmp_path / "out", sweep_file=sweep, plots=False)
    cells = {c["noise"]: c for c in content["cells"]}
    assert (cells[0.0]["n"], cells[0.0]["missing"]) == (1, 1)
    assert (cells[10.0]["n"], cells[10.0]["missing"]) == (0, 2)
    assert 30.0 not in cells
    assert "not in" in capsys.readouterr().err
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "**60.00 ± – (1)**; missing: 1" in md and "–; missing: 2" in md
    # without --results the sweep's own output_dir is read
    assert main(["report", "--sweep", str(sweep), "--out", str(tmp_path / "o2"), "--no-plots"]) == 0
    assert "–; missing: 2" in (tmp_path / "o2" / "leaderboard.md").read_text()


def test_unreadable_records_are_skipped_with_a_warning(results, tmp_path, capsys):
    root, _ = results
    (root / "broken").mkdir()
    (root / "broken" / "record.json").write_text('{"status": "do')
    (root / "odd").mkdir()
    (root / "odd" / "record.json").write_text('{"status": "done"}')  # no config
    content = build_report(root, tmp_path / "out", plots=False)
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning: skipping unreadable record" in line]
    assert len(warnings) == 2
    assert any("broken" in w for w in warnings) and any("odd" in w for w in warnings)
    assert content["runs"]["done"] == 12


def test_csv_and_json_hold_the_same_table(results, tmp_path):
    root, _ = results
    build_report(root, tmp_path / "out", plots=False)
    data = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    csv = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    assert len(csv) == len(data["cells"])
    for row, cell in zip(csv.to_dict("records"), data["cells"], strict=True):
        assert (row["dataset"], row["method"], row["noise"]) == (
            cell["dataset"],
            cell["method"],
            cell["noise"],
        )
        if cell["mean"] is None:
            assert pd.isna(row["mean"])
        else:
            assert row["mean"] == pytest.approx(cell["mean"])
        assert bool(row["best"]) == cell["best"]


def test_paper_numbers_appear_with_their_source_and_are_not_ranked(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "scn", 0, 0, 50.0)
    papers = tmp_path / "papers.yaml"
    papers.write_text(
        yaml.safe_dump(
            {
                "sources": {"p": {"paper": "Some Paper 2020", "url": "https://example.org/p"}},
                "numbers": [
                    {
                        "method": "scn",
                        "dataset": "rafdb",
                        "noise_type": "symmetric",
                        "noise": 0,
                        "metric": "accuracy",
                        "value": 99.5,
                        "source": "p",
                        "where": "Table 9",
                    }
                ],
            }
        )
    )
    content = build_report(root, tmp_path / "out", plots=False, paper_numbers=papers)
    md = content["markdown"]
    assert "| scn (paper) | 99.50 [1]" in md
    assert "[1] Some Paper 2020; Table 9; https://example.org/p." in md
    assert "**50.00 ± – (1)**" in md  # still the best of ours: papers are not ranked
    paper_cell = next(c for c in content["cells"] if c["source"] != "fer-bench")
    assert paper_cell["mean"] == 99.5 and "Table 9" in paper_cell["source"]


def test_shipped_paper_numbers_all_cite_a_source():
    numbers = load_paper_numbers()
    assert numbers, "the shipped file lists verified numbers"
    for n in numbers:
        assert n["citation"]["paper"] and n["where"] and 0 < n["value"] <= 100


def test_diagnostics_table(results, tmp_path):
    root, _ = results
    content = build_report(root, tmp_path / "out", plots=False)
    diag = {(d["method"], d["noise"]): d for d in content["diagnostics"]}
    scn = diag[("scn", 20.0)]
    assert scn["weight_auc_mean"] == pytest.approx(0.72)
    assert scn["weight_auc_std"] == pytest.approx(0.02)
    assert scn["relabel_precision_mean"] == pytest.approx(0.6)
    assert diag[("ce", 20.0)]["weight_auc_n"] == 0
    md = content["markdown"]
    assert (
        "| rafdb     | symmetric    | scn      | 20%     | 0.810 ± 0.010 (3) | 0.720 ± 0.020 (3)"
        in md
    )


def test_cli_writes_markdown_csv_json_and_plot(results, tmp_path, capsys):
    root, _ = results
    out = tmp_path / "out"
    assert main(["report", "--results", str(root), "--out", str(out)]) == 0
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.json"):
        assert (out / name).stat().st_size > 0
    png = out / "plots" / "rafdb-symmetric.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "# Leaderboard" in capsys.readouterr().out
    assert main(["report", "--results", str(tmp_path / "nothing")]) == 2


def test_report_never_replaces_a_leaderboard_unless_told(results, tmp_path, capsys, monkeypatch):
    root, _ = results
    out = tmp_path / "committed"
    argv = ["report", "--results", str(root), "--out", str(out), "--no-plots"]
    assert main(argv) == 0
    before = (out / "leaderboard.md").read_text()
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "leaderboard.md exists" in err and "--overwrite" in err
    assert (out / "leaderboard.md").read_text() == before
    assert main([*argv, "--overwrite"]) == 0
    # Without --out a report goes to the git-ignored results/reports/, the user's own.
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert main(["report", "--results", str(root), "--no-plots"]) == 0
    assert (tmp_path / "results" / "reports" / "leaderboard.md").exists()
    assert not (tmp_path / "results" / "leaderboard.md").exists()


def test_committed_tables_are_regenerated_only_with_overwrite():
    import re

    repo = Path(__file__).resolve().parent.parent
    assert "results/reports/" in (repo / ".gitignore").read_text().splitlines()
    texts = [repo / "README.md", *sorted((repo / "slurm").glob("*.yaml"))]
    commands = [
        (path.name, line)
        for path in texts
        for line in path.read_text().splitlines()
        if re.search(r"fer-bench report .*--out results", line)
    ]
    assert len(commands) >= 4
    assert all("--overwrite" in line for _, line in commands), commands


def test_compute_table_states_each_methods_cost_beside_ce(tmp_path):
    """Per dataset and hardware: median seconds per epoch and minutes per run of finished runs,
    and the ratio to CE's on the same hardware (what a two-network method costs)."""
    from report_helpers import full_record, write_record

    from fer_bench.report import build_report

    root = tmp_path / "runs"
    cpu = {"device": "cpu", "cpu": "AMD EPYC", "torch_threads": 1}
    for method, seconds in (("ce", [40.0, 44.0, 48.0]), ("coteaching", [80.0, 88.0, 96.0])):
        for seed, wall in enumerate(seconds):
            record = full_record(method, "real", 0, seed, [60.0, 61.0, 62.0, 63.0])
            record.update(wall_time_s=wall, hardware=cpu)
            write_record(root, record)
    failed = full_record("ce", "real", 0, 3, [60.0] * 4, status="failed")
    write_record(root, {**failed, "wall_time_s": 999.0, "hardware": cpu})
    content = build_report(root, tmp_path / "out", plots=False)
    rows = {r["method"]: r for r in content["compute"]}
    assert rows["ce"]["runs"] == "3" and rows["ce"]["s / epoch"] == "11.0"  # 44 s / 4 epochs
    assert rows["coteaching"]["× CE"] == "2.0"
    assert rows["ce"]["hardware"] == "AMD EPYC, 1 thread"
    assert "## Compute" in content["markdown"]
