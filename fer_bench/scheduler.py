"""Who runs a sweep's runs: the executor kinds, the sweep's job file, and what the scheduler and
the kernel say about those jobs (Slurm's ``squeue``/``sacct``, process ids, run locks).

``fer-bench sweep`` (:mod:`fer_bench.launch`) records its jobs here and asks which are still
active; ``fer-bench status`` (:mod:`fer_bench.status`) asks every job's state. The job file is
``<output_dir>/sweeps/<name>.json``: run id -> executor kind, job id (Slurm's, or the process id
of a local or in-process launcher), submission time and host. Imports no torch.
"""

from __future__ import annotations

import getpass
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer_bench.results import LOCK_NAME, read_record, write_json_atomic

if TYPE_CHECKING:
    from fer_bench.sweep import Sweep


#: Slurm job states in which the job may still run (or run again).
ACTIVE_SLURM_STATES = {
    "PENDING",
    "RUNNING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "CONFIGURING",
    "COMPLETING",
    "RESIZING",
    "SUSPENDED",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
    "RESV_DEL_HOLD",
}
PENDING_SLURM_STATES = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING"}


def slurm_parameters(sweep: Sweep) -> dict[str, Any]:
    """The parameters handed to submitit's SlurmExecutor (sbatch option names)."""
    ex = sweep.executor
    params: dict[str, Any] = {
        "job_name": ex["job_name"],
        "time": ex["timeout_min"],
        "cpus_per_task": ex["cpus_per_task"],
        "mem": f"{ex['mem_gb']:g}GB",
        "array_parallelism": ex["array_parallelism"],
        "signal_delay_s": ex["signal_delay_s"],
    }
    if ex["gpus_per_node"]:
        params["gpus_per_node"] = ex["gpus_per_node"]
    for key in ("partition", "account", "qos", "constraint"):
        if ex[key]:
            params[key] = ex[key]
    if ex["setup"]:
        params["setup"] = list(ex["setup"])
    if ex["additional_parameters"]:
        params["additional_parameters"] = dict(ex["additional_parameters"])
    return params


def local_parameters(sweep: Sweep) -> dict[str, Any]:
    ex = sweep.executor
    params: dict[str, Any] = {
        "timeout_min": ex["timeout_min"],
        "gpus_per_node": ex["gpus_per_node"],
        "signal_delay_s": ex["signal_delay_s"],
    }
    if ex["setup"]:
        params["setup"] = list(ex["setup"])
    return params


@dataclass(frozen=True)
class ExecutorKind:
    """One way to run a sweep; the one table launch, status and the sweep file check read."""

    name: str
    #: Runs execute on this machine and the job id is a process id here (local, in-process);
    #: otherwise they execute on a cluster's nodes under a scheduler's job id (Slurm).
    local: bool
    #: What ``--dry-run`` says it would do ({n}: runs to run, {folder}: submitit's folder).
    plan: str
    #: The submitit parameters a dry run prints (none for the in-process loop).
    parameters: Callable[[Sweep], dict[str, Any]] | None


def _local_plan(sweep: Sweep) -> dict[str, Any]:
    return {**local_parameters(sweep), "processes_at_once": sweep.executor["array_parallelism"]}


EXECUTORS: dict[str, ExecutorKind] = {
    kind.name: kind
    for kind in (
        ExecutorKind(
            "slurm",
            False,
            "would submit {n} runs as one Slurm job array through submitit (folder {folder}):",
            slurm_parameters,
        ),
        ExecutorKind(
            "local",
            True,
            "would run {n} runs as local submitit processes (folder {folder}):",
            _local_plan,
        ),
        ExecutorKind(
            "inprocess", True, "would run {n} runs one after another in this process", None
        ),
    )
}
EXECUTOR_KINDS = tuple(EXECUTORS)


def is_local(job: dict[str, Any]) -> bool:
    """A job-file entry whose job id is a process id on its host (local, in-process)."""
    kind = EXECUTORS.get(job.get("executor") or "")
    return kind is not None and kind.local


# --- the job file ---


def store_jobs(sweep: Sweep, pairs: list[tuple[str, str]], kind: str, queued: bool = False) -> None:
    """Merge run id -> job id into the sweep's job file (latest submission wins). The caller
    holds ``sweep.jobs_lock()``: the read, the merge and the write are one step. ``queued``
    marks runs a local or in-process launcher (the job id is its pid) has yet to start."""

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with jobs_data(sweep) as jobs:
        for run_id, job_id in pairs:
            jobs[run_id] = {
                "executor": kind,
                "job_id": str(job_id),
                "folder": str(sweep.folder),
                "submitted_at": now,
                "host": platform.node(),
            }
            if queued:
                jobs[run_id]["queued"] = True


def end_here(sweep: Sweep, run_ids: list[str]) -> None:
    """This launcher no longer runs these (in-process runs it finished, claims it never
    started): their entries under its pid end, even while the process lives on."""
    me = str(os.getpid())
    with sweep.jobs_lock(), jobs_data(sweep) as jobs:
        for run_id in run_ids:
            entry = jobs.get(run_id)
            if entry and entry.get("job_id") == me and is_local(entry):
                entry.pop("queued", None)
                entry["ended"] = True


@contextmanager
def jobs_data(sweep: Sweep) -> Iterator[dict[str, Any]]:
    """The job file's ``jobs`` mapping, written back after the block (caller holds the lock)."""
    path = sweep.jobs_file
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = read_record(path)
        except (OSError, ValueError):
            data = {}
    data["name"] = sweep.name
    data["sweep_file"] = str(sweep.source.resolve()) if sweep.source else None
    data["output_dir"] = str(sweep.output_dir)
    yield data.setdefault("jobs", {})
    write_json_atomic(path, data)


# --- what the scheduler and the kernel say ---


def load_jobs(output_dir: Path, name: str | None = None) -> dict[str, dict[str, Any]]:
    """run id -> job entry, from one sweep's job file or from all of them."""
    from fer_bench.results import read_record

    folder = Path(output_dir) / "sweeps"
    paths = [folder / f"{name}.json"] if name else sorted(folder.glob("*.json"))
    jobs: dict[str, dict[str, Any]] = {}
    for path in paths:
        if not path.exists():
            continue
        try:
            data = read_record(path)
        except (OSError, ValueError):
            print(f"fer-bench: warning: unreadable job file {path}, ignored", file=sys.stderr)
            continue
        jobs.update(data.get("jobs") or {})
    return jobs


def scheduler_states(jobs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """run id -> the scheduler's state of its job (upper case, Slurm's names; local: RUNNING/ENDED)."""
    out: dict[str, str] = {}
    slurm_ids = {e["job_id"] for e in jobs.values() if e.get("executor") == "slurm"}
    slurm = slurm_job_states(slurm_ids) if slurm_ids else {}
    for run_id, entry in jobs.items():
        job_id = str(entry.get("job_id"))
        if entry.get("executor") == "slurm":
            if job_id in slurm:
                out[run_id] = slurm[job_id]
        elif is_local(entry):
            # A launcher's claim on a run it has not started yet is pending while it lives.
            alive = _process_alive(job_id) and not entry.get("ended")
            out[run_id] = ("PENDING" if entry.get("queued") else "RUNNING") if alive else "ENDED"
    return out


def active_runs(output_dir: Path, name: str) -> dict[str, str]:
    """run id -> job id, for runs whose job may still run: launching again must not double them."""
    jobs = load_jobs(output_dir, name)
    states = scheduler_states(jobs)
    return {
        run_id: jobs[run_id]["job_id"]
        for run_id, state in states.items()
        if state in ACTIVE_SLURM_STATES
    }


def slurm_job_states(job_ids: set[str]) -> dict[str, str]:
    """job id (``123`` or ``123_4``) -> state; squeue for live jobs, sacct for ended ones."""
    states: dict[str, str] = {}
    bases = sorted({j.split("_")[0] for j in job_ids})
    sacct = _run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(bases)])
    if sacct is not None:
        for line in sacct.splitlines():
            job, _, state = line.partition("|")
            for jid in expand_job_ids(job.strip()):
                states[jid] = state.split()[0] if state.split() else "UNKNOWN"
    squeue = _run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T"])
    if squeue is not None:  # live states win: accounting lags a little behind
        for line in squeue.splitlines():
            job, _, state = line.partition("|")
            for jid in expand_job_ids(job.strip()):
                states[jid] = state.strip() or "UNKNOWN"
    return {j: states[j] for j in job_ids if j in states}


def expand_job_ids(text: str) -> list[str]:
    """``12``, ``12_3`` or an array range ``12_[4-6,9%2]`` as single ids."""
    match = re.fullmatch(r"(\d+)_\[([\d,\-]+)(?:%\d+)?\]", text)
    if not match:
        return [text] if re.fullmatch(r"\d+(_\d+)?", text) else []
    base, spec = match.groups()
    ids = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        for i in range(int(lo), int(hi or lo) + 1):
            ids.append(f"{base}_{i}")
    return ids


def _run(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _process_alive(pid: str) -> bool:
    """Alive and not a zombie (an exited child waits as Z until reaped)."""
    try:
        text = Path(f"/proc/{int(pid)}/status").read_text()
    except (OSError, ValueError):
        return False
    state = re.search(r"^State:\s*(\S)", text, re.M)
    return bool(state) and state.group(1) != "Z"


def lock_holder(output_dir: Path, run_id: str) -> str | None:
    """``host X pid N`` of the process training the run, or ``None`` when no process does."""
    from fer_bench.locks import holder

    return holder(Path(output_dir) / run_id / LOCK_NAME)
