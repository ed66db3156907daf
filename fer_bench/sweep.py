"""Sweep files: a YAML grid of run options plus the resources the runs need on a cluster.

A sweep file has six top-level keys (only ``grid`` is required)::

    name: scn-paper-noise          # default: the file's stem; names the job-id file
    output_dir: results/runs       # where run records go (relative to the current directory)
    kept_records: results/x/runs   # committed records (report --keep-records): done runs there
                                   # are not trained again, and report/status read them too
    defaults: {epochs: 12}         # run options every grid mapping starts from (one budget)
    grid:                          # RunConfig options; a list is a grid axis
      method: [ce, scn, mtac]
      dataset: [rafdb, ferplus]
      noise: [0, 10, 20, 30]
      seed: [0, 1, 2]
      epochs: 40
    executor:                      # see EXECUTOR_KEYS
      kind: slurm
      gpus_per_node: 1

``grid`` may also be a list of such mappings; the sweep is then the union of their products
(for settings that only make sense together). A mapping value (``method_options``) is one value;
a list of mappings is an axis over them. Unknown keys anywhere are an error naming them, so a
typo never silently runs the default.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from fer_bench.config import DEFAULT_OUTPUT_DIR, RunConfig, parse_noise_rate
from fer_bench.errors import FerBenchError
from fer_bench.scheduler import EXECUTOR_KINDS

TOP_KEYS = ("name", "output_dir", "kept_records", "defaults", "grid", "executor")

#: Executor settings a sweep file may set, with their defaults. Slurm names follow sbatch's.
EXECUTOR_DEFAULTS: dict[str, Any] = {
    "kind": "slurm",
    "folder": None,  # submitit's logs and pickles; default <output_dir>/submitit/<name>
    "partition": None,
    "account": None,
    "qos": None,
    "constraint": None,
    "gpus_per_node": 0,
    "cpus_per_task": 4,
    "mem_gb": 16,
    "timeout_min": 240,
    "array_parallelism": 32,  # slurm: array throttle; local: processes at once
    "signal_delay_s": 120,  # warning before the time limit, for a last checkpoint
    "max_num_timeout": 10,  # requeues after a time limit before giving up
    "setup": [],  # shell lines run before the job (module load, conda activate, ...)
    "additional_parameters": {},  # any other sbatch option, e.g. {reservation: x}
    "job_name": None,  # default: fer-<name>
}
EXECUTOR_KEYS = tuple(EXECUTOR_DEFAULTS)

_RUN_FIELDS = tuple(f.name for f in fields(RunConfig))


@dataclass
class Sweep:
    name: str
    output_dir: Path
    configs: list[RunConfig]
    executor: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    #: Finished records committed beside a leaderboard: they count as done on any machine.
    kept_records: Path | None = None

    @property
    def folder(self) -> Path:
        """Where submitit keeps this sweep's job files and logs."""
        folder = self.executor.get("folder")
        return Path(folder).resolve() if folder else self.output_dir / "submitit" / self.name

    @property
    def jobs_file(self) -> Path:
        return jobs_file(self.output_dir, self.name)

    def jobs_lock(self) -> Any:
        """Held by a launcher from planning to recording its jobs (a blocking
        :class:`~fer_bench.locks.FileLock` beside the job file): two launchers of one sweep
        take turns, and the second sees what the first submitted."""
        from fer_bench.locks import FileLock

        return FileLock(self.jobs_file.with_suffix(".lock"), "{holder}", wait=True)


@dataclass(frozen=True)
class ResolvedRun:
    """A grid point with every option resolved, what its run id hashes, and the stamps of the
    files hashed (so the job that trains it need not resolve or hash again)."""

    config: RunConfig
    identity: dict[str, Any]
    inputs: dict[str, list[int]]


def resolve_runs(configs: list[RunConfig]) -> dict[str, ResolvedRun]:
    """Grid points -> ``{run_id: ResolvedRun}``, in grid order, a run id found twice once. The
    one place a sweep is resolved (launch, status and report all use it); each config is
    resolved and its input files hashed once."""
    from fer_bench.runner import resolve_config  # method classes: torch

    out: dict[str, ResolvedRun] = {}
    for config in configs:
        cfg = resolve_config(config)
        identity = cfg.identity()
        out.setdefault(cfg.run_id(identity), ResolvedRun(cfg, identity, cfg.input_stamps()))
    return out


def jobs_file(output_dir: str | Path, name: str) -> Path:
    """``<output_dir>/sweeps/<name>.json``: run id -> scheduler job id, written at launch."""
    return Path(output_dir) / "sweeps" / f"{name}.json"


def load_sweep(path: str | Path, output_dir: str | Path | None = None) -> Sweep:
    """Read and check a sweep file; ``output_dir`` overrides the file's."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FerBenchError(f"sweep file not found: {path}") from None
    except OSError as exc:
        raise FerBenchError(f"cannot read sweep file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FerBenchError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    return parse_sweep(data, source=path, output_dir=output_dir)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's problem and where it is, as ``line L, column C: problem`` (1-based)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None)
    if problem is None:
        text = str(exc).strip()
        problem = text.splitlines()[0] if text else "invalid YAML"
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def parse_sweep(
    data: Any, source: Path | None = None, output_dir: str | Path | None = None
) -> Sweep:
    where = str(source) if source else "sweep"
    if not isinstance(data, dict):
        raise FerBenchError(f"{where}: a sweep file is a mapping with keys {', '.join(TOP_KEYS)}")
    _reject_unknown(where, "top-level key", data, TOP_KEYS)
    if "grid" not in data:
        raise FerBenchError(f"{where}: missing 'grid' (the run options to sweep over)")

    name = data.get("name") or (source.stem if source else "sweep")
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise FerBenchError(f"{where}: name must be letters, digits, '-' or '_', got {name!r}")
    out = Path(output_dir or data.get("output_dir") or DEFAULT_OUTPUT_DIR).resolve()

    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise FerBenchError(f"{where}: defaults must be a mapping of run options")
    grids = data["grid"] if isinstance(data["grid"], list) else [data["grid"]]
    configs: list[RunConfig] = []
    for i, grid in enumerate(grids):
        label = "grid" if len(grids) == 1 else f"grid[{i}]"
        if not isinstance(grid, dict):
            raise FerBenchError(f"{where}: {label} must be a mapping of run options")
        configs.extend(expand_grid({**defaults, **grid}, f"{where}: {label}", out))
    if not configs:
        raise FerBenchError(f"{where}: the grid expands to no runs (an empty list somewhere?)")

    executor = dict(EXECUTOR_DEFAULTS)
    given = data.get("executor") or {}
    if not isinstance(given, dict):
        raise FerBenchError(f"{where}: executor must be a mapping")
    _reject_unknown(where, "executor key", given, EXECUTOR_KEYS)
    executor.update(given)
    check_executor(executor, where)
    if not executor["job_name"]:
        executor["job_name"] = f"fer-{name}"
    kept = data.get("kept_records")
    if kept is not None and not isinstance(kept, str):
        raise FerBenchError(f"{where}: kept_records must be a directory path, got {kept!r}")
    return Sweep(
        name=name,
        output_dir=out,
        configs=configs,
        executor=executor,
        source=source,
        kept_records=Path(kept).resolve() if kept else None,
    )


def expand_grid(grid: Any, where: str, output_dir: Path) -> list[RunConfig]:
    """The product of every list-valued option, in the order the file lists them."""
    if not isinstance(grid, dict):
        raise FerBenchError(f"{where} must be a mapping of run options")
    _reject_unknown(where, "run option", grid, _RUN_FIELDS)
    if "output_dir" in grid:
        raise FerBenchError(
            f"{where}: set output_dir at the top level of the sweep, not in the grid"
        )
    keys = list(grid)
    axes = [grid[k] if isinstance(grid[k], list) else [grid[k]] for k in keys]
    configs = []
    for values in itertools.product(*axes):
        options = dict(zip(keys, values, strict=True))
        options["output_dir"] = str(output_dir)
        try:
            if "noise" in options:
                options["noise"] = parse_noise_rate(options["noise"])
            config = RunConfig.from_dict(options)
            config.validate()
        except FerBenchError as exc:
            raise FerBenchError(f"{where}: {exc}") from None
        configs.append(config)
    return configs


def check_executor(executor: dict[str, Any], where: str) -> None:
    kind = executor["kind"]
    if kind not in EXECUTOR_KINDS:
        raise FerBenchError(
            f"{where}: unknown executor kind '{kind}'; known: {', '.join(EXECUTOR_KINDS)}"
        )
    for key in ("gpus_per_node", "cpus_per_task", "timeout_min", "array_parallelism"):
        value = executor[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise FerBenchError(
                f"{where}: executor {key} must be a whole number >= 0, got {value!r}"
            )
    for key in ("cpus_per_task", "timeout_min", "array_parallelism"):
        if executor[key] < 1:
            raise FerBenchError(f"{where}: executor {key} must be >= 1")
    if not isinstance(executor["mem_gb"], int | float) or executor["mem_gb"] <= 0:
        raise FerBenchError(f"{where}: executor mem_gb must be > 0, got {executor['mem_gb']!r}")
    if not isinstance(executor["setup"], list) or not all(
        isinstance(s, str) for s in executor["setup"]
    ):
        raise FerBenchError(f"{where}: executor setup must be a list of shell lines")
    if not isinstance(executor["additional_parameters"], dict):
        raise FerBenchError(f"{where}: executor additional_parameters must be a mapping")


def _reject_unknown(where: str, what: str, data: dict[str, Any], known: tuple[str, ...]) -> None:
    unknown = [str(k) for k in data if k not in known]
    if unknown:
        raise FerBenchError(
            f"{where}: unknown {what}(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
