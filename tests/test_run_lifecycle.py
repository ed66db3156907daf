"""A run's life on a cluster: one process at a time (the run lock), SIGTERM as an interruption,
``status`` telling a live holder from a dead one, resume bookkeeping, threads, disk."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from sweep_helpers import TINY_GRID, wait_until, write_sweep

from fer_bench.cli import main
from fer_bench.launch import plan_sweep
from fer_bench.sweep import load_sweep

TINY_DATA = {"num_train": 240, "num_test": 70, "size": 32}
TINY = ["--batch-size", "32", "--image-size", "32", "--backbone", "test_resnet", "--device", "cpu"]
TINY += [arg for k, v in TINY_DATA.items() for arg in ("-D", f"{k}={v}")] + ["--no-progress"]


def _record(out: Path) -> dict | None:
    paths = list(out.glob("*/record.json"))
    try:
        return json.loads(paths[0].read_text()) if paths else None
    except (OSError, ValueError):
        return None


def _start(out: Path, epochs: int) -> subprocess.Popen:
    argv = ["run", "--epochs", str(epochs), "--output-dir", str(out), *TINY]
    return subprocess.Popen(
        [sys.executable, "-m", "fer_bench.cli", *argv], stderr=subprocess.PIPE, text=True
    )


def _status(capsys, out: Path) -> str:
    capsys.readouterr()
    assert main(["status", "--output-dir", str(out)]) == 0
    return capsys.readouterr().out


def test_one_process_per_run_sigterm_interrupts_and_status_tells_dead_from_live(tmp_path, capsys):
    out = tmp_path / "runs"
    first = _start(out, epochs=200)
    try:
        wait_until(lambda: len((_record(out) or {}).get("history") or []) >= 1, 120, "an epoch")
        run_dir = next(out.glob("*/record.json")).parent

        # A second run of the same experiment refuses, naming the holder.
        assert main(["run", "--epochs", "200", "--output-dir", str(out), *TINY]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert f"run {run_dir.name} is already being trained by host " in err
        assert f"pid {first.pid}" in err
        table = _status(capsys, out)
        assert " running " in table and f"pid {first.pid}" in table
        # A sweep of the same run leaves it to the process that trains it.
        grid = {**TINY_GRID, "epochs": 200, "dataset_options": {**TINY_DATA}}
        (planned,) = plan_sweep(load_sweep(write_sweep(tmp_path / "s.yaml", grid, out)))
        assert planned.run_id == run_dir.name and not planned.submit
        assert (
            planned.reason.startswith("trained by host ") and f"pid {first.pid}" in planned.reason
        )

        # Killed outright (a lost node): the record still says running, nobody holds the lock.
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        first.kill()
        first.wait(30)
    dead = _record(out)
    assert dead["status"] == "running"
    table = _status(capsys, out)
    assert " stalled " in table and " running " not in table and "no process trains it" in table

    # The rerun resumes, says so, and keeps the first attempt's bookkeeping.
    second = _start(out, epochs=200)
    try:
        wait_until(
            lambda: (r := _record(out)) and r.get("attempts") == 2 and r["status"] == "running",
            120,
            "the second attempt to start",
        )
        resumed = _record(out)
        assert len(resumed["history"]) >= len(dead["history"])  # kept while it resumes
        # Stop it once it has trained past the checkpoint (so it did load it), not earlier:
        # on a loaded machine the record's attempt counter is written seconds before the
        # checkpoint is read.
        wait_until(
            lambda: len((_record(out) or {}).get("history") or []) > len(dead["history"]) + 1,
            120,
            "the second attempt to train an epoch",
        )
        second.send_signal(signal.SIGTERM)
        _, stderr = second.communicate(timeout=60)
    finally:
        second.kill()
        second.wait(30)
    assert second.returncode == 128 + signal.SIGTERM, stderr
    # The checkpoint is written just before the record, so a kill between them leaves the
    # checkpoint one epoch ahead of the record.
    resumed_at = re.search(r"resuming from epoch (\d+) of 200", stderr)
    assert resumed_at and int(resumed_at.group(1)) - len(dead["history"]) in (0, 1), stderr
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr
    final = _record(out)
    assert final["status"] == "interrupted" and final["error"] == "stopped by SIGTERM"
    assert final["first_started_at"] == dead["started_at"] != final["started_at"]
    assert final["attempts"] == 2 and final["resumed_from_epoch"] == int(resumed_at.group(1))
    assert final["wall_time_s"] > dead["wall_time_s"]
    assert final["history"][: len(dead["history"])] == dead["history"]
    assert not (run_dir / "run.lock").exists()
    assert " interrupted " in _status(capsys, out)


def test_concurrent_launchers_run_each_run_once(tmp_path):
    out = tmp_path / "runs"
    path = write_sweep(
        tmp_path / "s.yaml", {**TINY_GRID, "epochs": 2, "noise": [0, 20]}, out, name="twice"
    )
    command = [sys.executable, "-m", "fer_bench.cli", "sweep", str(path)]
    launchers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=240)[0] for p in launchers]
    assert [p.returncode for p in launchers] == [0, 0], outputs
    assert sum(o.count("done: test accuracy") for o in outputs) == 2, outputs
    records = [json.loads(p.read_text()) for p in out.glob("*/record.json")]
    assert len(records) == 2 and all(r["attempts"] == 1 for r in records)
    jobs = json.loads((out / "sweeps" / "twice.json").read_text())["jobs"]
    assert {e["executor"] for e in jobs.values()} == {"inprocess"} and len(jobs) == 2
    assert not list((out / "sweeps").glob("*.lock"))


def test_the_job_file_is_updated_under_its_lock(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from fer_bench.scheduler import store_jobs
    from fer_bench.sweep import load_sweep

    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", TINY_GRID, tmp_path / "runs"))

    def store(worker: int) -> None:
        for i in range(20):
            with sweep.jobs_lock():
                store_jobs(sweep, [(f"run-{worker}-{i}", f"{worker}_{i}")], "slurm")

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(store, range(6)))
    assert len(json.loads(sweep.jobs_file.read_text())["jobs"]) == 120


def test_a_done_run_keeps_its_weights_not_its_optimizer_and_uses_the_cpus_it_was_given(
    tmp_path, monkeypatch
):
    threads = torch.get_num_threads()
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    try:
        assert main(["run", "--epochs", "1", "--output-dir", str(tmp_path / "a"), *TINY]) == 0
        kept = ["run", "--epochs", "1", "--keep-checkpoint", "--output-dir", str(tmp_path / "b")]
        assert main([*kept, *TINY]) == 0
    finally:
        torch.set_num_threads(threads)
    run_dir = next((tmp_path / "a").glob("*/record.json")).parent
    assert sorted(p.name for p in run_dir.iterdir()) == ["final_weights.pt", "record.json"]
    weights = torch.load(run_dir / "final_weights.pt", weights_only=True)
    assert weights and all(isinstance(v, torch.Tensor) for v in weights.values())
    assert "classifier.weight" in weights and not any("_orig_mod" in k for k in weights)
    record = json.loads((run_dir / "record.json").read_text())
    assert record["hardware"]["torch_threads"] == 1
    assert record["hardware"]["torch_threads_from"] == "SLURM_CPUS_PER_TASK"
    assert record["attempts"] == 1 and record["first_started_at"] == record["started_at"]
    kept_dir = next((tmp_path / "b").glob("*/record.json")).parent
    assert {p.name for p in kept_dir.iterdir()} == {
        "checkpoint.pt",
        "final_weights.pt",
        "record.json",
    }


@pytest.mark.parametrize("command", ["status", "report"])
def test_status_and_report_import_no_torch(tmp_path, command):
    """Records with the fields the runner writes; the commands read them without torch."""
    runs = tmp_path / "runs"
    for seed in (0, 1):
        record = {
            "run_id": f"synthetic-scn-sym20-s{seed}-0",
            "status": "done",
            "config": {"method": "scn", "dataset": "synthetic", "noise": 20, "seed": seed},
            "identity": {"method": "scn", "dataset": "synthetic", "noise": 20, "seed": seed},
            "method_defaults": {"relabel": True},
            "final": {"last": {"test": {"accuracy": 70.0 + seed}}},
            "diagnostics": {},
        }
        (runs / record["run_id"]).mkdir(parents=True)
        (runs / record["run_id"] / "record.json").write_text(json.dumps(record))
    argv = ["status", "--output-dir", str(runs)]
    if command == "report":
        argv = ["report", "--results", str(runs), "--out", str(tmp_path / "out"), "--no-plots"]
    script = textwrap.dedent(
        f"""
        import sys
        from fer_bench.cli import main
        assert main({argv!r}) == 0
        assert "torch" not in sys.modules, "imported torch"
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 0, proc.stderr
