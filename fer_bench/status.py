"""``fer-bench status``: where every run of a sweep stands, from its record and the scheduler.

The record is the truth for runs that ended (``done``, or ``failed`` with its error line). A
record that says ``running`` is checked against the run's lock: the training process holds it
until it ends, and the kernel drops it when the process dies, so a run nobody holds is
``stalled``, never ``running``. For the rest the scheduler is asked about the job ids stored at
launch (``<output_dir>/sweeps/<name>.json``): Slurm through ``squeue`` (live jobs) and ``sacct``
(ended ones, where accounting is on); local and in-process jobs by their process id.

Imports no torch: ``fer-bench status --output-dir`` answers in well under a second.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fer_bench.config import DEFAULT_OUTPUT_DIR
from fer_bench.errors import FerBenchError
from fer_bench.scheduler import (
    ACTIVE_SLURM_STATES,
    PENDING_SLURM_STATES,
    is_local,
    load_jobs,
    lock_holder,
    scheduler_states,
)


@dataclass
class RunStatus:
    run_id: str
    state: str  # done|failed|running|pending|interrupted|cancelled|timeout|stalled|missing
    job_id: str | None = None
    scheduler_state: str | None = None
    detail: str = ""


def combine(
    run_id: str,
    record: dict[str, Any] | None,
    job: dict[str, Any] | None,
    sched: str | None,
    holder: str | None = None,
) -> RunStatus:
    """One run's state: a finished record wins, then a live lock holder, then the scheduler,
    then what the record says. ``holder`` is who holds the run's lock (``None``: nobody)."""
    from fer_bench.results import RunRecord

    job_id = job.get("job_id") if job else None
    run = RunRecord(record or {})
    status = run.status
    st = RunStatus(run_id, "missing", job_id, sched)
    if status == "done":
        st.state = "done"
        acc = run.test_accuracy()
        st.detail = f"test accuracy {acc:.2f}%" if acc is not None else ""
    elif sched in PENDING_SLURM_STATES:
        st.state = "pending"
        st.detail = (
            "requeued; resumes from its checkpoint"
            if status in ("running", "interrupted", "failed")
            else ""
        )
    elif status == "failed":  # newer than a job still winding down (COMPLETING)
        st.state = "failed"
        st.detail = run.error or "no error recorded"
    elif holder is not None:  # a live process trains it, whatever its job's state says
        st.state = "running"
        st.detail = f"{_progress(record)} ({holder})".strip()
    elif status == "running" and sched in ACTIVE_SLURM_STATES:  # its process died: slurmd lost
        _stalled(st, record, job)
        st.detail += f"; its job is still {sched}"
    elif sched in ACTIVE_SLURM_STATES:
        st.state = "running"
        st.detail = _progress(record)
    elif sched and sched.startswith("CANCELLED"):  # scancel: its SIGTERM left "interrupted"
        st.state = "cancelled"
        st.detail = "cancelled in the scheduler" + (f"; {_progress(record)}" if record else "")
        if status == "interrupted":
            st.detail += "; launching the sweep again resumes it"
    elif status == "interrupted":  # the record says why the job ended
        st.state = "interrupted"
        st.detail = f"stopped at {_progress(record)} ({run.error}); rerun to resume"
    elif sched == "TIMEOUT":
        st.state = "timeout"
        st.detail = "hit its time limit and was not requeued" + _log_hint(job)
    elif sched in {"FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED"}:
        st.state = "failed"
        st.detail = f"job ended {sched} before the run recorded an error" + _log_hint(job)
    elif status == "unreadable":
        st.state = "failed"
        st.detail = "record.json is unreadable"
    elif status == "running":  # nobody holds its lock: the process that trained it is gone
        _stalled(st, record, job)
    elif job is not None:
        st.state = "failed" if sched in {"COMPLETED", "ENDED"} else "missing"
        st.detail = f"job {sched or 'not found'} but no run record" + _log_hint(job)
    else:
        st.detail = "not launched"
    return st


def _stalled(st: RunStatus, record: dict[str, Any] | None, job: dict[str, Any] | None) -> None:
    st.state = "stalled"
    where = _progress(record) or "its start"
    again = "rerun it" if job is None else "relaunch the sweep"
    st.detail = f"no process trains it (it died at {where}); {again} to resume"


def _progress(record: dict[str, Any] | None) -> str:
    from fer_bench.results import RunRecord

    return RunRecord(record).progress if record else ""


def _log_hint(job: dict[str, Any] | None) -> str:
    if not job or not job.get("folder"):
        return ""
    return "" if is_local(job) else f" (logs: {job['folder']}/{job['job_id']})"


def collect_status(output_dir: Path | None, sweep_file: str | None = None) -> list[RunStatus]:
    """Every run of the sweep (expected ones included) or, without one, every run on disk."""
    from fer_bench.results import RECORD_NAME, load_record

    if sweep_file:
        from fer_bench.sweep import load_sweep, resolve_runs

        sweep = load_sweep(sweep_file, output_dir=output_dir)
        output_dir = sweep.output_dir
        run_ids = list(resolve_runs(sweep.configs))
        jobs = load_jobs(output_dir, sweep.name)
        kept = sweep.kept_records
    else:
        if output_dir is None:
            raise FerBenchError("status needs --output-dir or --sweep")
        output_dir = Path(output_dir)
        jobs = load_jobs(output_dir)
        on_disk = sorted(p.parent.name for p in output_dir.glob(f"*/{RECORD_NAME}"))
        run_ids = list(dict.fromkeys([*on_disk, *sorted(jobs)]))
        kept = None
    sched = scheduler_states({r: jobs[r] for r in run_ids if r in jobs})
    out = []
    for r in run_ids:
        record = load_record(output_dir, r, kept)
        held = lock_holder(output_dir, r) if record and record.status == "running" else None
        out.append(combine(r, record.data if record else None, jobs.get(r), sched.get(r), held))
    return out


# --- command line -----------------------------------------------------------------------------


def register_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "status",
        help="show each run's state (pending, running, done, failed with its error)",
        description="Each run's state from the results directory and the scheduler.",
    )
    p.add_argument(
        "--output-dir", help="results directory (default: the sweep's, else results/runs)"
    )
    p.add_argument("--sweep", help="a sweep YAML: list its runs, including ones not launched yet")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_status)


def _cmd_status(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    if args.sweep:
        statuses = collect_status(Path(args.output_dir) if args.output_dir else None, args.sweep)
    else:
        out_dir = Path(args.output_dir or DEFAULT_OUTPUT_DIR)
        if not out_dir.is_dir():
            raise FerBenchError(f"no results directory {out_dir}; pass --output-dir or --sweep")
        statuses = collect_status(out_dir)
    if args.json:
        print(json.dumps([asdict(s) for s in statuses], indent=1))
        return 0
    rows = [(s.run_id, s.state, s.job_id or "-", s.detail) for s in statuses]
    print(tabulate(rows, headers=["run_id", "state", "job", "detail"], tablefmt="simple"))
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s.state] = counts.get(s.state, 0) + 1
    print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no runs")
    return 0
