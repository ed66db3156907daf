"""`fer-bench eval`: a finished run on another dataset's test split, classes matched by name."""

import json

import pytest
from fixtures_datasets import cache_env_fixture, make_ferplus_csv, make_rafdb  # noqa: F401

from fer_bench.cli import main
from fer_bench.evaluate import read_evaluations, shared_classes

TINY = ["--epochs", "1", "--batch-size", "2", "--image-size", "32", "--backbone", "test_resnet"]
TINY += ["--val-fraction", "0.25", "--no-progress"]


def test_shared_classes_keep_the_model_order_and_list_each_side():
    shared, model_only, test_only = shared_classes(
        ["neutral", "happiness", "contempt"], ["happiness", "fear", "neutral"]
    )
    assert shared == ["neutral", "happiness"]
    assert model_only == ["contempt"] and test_only == ["fear"]


def _prepare(dataset, root):
    args = ["prepare", "--dataset", dataset, "--data-root", str(root), "--image-size", "16"]
    assert main([*args, "--workers", "1", "--no-progress"]) == 0


def test_eval_across_datasets_with_different_class_sets(tmp_path, cache_env, capsys):
    ferplus = make_ferplus_csv(tmp_path / "FERPlus")  # 8 classes, with contempt
    rafdb = make_rafdb(tmp_path / "RAF-DB", truncated=None)  # the 7 basic ones
    _prepare("ferplus", ferplus)
    _prepare("rafdb", rafdb)
    runs = tmp_path / "runs"
    assert (
        main(
            ["run", "--dataset", "ferplus", "--data-root", str(ferplus), "--output-dir", str(runs)]
            + TINY
        )
        == 0
    )
    [run_dir] = [p.parent for p in runs.glob("*/record.json")]
    capsys.readouterr()
    code = main(
        ["eval", run_dir.name, "--dataset", "rafdb", "--data-root", str(rafdb)]
        + ["--results", str(runs)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "dropped, only the model knows: contempt" in out
    [record] = read_evaluations(runs)
    assert record["train_dataset"] == "ferplus" and record["test_dataset"] == "rafdb"
    assert "contempt" not in record["classes"] and len(record["classes"]) == 7
    assert record["num_evaluated"] == record["num_test"]  # RAF-DB has no class FERPlus lacks
    cm = record["metrics"]["confusion"]
    assert len(cm) == 7 and sum(map(sum, cm)) == record["num_evaluated"]
    assert json.loads(next(run_dir.glob("eval-rafdb-*.json")).read_text()) == record
    # the report's cross-dataset table: trained on FERPlus, tested on RAF-DB's 7 shared classes
    out = tmp_path / "report"
    assert main(["report", "--results", str(runs), "--out", str(out), "--no-plots"]) == 0
    board = (out / "leaderboard.md").read_text()
    assert "## Cross-dataset evaluation" in board
    acc = record["metrics"]["accuracy"]
    assert f"| ferplus | ce | symmetric 0 | {acc:.2f} (n=1) [7] |" in board
    crossed = json.loads((out / "leaderboard.json").read_text())["cross_dataset"]
    assert crossed[0]["test_dataset"] == "rafdb" and crossed[0]["n"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["nope", "--dataset", "rafdb"], "no run nope under"),
    ],
)
def test_eval_bad_input_is_one_line(tmp_path, capsys, args, message):
    assert main(["eval", *args, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
