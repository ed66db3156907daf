"""Sweeps on a real Slurm cluster through submitit (start one with ``bash slurm/start-cluster.sh``).

Covers a job array, a run that raises, a cancelled job and a preempted job that submitit
requeues and the runner resumes from its epoch checkpoint. Every job runs the real runner on a
tiny synthetic set.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from sweep_helpers import FAILING_ERROR, FAILING_GRID, TINY_GRID, wait_until, write_sweep

from fer_bench.cli import main
from fer_bench.launch import launch, wait_for_jobs
from fer_bench.results import read_record
from fer_bench.scheduler import slurm_job_states
from fer_bench.status import collect_status
from fer_bench.sweep import load_sweep


def _why_no_slurm() -> str | None:
    if shutil.which("sbatch") is None:
        return "no sbatch on PATH (bash slurm/start-cluster.sh starts a local cluster)"
    try:
        info = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20
        )
        acct = subprocess.run(["sacct", "-n", "-X", "-o", "JobID"], capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"the Slurm cluster is not answering ({exc})"
    if info.returncode != 0 or not {"idle", "mixed", "allocated"} & set(info.stdout.split()):
        return "the Slurm cluster is not answering or has no usable node"
    if acct.returncode != 0:
        return "Slurm accounting (sacct) is off: submitit cannot see job states"
    return None


_REASON = _why_no_slurm()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]

SLURM = {"kind": "slurm", "cpus_per_task": 1, "mem_gb": 1, "timeout_min": 15}


def _record(out_dir: Path, run_id: str) -> dict | None:
    path = out_dir / run_id / "record.json"
    try:
        return read_record(path)
    except (OSError, ValueError):
        return None


def test_job_array_with_a_failing_run(tmp_path, capsys):
    out_dir = tmp_path / "runs"
    grid = [{**TINY_GRID, "noise": [0, 20]}, FAILING_GRID]
    path = write_sweep(tmp_path / "s.yaml", grid, out_dir, SLURM, name="arr")
    sweep = load_sweep(path)
    result = launch(sweep)
    assert len(result.jobs) == 3
    arrays = {job.job_id.split("_")[0] for job in result.jobs}
    assert len(arrays) == 1, "one job array per sweep"
    stored = json.loads((out_dir / "sweeps" / "arr.json").read_text())["jobs"]
    assert {e["job_id"] for e in stored.values()} == {j.job_id for j in result.jobs}

    lines: list[str] = []
    wait_for_jobs(sweep, result, out=lines.append, poll_s=1)
    failing = next(p for p in result.submitted if p.config.lr == FAILING_GRID["lr"])
    assert result.failed == [failing.run_id]
    assert any(FAILING_ERROR in line and failing.run_id in line for line in lines)
    job = result.jobs[result.submitted.index(failing)]
    with pytest.raises(Exception, match=FAILING_ERROR):
        job.result()  # the error reaches the user through submitit
    record = _record(out_dir, failing.run_id)
    assert record["status"] == "failed" and FAILING_ERROR in record["error"]
    assert "Traceback" in record["traceback"]
    for p in result.submitted:
        if p is not failing:
            assert _record(out_dir, p.run_id)["status"] == "done"

    capsys.readouterr()
    assert main(["status", "--sweep", str(path)]) == 0
    table = capsys.readouterr().out
    assert table.count(" done ") == 2 and FAILING_ERROR in table
    assert launch(sweep).submitted == []  # done is skipped, failed waits for --retry-failed


def test_cancelled_job_surfaces_as_cancelled(tmp_path):
    out_dir = tmp_path / "runs"
    grid = {**TINY_GRID, "epochs": 500}
    path = write_sweep(tmp_path / "s.yaml", grid, out_dir, SLURM, name="cancel")
    sweep = load_sweep(path)
    result = launch(sweep)
    (job,), (planned,) = result.jobs, result.submitted
    wait_until(lambda: _record(out_dir, planned.run_id), 90, "the run to start")
    subprocess.run(["scancel", job.job_id], check=True)
    with pytest.raises(Exception, match="(?i)cancel"):
        job.result()
    (status,) = wait_until(
        lambda: [s for s in collect_status(None, str(path)) if s.state == "cancelled"],
        60,
        "status to report the cancellation",
    )
    assert status.job_id == job.job_id and status.scheduler_state.startswith("CANCELLED")


def test_preempted_job_is_requeued_and_resumes_from_its_checkpoint(tmp_path):
    """Interrupt one run after its first epochs; it must end exactly like an uninterrupted twin."""
    options = {"num_train": 240, "num_test": 42, "size": 32}
    grid = {**TINY_GRID, "epochs": 4, "noise": 20, "dataset_options": options}
    twin = load_sweep(write_sweep(tmp_path / "a.yaml", grid, tmp_path / "ref", SLURM, name="ref"))
    sweep = load_sweep(write_sweep(tmp_path / "b.yaml", grid, tmp_path / "int", SLURM, name="int"))
    reference = launch(twin)
    result = launch(sweep)
    (job,), (planned,) = result.jobs, result.submitted
    run_dir = tmp_path / "int" / planned.run_id

    wait_until(lambda: (run_dir / "checkpoint.pt").exists(), 120, "the first epoch checkpoint")
    # What Slurm sends before a time limit or on preemption: submitit checkpoints and requeues.
    subprocess.run(["scancel", "--signal=USR2", job.job_id], check=True)
    interrupted = wait_until(
        lambda: (
            (r := _record(tmp_path / "int", planned.run_id)) and r["status"] == "interrupted" and r
        ),
        60,
        "the interrupted attempt to stop",
    )
    assert "SystemExit" in interrupted["error"]
    kept = interrupted["history"]
    assert 1 <= len(kept) < 4, "interrupted mid-run"
    wait_until(
        lambda: (
            slurm_job_states({job.job_id}).get(job.job_id) in {"PENDING", "REQUEUED", "RUNNING"}
        ),
        30,
        "the job to be requeued",
    )

    summary = job.result()
    ref_summary = reference.jobs[0].result()
    final = _record(tmp_path / "int", planned.run_id)
    ref = _record(tmp_path / "ref", planned.run_id)
    assert final["status"] == "done" and len(final["history"]) == 4
    # The epochs before the interruption come from the checkpoint, timings included.
    assert final["history"][: len(kept)] == kept
    assert summary["test_accuracy"] == ref_summary["test_accuracy"]
    assert final["final"]["last"]["test"] == ref["final"]["last"]["test"]
    assert [e["val"] for e in final["history"]] == [e["val"] for e in ref["history"]]
    assert "Requeued" in (job.stderr() or "") + (job.stdout() or "")
