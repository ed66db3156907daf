"""Committed run records: ``--keep-records`` writes small ``<run_id>.json`` files the report reads
back alone (a fresh clone regenerates the tables), and records of older versions still count."""

from __future__ import annotations

import json

import pytest
import yaml
from report_helpers import ferplus_runs, full_record, write_record

from fer_bench.cli import main
from fer_bench.report import build_report, compact_record
from fer_bench.results import write_json_atomic


def _numbers(content):
    keep = ("method", "noise_type", "noise", "mean", "std", "n", "delta_ce_mean", "p_value")
    return sorted(
        (tuple(c[k] for k in keep) for c in content["cells"] if c["source"] == "fer-bench"),
        key=str,
    )


def test_kept_records_regenerate_the_same_tables(tmp_path, capsys):
    root = ferplus_runs(tmp_path / "runs")
    write_record(root, full_record("scn", "real", 0, 3, [10.0] * 4, status="failed"))
    write_record(root, full_record("scn", "real", 0, 4, [10.0] * 4, status="running"))
    kept = tmp_path / "committed" / "runs"
    argv = ["report", "--results", str(root), "--out", str(tmp_path / "a"), "--no-plots"]
    assert main([*argv, "--keep-records", str(kept)]) == 0
    assert f"kept 22 finished record(s) in {kept}" in capsys.readouterr().err
    files = sorted(kept.glob("*.json"))
    assert len(files) == 22  # 21 done + 1 failed; the running one is not finished
    record = json.loads((kept / "ferplus-scn-rea0-s0.json").read_text())
    assert "traceback" not in record and "kept" in record
    assert set(record["history"][0]["test"]) <= {"accuracy", "mean_class_accuracy", "macro_f1", "n"}
    assert "from_to" not in record["history"][0]["diagnostics"]["relabel"]
    assert record["final"]["last"]["test"]["confusion"]  # final metrics stay whole
    original = (root / "ferplus-scn-rea0-s0" / "record.json").stat().st_size
    assert files[0].stat().st_size < original / 2
    assert compact_record(record) == record  # compacting twice changes nothing

    # A fresh clone has only the kept records: the same numbers come back.
    before = build_report(root, tmp_path / "b", plots=False)
    after = build_report(kept, tmp_path / "c", plots=False)
    assert _numbers(after) == _numbers(before)
    scn_real = next(c for c in after["cells"] if (c["method"], c["noise_type"]) == ("scn", "real"))
    assert (scn_real["n"], scn_real["failed"], scn_real["unfinished"]) == (3, 1, 0)
    assert after["runs"]["failed"] == 1 and after["failures"][0]["error"] == "RuntimeError: boom"


def test_kept_records_and_a_sweep_regenerate_without_the_run_directories(tmp_path):
    """``--results <kept> --sweep <file>``: run ids come from the sweep, records from the kept
    directory; what the sweep expects and nobody kept is counted missing."""
    from fer_bench.runner import resolve_config
    from fer_bench.sweep import load_sweep

    sweep = tmp_path / "s.yaml"
    grid = {"method": "ce", "dataset": "synthetic", "noise": [0, 10], "seed": [0, 1], "epochs": 1}
    sweep.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "runs"), "grid": grid}))
    kept = tmp_path / "kept"
    for config in load_sweep(sweep).configs[:3]:
        cfg = resolve_config(config)
        record = full_record("ce", "symmetric", cfg.noise, cfg.seed, [50.0], dataset="synthetic")
        record["run_id"] = cfg.run_id()
        write_json_atomic(kept / f"{cfg.run_id()}.json", compact_record(record))
    out = tmp_path / "results"
    argv = ["report", "--results", str(kept), "--sweep", str(sweep), "--out", str(out)]
    assert main([*argv, "--no-plots"]) == 0
    assert main([*argv, "--no-plots"]) == 2  # a committed leaderboard needs --overwrite
    assert main([*argv, "--no-plots", "--overwrite"]) == 0
    cells = json.loads((out / "leaderboard.json").read_text())["cells"]
    assert sorted((c["noise"], c["n"], c["missing"]) for c in cells) == [(0.0, 2, 0), (10.0, 1, 1)]


def test_records_of_older_versions_still_count(tmp_path, capsys):
    """The format behind the committed synthetic tables: no identity, no stored option defaults,
    no measured rate, no relabel recall, no validation-selected entry in one of them."""
    root = tmp_path / "runs"
    for seed in range(2):
        record = full_record("scn", "symmetric", 20, seed, [60.0, 70.0 + seed])
        for key in ("method_defaults", "noise", "dataset", "identity"):
            record.pop(key, None)
        record["diagnostics"]["relabel"] = {"changed": 10, "restored": 4, "precision": 0.4}
        if seed == 1:
            del record["final"]["selected"]
            record["history"] = []
        write_record(root, record)
    content = build_report(root, tmp_path / "out", plots=False)
    cell = next(c for c in content["cells"] if c["method"] == "scn")
    assert (cell["n"], cell["mean"], cell["protocol"]) == (2, 70.5, "sym 20 %")
    val = content["cells_by_select"]["val"][0]
    assert val["n"] == 1  # the record without a validation-selected entry has no such number
    diag = content["diagnostics"][0]
    assert diag["relabel_precision_mean"] == pytest.approx(0.4) and diag["relabel_recall_n"] == 0
    assert "skipping" not in capsys.readouterr().err
    # asked for explicitly, a selection the record lacks makes it unreadable, as before
    content = build_report(root, tmp_path / "o2", select="val", plots=False)
    assert content["cells"][0]["n"] == 1
    assert "skipping unreadable record" in capsys.readouterr().err
