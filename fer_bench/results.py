"""Run records: one directory per run, one JSON file, written atomically.

Layout: ``<output_dir>/<run_id>/record.json`` (the record), ``checkpoint.pt`` (last finished
epoch, for resume; removed when the run is done unless ``--keep-checkpoint``),
``final_weights.pt`` (a done run's model as a plain state dict, ``weights_only`` loadable) and
``run.lock`` (held by the process training the run; see :mod:`fer_bench.locks`). ``status`` is
``running`` while training, then ``done``, ``failed`` or ``interrupted`` (Ctrl-C, SIGTERM or a
scheduler's stop signal; the next run resumes it); a failed or interrupted record keeps the
one-line ``error`` and the full ``traceback``.

No torch at import: ``fer-bench status`` and ``report`` read records without it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

RECORD_NAME = "record.json"
CHECKPOINT_NAME = "checkpoint.pt"
FINAL_WEIGHTS_NAME = "final_weights.pt"
LOCK_NAME = "run.lock"
SCHEMA_VERSION = 1
STATUSES = ("running", "done", "failed", "interrupted")
#: What a record's numbers mean, written into every record so a reader needs no source code.
RECORD_UNITS = {
    "accuracy": "percent (accuracy, mean_class_accuracy, per_class_accuracy, macro_f1)",
    "auc": "fraction in [0, 1] (given_label_auc, weight_auc)",
    "confusion": "rows are true classes, columns predicted classes, in class_names order",
    "noise rates": "percent (noise.rate_requested, noise.rate_actual)",
    "val": "accuracy against dataset.val_labels: 'clean' (the dataset's own validation split) "
    "or 'noisy' (held out from the noisy training set, capped by the noise)",
    "times": "seconds",
}

_TRACKED_PACKAGES = ("torch", "torchvision", "timm", "numpy", "facenet-pytorch", "fer-bench")


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _write_atomic(path: str | Path, write: Any) -> None:
    """Write to a temporary file beside the target, fsync it, rename it over the target, fsync
    the directory: a reader sees the old file or the new one, never half of one, even after a
    crash. Permissions follow the umask (mkstemp's 0600 would hide records on shared clusters)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def write_json_atomic(path: str | Path, data: Any) -> None:
    text = json.dumps(data, indent=1, default=_json_default) + "\n"
    _write_atomic(path, lambda f: f.write(text.encode()))


def save_torch_atomic(path: str | Path, obj: Any) -> None:
    import torch

    _write_atomic(path, lambda f: torch.save(obj, f))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and getattr(obj, "ndim", 0) > 0:  # tensors, arrays
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_record(path: str | Path) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def run_dir(output_dir: str | Path, run_id: str) -> Path:
    return Path(output_dir) / run_id


def record_path(output_dir: str | Path, run_id: str) -> Path:
    """Where a run's record lives: the one spelling of ``<output_dir>/<run_id>/record.json``."""
    return run_dir(output_dir, run_id) / RECORD_NAME


@dataclass(frozen=True)
class RunRecord:
    """Typed access to what readers of a record need (launch, status, eval, the CLI); ``data``
    is the JSON as the runner wrote it (``schema`` = ``SCHEMA_VERSION``)."""

    data: dict[str, Any]

    @property
    def status(self) -> str | None:
        """One of ``STATUSES``, or ``unreadable`` for a record that exists but cannot be read."""
        return self.data.get("status")

    @property
    def readable(self) -> bool:
        return self.status != UNREADABLE

    @property
    def error(self) -> str | None:
        return self.data.get("error")

    @property
    def epochs_done(self) -> int:
        return len(self.data.get("history") or [])

    @property
    def progress(self) -> str:
        """``epoch 3/12`` (or ``3 epochs done`` where the plan is unknown)."""
        total = (self.data.get("config") or {}).get("epochs")
        return f"epoch {self.epochs_done}/{total}" if total else f"{self.epochs_done} epochs done"

    def test_accuracy(self, selection: str = "last") -> float | None:
        """Final test accuracy (percent) at the ``last`` or the validation-``selected`` epoch."""
        final = (self.data.get("final") or {}).get(selection) or {}
        value = (final.get("test") or {}).get("accuracy")
        return float(value) if isinstance(value, int | float) else None


#: The status ``load_record`` gives a record that exists but cannot be read (status shows it).
UNREADABLE = "unreadable"


def kept_record_path(directory: str | Path, run_id: str) -> Path:
    """A kept (committed, compacted) record: ``<directory>/<run_id>.json``."""
    return Path(directory) / f"{run_id}.json"


def load_record(
    output_dir: str | Path, run_id: str, kept: str | Path | None = None
) -> RunRecord | None:
    """A run's record, else its kept record in ``kept``; ``None`` where there is none, status
    ``unreadable`` where it cannot be read."""
    path = record_path(output_dir, run_id)
    if not path.exists() and kept is not None:
        path = kept_record_path(kept, run_id)
    if not path.exists():
        return None
    try:
        return RunRecord(read_record(path))
    except (OSError, ValueError):
        return RunRecord({"status": UNREADABLE})


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> dict[str, Any]:
    """The commit of the fer-bench checkout this code runs from, and whether it had local edits."""
    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def cpu_name() -> str:
    """The CPU's model name (``platform.processor()`` is only "x86_64" on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_budget() -> tuple[int, str]:
    """How many CPUs this process was given, and who said so: Slurm's ``--cpus-per-task``, else
    the CPU affinity mask (cgroups, taskset), else every CPU of the machine."""
    given = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if given.isdigit() and int(given) > 0:
        return int(given), "SLURM_CPUS_PER_TASK"
    try:
        return max(len(os.sched_getaffinity(0)), 1), "CPU affinity"
    except (AttributeError, OSError):
        return os.cpu_count() or 1, "CPU count"


def hardware(device: torch.device, threads_from: str | None = None) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "device": str(device),
        "hostname": platform.node(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_threads_from": threads_from,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
        )
    return info
