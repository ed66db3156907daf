"""``fer-bench run`` and ``fer-bench list``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import Field, fields
from typing import Any, get_args, get_type_hints

from fer_bench.config import (
    GLOBAL_DEFAULTS,
    RunConfig,
    parse_noise_rate,
    parse_options,
)

#: How a field's command-line text becomes its value (``parse`` in the field's metadata).
_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "noise_rate": lambda value, flag: parse_noise_rate(value),
    "options": parse_options,
}


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got '{text}'")


def _flags(f: Field) -> tuple[str, ...]:
    return f.metadata.get("flags") or ("--" + f.name.replace("_", "-"),)


def _help(f: Field) -> str:
    """The field's help plus the default a user gets by leaving the flag out."""
    if f.default is None and f.name in GLOBAL_DEFAULTS:
        shown = f"method recipe or dataset default, else {GLOBAL_DEFAULTS[f.name]}"
    elif f.default is None or isinstance(f.default, bool | dict):
        return f.metadata["help"]  # no value to show: an optional input, a switch, a list
    else:
        shown = f"{f.default:g}" if isinstance(f.default, float) else f.default
    return f"{f.metadata['help']} [{shown}]"


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Every RunConfig field as a flag, built from the field's type, default and metadata."""
    hints = get_type_hints(RunConfig)
    for f in fields(RunConfig):
        kind, kw = hints[f.name], {"dest": f.name, "help": _help(f)}
        if f.metadata.get("parse") == "options":
            kw.update(action="append", metavar="KEY=VALUE")
        elif f.metadata.get("parse"):
            kw.update(default=f"{f.default:g}")
        elif kind is bool:
            # A flag that flips the default: --compile turns on, --no-progress turns off.
            kw.update(action="store_false" if f.default else "store_true")
        else:
            scalar = next(t for t in get_args(kind) or (kind,) if t is not type(None))
            kw.update(type=_bool if scalar is bool else scalar, default=f.default)
            if f.metadata.get("choices"):
                kw["choices"] = f.metadata["choices"]
        p.add_argument(*_flags(f), **kw)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    values: dict[str, Any] = {}
    for f in fields(RunConfig):
        value = getattr(args, f.name)
        parse = f.metadata.get("parse")
        values[f.name] = _PARSERS[parse](value, _flags(f)[0]) if parse else value
    return RunConfig(**values)


def _format_metrics(m: dict[str, Any]) -> str:
    return (
        f"acc {m['accuracy']:.2f}  mean-class {m['mean_class_accuracy']:.2f}  "
        f"macro-F1 {m['macro_f1']:.2f}"
    )


def cmd_run(args: argparse.Namespace) -> int:
    from fer_bench.results import record_path
    from fer_bench.runner import run_experiment

    record = run_experiment(config_from_args(args))
    final = record["final"]
    diag = record.get("diagnostics") or {}
    print(f"run {record['run_id']}  ({record['noise']['rate_actual']:.1f}% labels flipped)")
    print(
        f"  test, last epoch {final['last']['epoch']}:      {_format_metrics(final['last']['test'])}"
    )
    print(
        f"  test, val-selected epoch {final['selected']['epoch']}: {_format_metrics(final['selected']['test'])}"
    )
    parts = []
    for key, label in (("given_label_auc", "given-label AUC"), ("weight_auc", "weight AUC")):
        if diag.get(key) is not None:
            parts.append(f"{label} {diag[key]:.3f}")
    if diag.get("relabel"):
        r = diag["relabel"]
        prec = "n/a" if r["precision"] is None else f"{r['precision']:.2f}"
        parts.append(
            f"relabeled {r['changed']} (restored {r['restored']}, corrupted {r['corrupted']}, precision {prec})"
        )
    if parts:
        print("  noise diagnostics: " + ", ".join(parts))
    print(f"  record: {record_path(record['config']['output_dir'], record['run_id'])}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from fer_bench.listing import listing

    print(listing(args.verbose))
    return 0


def register_cli(sub) -> None:
    run = sub.add_parser(
        "run",
        help="train one method on one dataset and write one result",
        description="Train one method on one dataset under label noise; "
        "rerunning the same configuration resumes or returns the stored result.",
    )
    add_run_options(run)
    run.set_defaults(func=cmd_run)
    lst = sub.add_parser("list", help="list registered methods and datasets")
    lst.add_argument("-v", "--verbose", action="store_true", help="also show options and defaults")
    lst.set_defaults(func=cmd_list)
