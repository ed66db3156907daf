"""``fer-bench list``: what is registered, and with ``-v`` everything a user can set, in plain text."""

from __future__ import annotations

import inspect
import re
from typing import Any

from fer_bench.options import OneOf, Range, declared_options

_RECIPE_KEYS = ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "scheduler")


def plain(text: str | None) -> str:
    """A docstring's first line without reST markup (``x``, :role:`x`, *x*)."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    line = re.sub(r":\w+:`~?([^`]+)`", r"\1", line)
    return line.replace("``", "").replace("`", "")


def _check_text(check: Any) -> str:
    if isinstance(check, OneOf):
        return "one of " + "/".join(str(v) for v in check.values)
    if isinstance(check, Range):
        return check.problem(float("nan")).replace("must be in ", "in ")
    return ""


def method_lines(name: str, cls: Any, verbose: bool) -> list[str]:
    lines = [f"  {name:<12} {plain(cls.__doc__)}"]
    if not verbose:
        return lines
    recipe = getattr(cls, "recipe", {})
    shown = ", ".join(f"{k}={recipe[k]}" for k in _RECIPE_KEYS if k in recipe)
    if recipe.get("scheduler") == "exponential":
        shown += f" (gamma {recipe.get('scheduler_gamma')} per epoch)"
    lines.append(f"      recipe: {shown}")
    note = getattr(cls, "compute_note", None)
    if note:
        lines.append(f"      compute: {note}")
    checks = getattr(cls, "checks", {})
    for option, default in declared_options(cls).items():
        check = _check_text(checks[option]) if option in checks else ""
        lines.append(f"      -M {option}={default!r}" + (f"   ({check})" if check else ""))
    return lines


def dataset_options(factory: Any) -> list[tuple[str, Any, str]]:
    """(name, default, help) of a dataset's ``-D`` options."""
    options = getattr(factory, "options", None)
    if isinstance(options, dict):
        out = []
        for key, opt in options.items():
            allowed = f" (one of {'/'.join(str(c) for c in opt.choices)})" if opt.choices else ""
            out.append((key, opt.default, opt.help + allowed))
        known = factory.known_options()
        out.append(("image_size", known["image_size"], "stored size of the prepared cache"))
        out.append(("align", known["align"].split("/")[0], f"face alignment ({known['align']})"))
        out.append(("cache_dir", None, "cache root (default $FER_BENCH_CACHE)"))
        return out
    params = inspect.signature(factory).parameters
    return [
        (n, p.default, "")
        for n, p in params.items()
        if p.kind is p.KEYWORD_ONLY and p.default is not p.empty
    ]


def dataset_lines(name: str, factory: Any, run_defaults: dict[str, Any], verbose: bool):
    lines = [f"  {name:<12} {plain(factory.__doc__)}"]
    if not verbose:
        return lines
    if run_defaults:
        lines.append(
            "      run defaults: " + ", ".join(f"{k}={v}" for k, v in run_defaults.items())
        )
    for key, default, help_text in dataset_options(factory):
        lines.append(f"      -D {key}={default!r}" + (f"   {help_text}" if help_text else ""))
    return lines


def listing(verbose: bool) -> str:
    from fer_bench.registry import DATASETS, METHODS, dataset_run_defaults

    lines = ["methods:"]
    for name in METHODS.names():
        lines += method_lines(name, METHODS.get(name), verbose)
    lines.append("datasets:")
    for name in DATASETS.names():
        lines += dataset_lines(name, DATASETS.get(name), dataset_run_defaults(name), verbose)
    return "\n".join(lines)
