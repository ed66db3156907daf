"""`fer-bench` end to end, and its answers to bad input: one line on stderr, exit 2."""

import json
import subprocess
import sys

import pytest

from fer_bench.cli import main

TINY = [
    "--epochs",
    "2",
    "--batch-size",
    "32",
    "--image-size",
    "32",
    "--backbone",
    "test_resnet",
    "-D",
    "num_train=200",
    "-D",
    "num_test=70",
    "-D",
    "size=32",
    "--no-progress",
]


def test_run_end_to_end_writes_a_record_and_reruns_idempotently(tmp_path, capsys):
    args = [
        "run",
        "--method",
        "scn",
        "--dataset",
        "synthetic",
        "--noise",
        "20",
        "--output-dir",
        str(tmp_path),
        "-M",
        "relabel_epoch=1",
        *TINY,
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test, last epoch 2" in out and "weight AUC" in out and "relabeled" in out
    records = list(tmp_path.glob("*/record.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["status"] == "done"
    options = record["config"]["method_options"]
    assert options["relabel_epoch"] == 1 and options["relabel_scope"] == "low"  # defaults filled
    assert main(args) == 0  # same config: same run id, nothing retrained
    assert list(tmp_path.glob("*/record.json")) == records


def test_list_shows_methods_and_datasets(capsys):
    assert main(["list", "-v"]) == 0
    out = capsys.readouterr().out
    for name in ("ce", "scn", "mtac", "synthetic"):
        assert f"  {name}" in out
    assert "relabel_scope='low'" in out
    # every dataset says what it is, not a shared class docstring
    lines = {
        line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()
    }
    assert "RAF-DB" in lines["rafdb"] and "AffectNet" in lines["affectnet"]
    assert "FERPlus" in lines["ferplus"] and "Aff-Wild2" in lines["affwild2"]


def test_list_verbose_shows_recipes_checks_and_dataset_options_in_plain_text(capsys):
    assert main(["list", "-v"]) == 0
    out = capsys.readouterr().out
    assert "recipe: epochs=70, batch_size=64, optimizer=adam, lr=0.001" in out
    assert "-M beta=0.7   (in (0, 1))" in out and "(one of low/all)" in out
    assert "-D label_mode='majority'" in out and "one of majority/probability/argmax" in out
    assert "-D num_train=3000" in out  # a function-registered dataset's options too
    assert "``" not in out and ":class:" not in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--method", "nope"], "unknown method 'nope'; known: ce, "),
        (["run", "--dataset", "nope"], "unknown dataset 'nope'; known: "),
        (["run", "--noise", "120"], "--noise is a percentage in [0, 100), got 120"),
        (["run", "--noise", "-5"], "--noise is a percentage in [0, 100), got -5"),
        (["run", "--noise", "abc"], "--noise must be a percentage such as 20, got 'abc'"),
        (["run", "--epochs", "0"], "--epochs must be >= 1"),
        (["run", "--noise-type", "file"], "--noise-type file needs --noise-file"),
        (["run", "-M", "bogus=1"], "unknown option(s) bogus for method 'ce'"),
        (["run", "-M", "novalue"], "--method-option takes KEY=VALUE"),
        (["run", "--backbone", "resnet_nope"], "unknown timm backbone 'resnet_nope'"),
        (["run", "--device", "tpu"], "--device must be auto, cpu, cuda or cuda:N"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["status", "extra"], "error: unrecognized arguments: extra"),  # no "fer-bench:" twice
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys, tmp_path):
    code = main([*args, "--output-dir", str(tmp_path)] if args[0] == "run" else args)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and err.startswith("fer-bench: error: ")
    assert "Traceback" not in err


def test_help_is_complete(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--method",
        "--dataset",
        "--noise",
        "--noise-type",
        "--seed",
        "--epochs",
        "--batch-size",
        "--lr",
        "--backbone",
        "--pretrained",
        "--image-size",
        "--data-root",
        "--device",
        "--output-dir",
        "--compile",
    ):
        assert flag in out


def test_console_script_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fer_bench.cli",
            "run",
            "--method",
            "nope",
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("fer-bench: error: unknown method 'nope'")
    assert "Traceback" not in proc.stderr


def test_corrupt_pretrained_file_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not a torch file")
    code = main(["run", "--pretrained", str(bad), "--output-dir", str(tmp_path / "runs"), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and "not a loadable weights file" in err and err.count("\n") == 1
    # Refused by the pre-flight checks: bad input is no run, so it leaves no failed record.
    assert not list((tmp_path / "runs").glob("*/record.json"))


def test_option_typos_leave_no_failed_run_behind(tmp_path, capsys):
    assert main(["run", "-M", "relabel_epok=3", "--output-dir", str(tmp_path), *TINY]) == 2
    err = capsys.readouterr().err
    assert "relabel_epok" in err and "info" not in err.split("known:")[1]
    assert not list(tmp_path.iterdir())


def test_unwritable_output_dir_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["run", "--output-dir", str(blocker / "runs"), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fer-bench: error: ") and err.count("\n") == 1


def test_run_flags_are_built_from_the_config_fields():
    """`fer-bench run` declares no option of its own: each RunConfig field is one flag with its
    help, and leaving every flag out gives exactly the dataclass defaults."""
    import argparse
    from dataclasses import fields

    from fer_bench.cli_run import add_run_options, config_from_args
    from fer_bench.config import RunConfig

    parser = argparse.ArgumentParser()
    add_run_options(parser)
    dests = {a.dest for a in parser._actions} - {"help"}
    assert dests == {f.name for f in fields(RunConfig)}
    assert all(f.metadata.get("help") for f in fields(RunConfig))
    assert config_from_args(parser.parse_args([])) == RunConfig()
    parsed = config_from_args(
        parser.parse_args(["--noise", "20", "--no-progress", "-M", "beta=0.5", "--epochs", "3"])
    )
    assert (parsed.noise, parsed.progress, parsed.method_options, parsed.epochs) == (
        20.0,
        False,
        {"beta": 0.5},
        3,
    )
