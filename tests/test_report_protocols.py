"""The FERPlus leaderboard: protocols as columns, Δ vs CE with a paired test, the gap each
method recovers, both epoch selections, the control for MTAC, and the papers' setting."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from report_helpers import FERPLUS, ferplus_runs, full_record, write_record

from fer_bench.report import build_report, load_paper_numbers, paired_difference


@pytest.fixture(scope="module")
def ferplus(tmp_path_factory):
    root = ferplus_runs(tmp_path_factory.mktemp("ferplus") / "runs")
    out = root.parent / "out"
    return root, out, build_report(root, out, plots=False)


def _cells(content, select=None):
    cells = content["cells_by_select"][select] if select else content["cells"]
    return {
        (c["method"], c["noise_type"], c["noise"]): c for c in cells if c["source"] == "fer-bench"
    }


def test_protocols_are_the_columns_with_their_measured_rates(ferplus):
    _, out, content = ferplus
    md = content["markdown"]
    header = next(line for line in md.splitlines() if line.startswith("| method"))
    assert [h.strip() for h in header.strip("|").split("|")] == [
        "method",
        "clean",
        "real (32.3 %)",
        "annotator (19.4 %)",
    ]
    assert "## ferplus, noise protocols — last epoch" in md
    assert "## ferplus, noise protocols — validation-selected epoch" in md
    cell = _cells(content)[("ce", "annotator", 0.0)]
    assert cell["protocol"] == "annotator (19.4 %)"
    assert cell["noise_actual"] == pytest.approx(19.4)
    csv = pd.read_csv(out / "leaderboard.csv")
    assert set(csv["protocol"].dropna()) == {"clean", "real (32.3 %)", "annotator (19.4 %)"}


def test_delta_vs_ce_is_paired_per_seed_with_a_named_test(ferplus):
    from scipy.stats import ttest_rel

    _, _, content = ferplus
    scn, ce = FERPLUS[("scn", "real", 0)], FERPLUS[("ce", "real", 0)]
    cell = _cells(content)[("scn", "real", 0.0)]
    diffs = [a - b for a, b in zip(scn, ce, strict=True)]  # +5, +4, +6
    assert cell["delta_ce_mean"] == pytest.approx(5.0)
    assert cell["delta_ce_std"] == pytest.approx(pd.Series(diffs).std())
    assert cell["delta_ce_n"] == 3
    assert cell["p_value"] == pytest.approx(ttest_rel(scn, ce).pvalue)
    assert "ttest_rel" in content["paired_test"] and "paired t-test" in content["paired_test"]
    md = content["markdown"]
    assert "### Δ vs CE — ferplus, noise protocols, last epoch" in md
    assert f"+5.00 ± 1.00 (3), p = {ttest_rel(scn, ce).pvalue:.3f}" in md
    assert "paired t-test over seeds (scipy.stats.ttest_rel" in md
    assert _cells(content)[("ce", "real", 0.0)]["delta_ce_n"] == 0  # CE is the reference


def test_paired_difference_edge_cases():
    assert paired_difference([], [])["delta_ce_n"] == 0
    one = paired_difference([3.0], [1.0])
    assert one["delta_ce_mean"] == 2.0 and math.isnan(one["p_value"])
    constant = paired_difference([3.0, 4.0], [1.0, 2.0])  # no spread: no test
    assert constant["delta_ce_std"] == 0.0 and math.isnan(constant["p_value"])


def test_gap_recovered_is_measured_against_ce_on_clean_labels(ferplus):
    _, _, content = ferplus
    cells = _cells(content)
    # CE: clean 80, real 70 -> gap 10; scn real 75 -> half of it.
    assert cells[("scn", "real", 0.0)]["gap_recovered"] == pytest.approx(0.5)
    # annotator: CE 74 -> gap 6; scn 75.67 -> 1.67 / 6
    assert cells[("scn", "annotator", 0.0)]["gap_recovered"] == pytest.approx((75 + 2 / 3 - 74) / 6)
    assert cells[("scn", "symmetric", 0.0)]["gap_recovered"] is None  # clean: nothing to recover
    md = content["markdown"]
    gap = md.split("### Clean-vs-noisy gap recovered — ferplus, noise protocols, last epoch")[1]
    header = next(line for line in gap.splitlines() if line.startswith("| method"))
    assert "clean" not in header and "real (32.3 %)" in header
    assert "| scn      | 50 %" in gap


def test_both_selections_are_reported_never_the_test_set(tmp_path):
    root = tmp_path / "runs"
    for seed in range(2):
        # validation peaks at epoch 2, where test accuracy is 60; the last epoch has 55
        record = full_record("ce", "symmetric", 0, seed, [50.0, 60.0, 55.0], [70.0, 80.0, 75.0])
        write_record(root, record)
    content = build_report(root, tmp_path / "out", plots=False)
    last = _cells(content, "last")[("ce", "symmetric", 0.0)]
    val = _cells(content, "val")[("ce", "symmetric", 0.0)]
    assert (last["mean"], val["mean"]) == (55.0, 60.0)
    assert content["cells"] == content["cells_by_select"]["last"]
    data = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert set(data["cells_by_select"]) == {"last", "val"}
    md = content["markdown"]
    assert md.index("last epoch") < md.index("validation-selected epoch")
    assert "test-selected" not in md and "No number is selected on the test set" in md


def test_mtac_is_shown_beside_its_control_or_the_control_is_named_missing(ferplus, tmp_path):
    _, _, content = ferplus
    md = content["markdown"]
    first = md.split("### Δ vs CE")[0]
    assert "ce_aux (the control for mtac) missing" in first
    root = ferplus_runs(tmp_path / "runs")
    for seed in range(3):
        write_record(root, full_record("ce_aux", "real", 0, seed, [70.0 + seed], rate_actual=32.3))
        write_record(root, full_record("ce_aux", "symmetric", 0, seed, [80.0], rate_actual=0))
        write_record(root, full_record("ce_aux", "annotator", 0, seed, [74.0], rate_actual=19.4))
    md = build_report(root, tmp_path / "out", plots=False)["markdown"]
    assert "the control for mtac" not in md
    rows = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ")]
    assert rows[1:5] == ["ce", "ce_aux", "mtac", "scn"]  # the control right before mtac


def test_paper_numbers_state_backbone_pretraining_and_epoch_selection(ferplus):
    for number in load_paper_numbers():
        for key in ("backbone", "pretraining", "epoch_selection"):
            assert number.get(key), (number["method"], number["dataset"], key)
    md = ferplus[2]["markdown"]
    assert "| scn (paper, IR50) | 89.35 [1]" in md
    assert "Backbone: IR50" in md and "pretraining: MS-Celeb-1M" in md and "epoch: " in md
    assert "Our runs: test_resnet, from scratch, 4 epochs, 48 px." in md
