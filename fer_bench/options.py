"""Method options (``-M KEY=VALUE`` or a sweep's ``method_options``): typed, checked, complete.

A method declares its options as keyword-only ``__init__`` arguments with defaults, and their
allowed values in ``checks``. Values reach us as YAML scalars or as command-line text, so each is
parsed to the type of its default (``relabel=False`` is the boolean, never a truthy string) and
checked before anything runs. The result holds every option with its default filled in, so
``-M relabel_scope=low`` (the default) and no option are one experiment with one run id.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any

from fer_bench.errors import FerBenchError

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


@dataclass(frozen=True)
class Range:
    """Allowed numbers: ``low``/``high`` bounds, inclusive unless ``*_open``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def problem(self, value: Any) -> str | None:
        lo = self.low is None or (value > self.low if self.low_open else value >= self.low)
        hi = self.high is None or (value < self.high if self.high_open else value <= self.high)
        if lo and hi:
            return None
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"must be in {left}{low}, {high}{right}"


@dataclass(frozen=True)
class OneOf:
    """Allowed values, listed in the error."""

    values: tuple[Any, ...]

    def problem(self, value: Any) -> str | None:
        if value in self.values:
            return None
        return "must be one of " + ", ".join(str(v) for v in self.values)


Check = Range | OneOf


def declared_options(cls: Any) -> dict[str, Any]:
    """A method class's keyword-only options with their defaults, in declaration order."""
    return {n: p.default for n, p in _keyword_only(cls).items()}


def _keyword_only(cls: Any) -> dict[str, inspect.Parameter]:
    if not inspect.isclass(cls):
        return {}
    params = inspect.signature(cls.__init__).parameters
    return {n: p for n, p in params.items() if p.kind is p.KEYWORD_ONLY}


def parse_value(value: Any, default: Any, what: str, annotation: str = "") -> Any:
    """``value`` as the type of ``default`` (bool, int, float, str); a ``None`` default takes
    the type its annotation names (``float | None``), and ``none``/``null`` for None."""
    if value is None:
        return None
    if default is None:
        if isinstance(value, str) and value.strip().lower() in ("none", "null"):
            return None
        kinds = [k for k in ("bool", "int", "float", "str") if k in str(annotation).split()]
        kinds += [k for k in ("bool", "int", "float", "str") if k in str(annotation)]
        if not kinds:
            return value
        default = {"bool": False, "int": 0, "float": 0.0, "str": ""}[kinds[0]]
    kind = type(default)
    text = value.strip().lower() if isinstance(value, str) else None
    if kind is bool:
        if isinstance(value, bool):
            return value
        if text in _TRUE or (isinstance(value, int) and value == 1):
            return True
        if text in _FALSE or (isinstance(value, int) and value == 0):
            return False
        raise FerBenchError(f"{what} must be true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise FerBenchError(f"{what} must be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise FerBenchError(f"{what} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise FerBenchError(f"{what} must be finite, got {value!r}")
        if kind is float:
            return number
        if number != int(number):
            raise FerBenchError(f"{what} must be a whole number, got {value!r}")
        return int(number)
    if kind is str:
        if not isinstance(value, str):
            raise FerBenchError(f"{what} must be text, got {value!r}")
        return value
    return value


def resolve_options(cls: Any, given: dict[str, Any], owner: str) -> dict[str, Any]:
    """Every declared option of ``cls``: given values parsed and checked, defaults filled in."""
    params = _keyword_only(cls)
    declared = {n: p.default for n, p in params.items()}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none"
        raise FerBenchError(f"unknown option(s) {', '.join(unknown)} for {owner}; known: {known}")
    checks: dict[str, Check] = getattr(cls, "checks", {})
    out: dict[str, Any] = {}
    for name, default in declared.items():
        what = f"{owner} option {name}"
        annotation = params[name].annotation
        value = parse_value(given.get(name, default), default, what, annotation)
        check = checks.get(name)
        problem = None if check is None or value is None else check.problem(value)
        if problem:
            raise FerBenchError(f"{what}={value!r} {problem}")
        out[name] = value
    return out
