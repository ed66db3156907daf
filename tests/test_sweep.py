"""Sweep files, planning, the in-process and local executors, and ``fer-bench status``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sweep_helpers import FAILING_ERROR, FAILING_GRID, TINY_GRID, write_sweep

from fer_bench.cli import main
from fer_bench.errors import FerBenchError
from fer_bench.launch import launch, plan_sweep
from fer_bench.results import read_record
from fer_bench.scheduler import expand_job_ids, slurm_parameters
from fer_bench.status import RunStatus, collect_status, combine
from fer_bench.sweep import load_sweep, parse_sweep

REPO = Path(__file__).resolve().parent.parent


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# --- reading sweep files ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"grid": {"method": "ce"}, "executr": {}}, "executr"),
        ({"grid": {"method": "ce", "nosie": 20}}, "nosie"),
        ({"grid": {"method": "ce"}, "executor": {"gpus": 1}}, "gpus"),
        ({"grid": [{"method": "ce"}, {"sed": [0, 1]}]}, "sed"),
    ],
)
def test_unknown_keys_anywhere_are_named(tmp_path, capsys, data, named):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    err = _error(capsys, ["sweep", str(path), "--dry-run"])
    assert named in err and "unknown" in err


def test_missing_file_bad_yaml_and_bad_values_are_one_line(tmp_path, capsys):
    assert "not found" in _error(capsys, ["sweep", str(tmp_path / "nope.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid: [unclosed\n")
    assert "not valid YAML" in _error(capsys, ["sweep", str(bad), "--dry-run"])
    kind = write_sweep(tmp_path / "k.yaml", TINY_GRID, tmp_path / "runs", {"kind": "pbs"})
    assert "unknown executor kind 'pbs'" in _error(capsys, ["sweep", str(kind), "--dry-run"])
    noise = write_sweep(tmp_path / "n.yaml", {**TINY_GRID, "noise": [10, 120]}, tmp_path / "runs")
    assert "[0, 100)" in _error(capsys, ["sweep", str(noise), "--dry-run"])
    method = write_sweep(tmp_path / "m.yaml", {**TINY_GRID, "method": "nope"}, tmp_path / "runs")
    assert "unknown method 'nope'" in _error(capsys, ["sweep", str(method), "--dry-run"])
    status = _error(capsys, ["status", "--sweep", str(tmp_path / "nope.yaml")])
    assert "not found" in status


def test_grid_expands_lists_as_axes_in_file_order(tmp_path):
    grid = {
        "method": ["ce", "scn"],
        "noise": [0, 30],
        "seed": [0, 1, 2],
        "dataset_options": {"num_train": 50},
        "method_options": [{}, {"dropout": 0.5}],
    }
    sweep = parse_sweep({"grid": grid, "output_dir": str(tmp_path)})
    assert len(sweep.configs) == 2 * 2 * 3 * 2
    first, second = sweep.configs[0], sweep.configs[1]
    assert (first.method, first.noise, first.seed, first.method_options) == ("ce", 0, 0, {})
    assert second.method_options == {"dropout": 0.5}  # the last axis varies fastest
    assert all(c.dataset_options == {"num_train": 50} for c in sweep.configs)
    assert all(c.output_dir == str(tmp_path) for c in sweep.configs)


def test_a_list_of_grids_is_their_union(tmp_path):
    data = {"grid": [{"noise": [0, 10]}, {"noise": 20, "noise_type": "asymmetric"}]}
    sweep = parse_sweep(data, output_dir=tmp_path)
    assert [(c.noise, c.noise_type) for c in sweep.configs] == [
        (0, "symmetric"),
        (10, "symmetric"),
        (20, "asymmetric"),
    ]
    with pytest.raises(FerBenchError, match="top level"):
        parse_sweep({"grid": {"output_dir": "x"}})


def test_shipped_sweep_files(tmp_path):
    paper = load_sweep(REPO / "slurm" / "scn-paper-noise.yaml", output_dir=tmp_path)
    assert len(paper.configs) == 3 * 3 * 4 * 3
    assert {c.dataset for c in paper.configs} == {"rafdb", "ferplus", "affectnet"}
    assert {c.method for c in paper.configs} == {"ce", "scn", "mtac"}
    assert {c.noise for c in paper.configs} == {0, 10, 20, 30}
    assert {c.seed for c in paper.configs} == {0, 1, 2}
    assert {c.noise_type for c in paper.configs} == {"symmetric"}
    params = slurm_parameters(paper)
    assert params["gpus_per_node"] >= 1 and params["time"] > 0
    plan = plan_sweep(paper)  # every grid point resolves against the registered datasets
    assert len({p.run_id for p in plan}) == 108 and all(p.submit for p in plan)

    # The synthetic leaderboard and its ablation show every registered method.
    from fer_bench.registry import list_methods

    methods = len(list_methods())
    tiny = load_sweep(REPO / "slurm" / "synthetic.yaml")
    assert {c.method for c in tiny.configs} == set(list_methods())
    assert len(tiny.configs) == methods * 4 * 3
    assert {c.dataset for c in tiny.configs} == {"synthetic"}
    assert len({c.run_id() for c in tiny.configs}) == methods * 4 * 3

    # The ablation reuses the leaderboard's plain runs (same ids) and adds 4 MTAC and 1 SCN variants.
    ablation = load_sweep(REPO / "slurm" / "synthetic-ablation.yaml")
    ablation_ids = {c.run_id() for c in ablation.configs}
    assert len(ablation_ids) == (methods + 4 + 1) * 3
    plain = {c.run_id() for c in tiny.configs if c.noise == 30}
    assert plain < ablation_ids


def test_the_readme_sweep_example_is_a_valid_sweep(tmp_path):
    import re

    text = (REPO / "README.md").read_text()
    example = re.search(r"```yaml\n(name: my-sweep.*?)```", text, re.S).group(1)
    path = tmp_path / "example.yaml"
    path.write_text(example)
    sweep = load_sweep(path, output_dir=tmp_path)
    plan = plan_sweep(sweep)  # every grid point resolves: options exist for their method
    assert len(plan) == 3 * 4 * 3 + 2 * 4 * 3
    assert slurm_parameters(sweep)["partition"] == "gpu"


def test_dry_run_lists_run_ids_and_executor_parameters(tmp_path, capsys):
    grid = {**TINY_GRID, "noise": [0, 20], "seed": [0, 1]}
    executor = {"kind": "slurm", "partition": "gpu", "gpus_per_node": 2, "account": "fer"}
    path = write_sweep(tmp_path / "s.yaml", grid, tmp_path / "runs", executor)
    assert main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    sweep = load_sweep(path)
    ids = [p.run_id for p in plan_sweep(sweep)]
    assert len(ids) == 4 and all(i in out for i in ids)
    for text in (
        "partition: gpu",
        "gpus_per_node: 2",
        "account: fer",
        "job array",
        "nothing submitted",
    ):
        assert text in out
    assert not (tmp_path / "runs").exists()  # nothing submitted, nothing written


# --- running ----------------------------------------------------------------------------------


def test_inprocess_runs_skips_done_and_retries_failed_only_when_asked(tmp_path, capsys):
    out_dir = tmp_path / "runs"
    grid = [{**TINY_GRID, "noise": [0, 20]}, FAILING_GRID]
    path = write_sweep(tmp_path / "s.yaml", grid, out_dir)

    assert main(["sweep", str(path)]) == 1  # one run failed
    captured = capsys.readouterr()
    assert FAILING_ERROR in captured.out and "1 run(s) failed" in captured.err
    sweep = load_sweep(path)
    plan = plan_sweep(sweep)
    states = sorted(p.state for p in plan)
    assert states == ["done", "done", "failed"] and not any(p.submit for p in plan)
    failed = next(p for p in plan if p.state == "failed")
    record = read_record(out_dir / failed.run_id / "record.json")
    assert record["status"] == "failed" and FAILING_ERROR in record["error"]

    done_id = next(p.run_id for p in plan if p.state == "done")
    mtime = (out_dir / done_id / "record.json").stat().st_mtime_ns
    assert main(["sweep", str(path)]) == 0
    assert "nothing to run" in capsys.readouterr().out
    assert (out_dir / done_id / "record.json").stat().st_mtime_ns == mtime

    assert [p.run_id for p in plan_sweep(sweep, retry_failed=True) if p.submit] == [failed.run_id]
    assert main(["sweep", str(path), "--retry-failed"]) == 1
    assert "[1/1] " + failed.run_id in capsys.readouterr().out

    # status: the records' states, the failure with its one-line error, and runs not launched
    assert main(["status", "--output-dir", str(out_dir)]) == 0
    table = capsys.readouterr().out
    assert table.count(" done ") == 2 and FAILING_ERROR in table
    bigger = write_sweep(
        tmp_path / "s.yaml", [{**TINY_GRID, "noise": [0, 20, 30]}, FAILING_GRID], out_dir
    )
    statuses = {s.run_id: s for s in collect_status(None, str(bigger))}
    assert sorted(s.state for s in statuses.values()) == ["done", "done", "failed", "missing"]
    assert main(["status", "--sweep", str(bigger), "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert {r["state"] for r in as_json} == {"done", "failed", "missing"}


def test_interrupted_runs_are_resumed_without_retry_failed(tmp_path):
    """Ctrl-C or a scheduler's stop signal is not a failure: the next launch resumes the run."""
    from fer_bench.results import write_json_atomic

    out_dir = tmp_path / "runs"
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", TINY_GRID, out_dir))
    (planned,) = plan_sweep(sweep)
    write_json_atomic(
        out_dir / planned.run_id / "record.json",
        {"status": "interrupted", "error": "KeyboardInterrupt", "history": [{}]},
    )
    (again,) = plan_sweep(sweep)
    assert again.submit and again.state == "interrupted" and again.reason == "resume"


def test_local_executor_runs_through_submitit_processes(tmp_path, capsys):
    out_dir = tmp_path / "runs"
    executor = {"kind": "local", "array_parallelism": 2, "timeout_min": 5}
    path = write_sweep(tmp_path / "s.yaml", TINY_GRID, out_dir, executor, name="loc")
    result = launch(load_sweep(path), poll_s=0.2)
    out = capsys.readouterr().out
    assert len(result.jobs) == 1 and not result.failed
    assert "started " in out and "done " in out
    jobs = json.loads((out_dir / "sweeps" / "loc.json").read_text())["jobs"]
    assert [e["executor"] for e in jobs.values()] == ["local"]
    assert [s.state for s in collect_status(out_dir)] == ["done"]


# --- status logic -----------------------------------------------------------------------------


def test_job_id_expansion():
    assert expand_job_ids("12") == ["12"]
    assert expand_job_ids("12_3") == ["12_3"]
    assert expand_job_ids("12_[4-6,9%2]") == ["12_4", "12_5", "12_6", "12_9"]
    assert expand_job_ids("12.batch") == []


@pytest.mark.parametrize(
    ("record", "sched", "state", "detail"),
    [
        (
            {"status": "done", "final": {"last": {"test": {"accuracy": 81.5}}}},
            "COMPLETING",
            "done",
            "81.50",
        ),
        ({"status": "failed", "error": "boom"}, "FAILED", "failed", "boom"),
        ({"status": "failed", "error": "SystemExit"}, "PENDING", "pending", "requeued"),
        (None, "PENDING", "pending", ""),
        (  # no process holds the run's lock: whatever the job says, nobody trains it
            {"status": "running", "history": [{}], "config": {"epochs": 4}},
            "RUNNING",
            "stalled",
            "no process trains it (it died at epoch 1/4); relaunch the sweep to resume",
        ),
        (None, "CANCELLED", "cancelled", "cancelled"),
        ({"status": "running", "history": []}, "TIMEOUT", "timeout", "time limit"),
        ({"status": "running", "history": []}, "COMPLETED", "stalled", "resume"),
        (
            {"status": "interrupted", "error": "SystemExit", "history": [{}]},
            "REQUEUED",
            "pending",
            "requeued; resumes",
        ),
        (
            {
                "status": "interrupted",
                "error": "KeyboardInterrupt",
                "history": [{}],
                "config": {"epochs": 4},
            },
            "COMPLETED",
            "interrupted",
            "stopped at epoch 1/4 (KeyboardInterrupt); rerun to resume",
        ),
        ({"status": "interrupted", "error": "SystemExit: -1"}, "PREEMPTED", "interrupted", "rerun"),
        (None, "OUT_OF_MEMORY", "failed", "OUT_OF_MEMORY"),
        (None, None, "missing", "not found"),
    ],
)
def test_combine_record_and_scheduler(record, sched, state, detail):
    job = {"executor": "slurm", "job_id": "7_1", "folder": "/x"}
    st = combine("r", record, job, sched)
    assert isinstance(st, RunStatus)
    assert st.state == state and detail in st.detail and st.job_id == "7_1"
    assert combine("r", None, None, None).detail == "not launched"


def test_defaults_apply_to_every_grid_mapping_and_a_mapping_overrides_them():
    from fer_bench.sweep import parse_sweep

    sweep = parse_sweep(
        {
            "defaults": {"epochs": 3, "seed": 7},
            "grid": [{"method": "ce"}, {"method": "scn", "epochs": 5}],
        }
    )
    assert [(c.method, c.epochs, c.seed) for c in sweep.configs] == [("ce", 3, 7), ("scn", 5, 7)]


def test_combine_asks_the_run_lock_whether_a_running_record_is_alive():
    record = {"status": "running", "history": [{}], "config": {"epochs": 4}}
    job = {"executor": "slurm", "job_id": "7_1", "folder": "/x"}
    live = combine("r", record, job, "RUNNING", holder="host n1 pid 42")
    assert (live.state, live.detail) == ("running", "epoch 1/4 (host n1 pid 42)")
    # slurmd died, Slurm gave up on the job, the orphaned process still trains: running
    orphan = combine("r", record, job, "NODE_FAIL", holder="host n1 pid 42")
    assert orphan.state == "running"
    # killed with the node (or SIGKILL): the record still says running, the lock is gone
    for sched in ("RUNNING", "NODE_FAIL", None):
        assert combine("r", record, job, sched).state in {"stalled", "failed"}
    assert combine("r", record, None, None).state == "stalled"
    assert "rerun it to resume" in combine("r", record, None, None).detail
    # scancel: the run recorded its SIGTERM as interrupted; launching again resumes it
    stopped = {**record, "status": "interrupted", "error": "stopped by SIGTERM"}
    cancelled = combine("r", stopped, job, "CANCELLED by 0")
    assert cancelled.state == "cancelled" and "resumes it" in cancelled.detail


def test_every_executor_kind_has_a_runner_and_a_plan(tmp_path):
    """The kinds table is the one list: the launcher runs each kind and a dry run describes it."""
    from fer_bench.launch import _RUNNERS
    from fer_bench.scheduler import EXECUTOR_KINDS, EXECUTORS

    assert set(_RUNNERS) == set(EXECUTOR_KINDS) == set(EXECUTORS)
    assert [k for k in EXECUTOR_KINDS if not EXECUTORS[k].local] == ["slurm"]


def test_a_sweep_job_trains_the_run_as_launched(tiny_run_config, monkeypatch):
    """The launcher resolves and hashes a config once; its job trains it without doing either
    again, and redoes both only when a hashed input file changed since launch."""
    from fer_bench import runner
    from fer_bench.launch import SweepJob
    from fer_bench.sweep import resolve_runs

    ((run_id, run),) = resolve_runs([tiny_run_config(epochs=1)]).items()
    original_resolve = runner.resolve_config
    calls = []

    def counting_resolve(config):
        calls.append(config)
        return original_resolve(config)

    monkeypatch.setattr(runner, "resolve_config", counting_resolve)
    launched = {"identity": run.identity, "inputs": run.inputs}
    summary = SweepJob()(run.config.to_dict(), launched)
    assert (summary["run_id"], summary["status"], calls) == (run_id, "done", [])

    # A changed input file (here: stamps that no longer match) means resolve and hash again.
    stale = {"identity": run.identity, "inputs": {"weights.pth": [1, 2]}}
    assert SweepJob()(run.config.to_dict(), stale)["run_id"] == run_id
    assert len(calls) == 1


def test_input_stamps_follow_the_hashed_files(tmp_path):
    from fer_bench.config import RunConfig

    noise_file = tmp_path / "noisy.txt"
    noise_file.write_text("a 1\n")
    cfg = RunConfig(noise_type="file", noise_file=str(noise_file))
    before = cfg.input_stamps()
    assert list(before) == [str(noise_file)]
    noise_file.write_text("a 1\nb 2\n")
    assert cfg.input_stamps() != before
    assert RunConfig().input_stamps() == {}


def test_kept_records_finish_a_sweep_on_another_machine(tmp_path, capsys):
    """A sweep's ``kept_records`` (the finished records committed beside its leaderboard) count
    as done where the run directories are gone: a new machine trains only what is missing, and
    report and status read them."""
    from fer_bench.cli import main
    from fer_bench.status import collect_status

    first = write_sweep(tmp_path / "a.yaml", TINY_GRID, tmp_path / "runs-a")
    launch(load_sweep(first), out=lambda _line: None)
    kept = tmp_path / "committed"
    report = ["report", "--sweep", str(first), "--no-plots", "--out", str(tmp_path / "r1")]
    assert main([*report, "--keep-records", str(kept)]) == 0

    # The same sweep on a machine with no run directories, only the committed records.
    data = yaml.safe_load(first.read_text())
    data.update(output_dir=str(tmp_path / "runs-b"), kept_records=str(kept))
    second = tmp_path / "b.yaml"
    second.write_text(yaml.safe_dump(data))
    plan = plan_sweep(load_sweep(second))
    assert [(p.state, p.submit) for p in plan] == [("done", False)]
    assert [s.state for s in collect_status(None, str(second))] == ["done"]
    capsys.readouterr()
    assert (
        main(["report", "--sweep", str(second), "--no-plots", "--out", str(tmp_path / "r2")]) == 0
    )
    counted = json.loads((tmp_path / "r2" / "leaderboard.json").read_text())["runs"]
    assert (counted["done"], counted["missing"]) == (1, 0)
