"""``fer-bench sweep``: expand a sweep file and run it on Slurm, local processes or in-process.

Every run is one call of :class:`SweepJob` with its resolved config and identity (resolved and
hashed once, here). The runner makes a run
restartable (it resumes from the run's ``checkpoint.pt``), so the job only has to tell submitit
how to resubmit itself: on a time limit or a preemption submitit calls ``checkpoint`` and
requeues the job, which then picks up at the last finished epoch.

Runs whose record says ``done`` are never resubmitted; ``failed`` ones only with
``--retry-failed``; runs whose job is still pending or running in the scheduler are left alone.
Job ids go to ``<output_dir>/sweeps/<name>.json`` for ``fer-bench status``. A launcher holds the
sweep's job-file lock from planning to recording what it submitted, so launchers of one sweep
started together take turns and each skips what the others submitted; local and in-process
launchers record the runs they will run as queued under their own process id first.
``--dry-run`` runs every run's pre-flight checks (:mod:`fer_bench.preflight`) and lists the ones
that would be refused.

About 390 lines, on purpose in one module: planning, the three executors' loops and the command
share ``PlannedRun``/``LaunchResult`` and the job-file lock discipline above. What the executor
kinds are, the job file and the scheduler queries live in :mod:`fer_bench.scheduler`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_bench.config import RunConfig
from fer_bench.errors import FerBenchError
from fer_bench.results import RunRecord, load_record
from fer_bench.scheduler import (
    EXECUTOR_KINDS,
    EXECUTORS,
    end_here,
    local_parameters,
    slurm_parameters,
    store_jobs,
)
from fer_bench.sweep import Sweep, load_sweep

Printer = Callable[[str], None]


class SweepJob:
    """What a scheduler runs for one run: train it (or resume it) and return a short summary.

    A class rather than a function so submitit finds ``checkpoint`` and requeues the job on a
    time limit or preemption; the state that matters lives in the run directory, so the
    resubmission is simply the same call again.
    """

    def __call__(self, config: dict[str, Any], launched: dict[str, Any]) -> dict[str, Any]:
        """``launched``: the identity and input stamps the launcher computed (see
        :func:`launched`), so the job neither resolves nor hashes its inputs again."""
        from fer_bench import runner

        record = runner.run_experiment(RunConfig.from_dict(config), **launched)
        return summarize(record)

    def checkpoint(self, config: dict[str, Any], launched: dict[str, Any]) -> Any:
        import submitit

        from fer_bench import stopping

        stopping.note_stop_signal()  # the exit that follows is a stop, not a failure

        return submitit.helpers.DelayedSubmission(SweepJob(), config, launched)


def summarize(record: dict[str, Any]) -> dict[str, Any]:
    """The few fields worth returning through a result pickle."""
    run = RunRecord(record)
    return {
        "run_id": record.get("run_id"),
        "status": run.status,
        "test_accuracy": run.test_accuracy(),
        "error": run.error,
    }


@dataclass
class PlannedRun:
    run_id: str
    config: RunConfig  # resolved
    state: str  # the record's status, "new" without one, "active" while its job is queued/running
    submit: bool
    reason: str = ""
    #: ``identity`` and ``inputs`` as the launcher computed them, handed to the job.
    launched: dict[str, Any] = field(default_factory=dict)

    def job_args(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """What a :class:`SweepJob` is called with (plain dicts: they are pickled)."""
        return self.config.to_dict(), self.launched


@dataclass
class LaunchResult:
    planned: list[PlannedRun]
    submitted: list[PlannedRun] = field(default_factory=list)
    jobs: list[Any] = field(default_factory=list)  # submitit jobs, aligned with ``submitted``
    failed: list[str] = field(default_factory=list)  # run ids that failed (local/inprocess)
    refused: dict[str, str] = field(default_factory=dict)  # dry run: run id -> pre-flight error


def readable_record(output_dir: Path, run_id: str, kept: Path | None = None) -> RunRecord | None:
    """The run's record (its kept record where it has none); None without a readable one."""
    record = load_record(output_dir, run_id, kept)
    return record if record is not None and record.readable else None


#: Why a run without a finished record is submitted, by its record's status.
_SUBMIT_REASONS = {None: "new", "failed": "retry", "running": "resume", "interrupted": "resume"}


def plan_sweep(sweep: Sweep, retry_failed: bool = False) -> list[PlannedRun]:
    """Resolve every grid point, drop duplicates, decide which runs need a job."""
    from fer_bench.scheduler import active_runs, lock_holder
    from fer_bench.sweep import resolve_runs

    active = active_runs(sweep.output_dir, sweep.name)
    planned = []
    for run_id, run in resolve_runs(sweep.configs).items():
        cfg = run.config
        record = readable_record(sweep.output_dir, run_id, sweep.kept_records)
        status = record.status if record else None
        if status == "done":
            planned.append(PlannedRun(run_id, cfg, "done", False, "done"))
        elif run_id in active:
            planned.append(
                PlannedRun(run_id, cfg, "active", False, f"job {active[run_id]} in queue")
            )
        elif status == "running" and (holder := lock_holder(sweep.output_dir, run_id)):
            # trained right now outside this sweep's jobs (fer-bench run, an orphaned process)
            planned.append(PlannedRun(run_id, cfg, "active", False, f"trained by {holder}"))
        elif status == "failed" and not retry_failed:
            planned.append(PlannedRun(run_id, cfg, "failed", False, "failed (--retry-failed)"))
        else:
            reason = _SUBMIT_REASONS.get(status, "new")
            launched = {"identity": run.identity, "inputs": run.inputs}
            planned.append(PlannedRun(run_id, cfg, status or "new", True, reason, launched))
    return planned


def launch(
    sweep: Sweep,
    retry_failed: bool = False,
    dry_run: bool = False,
    out: Printer = print,
    poll_s: float = 1.0,
) -> LaunchResult:
    """Plan the sweep, then submit (slurm), run in processes (local) or in a loop (inprocess)."""
    kind = sweep.executor["kind"]
    if dry_run:
        planned = plan_sweep(sweep, retry_failed=retry_failed)
        result = LaunchResult(planned=planned)
        _print_plan(sweep, planned, out)
        result.refused = _preflight_all(sweep, planned, out)
        _print_executor(sweep, sum(p.submit for p in planned), out)
        out("dry run: nothing submitted")
        return result
    with sweep.jobs_lock():
        planned = plan_sweep(sweep, retry_failed=retry_failed)
        todo = [p for p in planned if p.submit]
        result = LaunchResult(planned=planned)
        _print_plan(sweep, planned, out)
        if not todo:
            out("nothing to run")
            return result
        if not EXECUTORS[kind].local:  # submitted under the lock, run by the scheduler
            _RUNNERS[kind](sweep, todo, result, out, poll_s)
            return result
        # Claimed before the lock goes: another launcher now sees these runs as queued here.
        store_jobs(sweep, [(p.run_id, str(os.getpid())) for p in todo], kind, queued=True)
    try:
        _RUNNERS[kind](sweep, todo, result, out, poll_s)
    finally:
        end_here(sweep, [p.run_id for p in todo])
    return result


def _preflight_all(sweep: Sweep, planned: list[PlannedRun], out: Printer) -> dict[str, str]:
    """Every run's pre-flight checks; the device only where the runs execute on this machine."""
    from fer_bench.preflight import Preflight

    on_cluster = not EXECUTORS[sweep.executor["kind"]].local
    checker = Preflight(check_device=not on_cluster)
    refused: dict[str, str] = {}
    for p in planned:
        try:
            checker.check(p.config)
        except FerBenchError as exc:
            refused[p.run_id] = str(exc)
    note = " (device not checked: the runs execute on the cluster's nodes)" if on_cluster else ""
    if refused:
        out(f"pre-flight: {len(refused)} of {len(planned)} runs would be refused{note}:")
        for run_id, error in refused.items():
            out(f"  {run_id}: {error}")
    else:
        out(f"pre-flight: all {len(planned)} runs pass{note}")
    return refused


def _print_plan(sweep: Sweep, planned: list[PlannedRun], out: Printer) -> None:
    from tabulate import tabulate

    rows = [(p.run_id, "submit" if p.submit else "skip", p.reason) for p in planned]
    n_submit = sum(p.submit for p in planned)
    out(
        f"sweep {sweep.name}: {len(planned)} runs, {n_submit} to run, records in {sweep.output_dir}"
    )
    out(tabulate(rows, headers=["run_id", "action", "why"], tablefmt="simple"))


def _print_executor(sweep: Sweep, n: int, out: Printer) -> None:
    kind = EXECUTORS[sweep.executor["kind"]]
    out(kind.plan.format(n=n, folder=sweep.folder))
    for key, value in (kind.parameters(sweep) if kind.parameters else {}).items():
        out(f"  {key}: {value}")


def _run_inprocess(
    sweep: Sweep, todo: list[PlannedRun], result: LaunchResult, out: Printer, poll_s: float
) -> None:
    from fer_bench.locks import LockHeld

    job = SweepJob()
    for i, p in enumerate(todo, 1):
        out(f"[{i}/{len(todo)}] {p.run_id}")
        with sweep.jobs_lock():
            store_jobs(sweep, [(p.run_id, str(os.getpid()))], "inprocess")
        try:
            summary = job(*p.job_args())
        except LockHeld as exc:  # trained by another process right now: not ours to run
            out(f"  skipped: {exc}")
            continue
        except FerBenchError as exc:
            result.failed.append(p.run_id)
            out(f"  failed: {exc}")
            continue
        finally:
            end_here(sweep, [p.run_id])
        result.submitted.append(p)
        out(f"  done: test accuracy {_fmt_acc(summary.get('test_accuracy'))}")


def _run_local(
    sweep: Sweep, todo: list[PlannedRun], result: LaunchResult, out: Printer, poll_s: float
) -> None:
    """At most ``array_parallelism`` processes at once; this command waits for all of them."""
    import submitit

    executor = submitit.LocalExecutor(
        folder=str(sweep.folder), max_num_timeout=sweep.executor["max_num_timeout"]
    )
    executor.update_parameters(**local_parameters(sweep))
    limit = sweep.executor["array_parallelism"]
    queue = list(todo)
    running: list[tuple[PlannedRun, Any]] = []
    while queue or running:
        while queue and len(running) < limit:
            p = queue.pop(0)
            job = executor.submit(SweepJob(), *p.job_args())
            with sweep.jobs_lock():
                store_jobs(sweep, [(p.run_id, job.job_id)], "local")
            result.submitted.append(p)
            result.jobs.append(job)
            running.append((p, job))
            out(f"started {p.run_id} (pid {job.job_id})")
        for p, job in list(running):
            if job.done():
                running.remove((p, job))
                _report_outcome(sweep, p.run_id, job, result, out)
        if running:
            time.sleep(poll_s)


def _submit_slurm(
    sweep: Sweep, todo: list[PlannedRun], result: LaunchResult, out: Printer, poll_s: float
) -> None:
    import submitit

    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise FerBenchError(
            "the slurm executor needs sbatch and srun on PATH; use --executor local or inprocess here"
        )
    executor = submitit.SlurmExecutor(
        folder=str(sweep.folder / "%j"), max_num_timeout=sweep.executor["max_num_timeout"]
    )
    executor.update_parameters(**slurm_parameters(sweep))
    try:
        args = [p.job_args() for p in todo]
        jobs = executor.map_array(SweepJob(), [a[0] for a in args], [a[1] for a in args])
    except Exception as exc:  # sbatch's refusal (bad partition, QOS, ...) as one line
        raise FerBenchError(f"sbatch refused the job array: {_last_line(str(exc))}") from None
    store_jobs(sweep, [(p.run_id, j.job_id) for p, j in zip(todo, jobs, strict=True)], "slurm")
    result.submitted.extend(todo)
    result.jobs.extend(jobs)
    array_id = jobs[0].job_id.split("_")[0] if jobs else "?"
    out(f"submitted {len(jobs)} runs as Slurm job array {array_id}; logs in {sweep.folder}")
    source = f" --sweep {sweep.source}" if sweep.source else f" --output-dir {sweep.output_dir}"
    out(f"follow with: fer-bench status{source}")


def wait_for_jobs(
    sweep: Sweep, result: LaunchResult, out: Printer = print, poll_s: float = 5.0
) -> None:
    """Block until every submitted job ended, printing each outcome (``--wait``)."""
    pending = list(zip(result.submitted, result.jobs, strict=True))
    while pending:
        for p, job in list(pending):
            if job.done(force_check=True):
                pending.remove((p, job))
                _report_outcome(sweep, p.run_id, job, result, out)
        if pending:
            time.sleep(poll_s)


def _report_outcome(
    sweep: Sweep, run_id: str, job: Any, result: LaunchResult, out: Printer
) -> None:
    try:
        summary = job.result()
        out(f"done {run_id}: test accuracy {_fmt_acc(summary.get('test_accuracy'))}")
    except Exception as exc:  # submitit wraps the job's error; the record has the clean line
        result.failed.append(run_id)
        record = readable_record(sweep.output_dir, run_id)
        status = record.status if record else None
        if status == "interrupted":
            out(f"interrupted {run_id} (job {job.job_id}): launch the sweep again to resume")
            return
        line = record.error if record and status == "failed" else None
        out(f"failed {run_id} (job {job.job_id}): {line or _last_line(str(exc))}")


#: How each executor kind runs its runs (kinds: :data:`fer_bench.scheduler.EXECUTORS`).
_RUNNERS: dict[str, Callable[..., None]] = {
    "slurm": _submit_slurm,
    "local": _run_local,
    "inprocess": _run_inprocess,
}


def _fmt_acc(value: Any) -> str:
    return f"{value:.2f}%" if isinstance(value, int | float) else "n/a"


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown error"


# --- command line -----------------------------------------------------------------------------


def register_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run a sweep file's grid on Slurm, local processes or in-process",
        description="Expand a sweep YAML (see slurm/*.yaml) and run every run not yet done.",
    )
    p.add_argument("sweep_file", help="the sweep YAML, e.g. slurm/synthetic.yaml")
    p.add_argument(
        "--dry-run", action="store_true", help="print the runs and executor, submit nothing"
    )
    p.add_argument(
        "--retry-failed", action="store_true", help="rerun runs whose record says failed"
    )
    p.add_argument("--executor", choices=EXECUTOR_KINDS, help="override the file's executor kind")
    p.add_argument("--output-dir", help="override the file's output_dir")
    p.add_argument(
        "--wait", action="store_true", help="slurm: wait for the jobs and print how each ended"
    )
    p.set_defaults(func=_cmd_sweep)

    from fer_bench import status

    status.register_cli(subparsers)


def _cmd_sweep(args: argparse.Namespace) -> int:
    sweep = load_sweep(args.sweep_file, output_dir=args.output_dir)
    if args.executor:
        sweep.executor["kind"] = args.executor
    result = launch(sweep, retry_failed=args.retry_failed, dry_run=args.dry_run)
    if result.refused:
        raise FerBenchError(
            f"{len(result.refused)} of {len(result.planned)} runs would be refused "
            "(listed above); fix them before launching"
        )
    if args.wait and not EXECUTORS[sweep.executor["kind"]].local and result.jobs:
        wait_for_jobs(sweep, result)
    if result.failed:
        print(
            f"{len(result.failed)} run(s) failed or were interrupted; see fer-bench status",
            file=sys.stderr,
        )
        return 1
    return 0
