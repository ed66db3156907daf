"""Naming the leaderboard's entries: runs that differ in anything but the seed are separate rows.

A run's *variant* is every setting besides the leaderboard keys and the seed, taken from its
identity (what its run id hashes). Rows are named by where they depart from the reference,
e.g. ``mtac[au_weight=0, va_weight=0]`` beside the plain ``mtac``.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from typing import Any

from fer_bench.errors import FerBenchError

from .common import KEYS


def variant_of(
    config: dict[str, Any],
    identity: dict[str, Any] | None = None,
    method_defaults: dict[str, Any] | None = None,
) -> str:
    """A run's settings besides the leaderboard keys and the seed, as JSON ``{name: value}``.

    Built from the run's identity (what its run id hashes: no device or paths, input files by
    content); records older than stored identities fall back to their config. Method options
    appear with the method's defaults filled in, under their own names; dataset options as
    ``dataset.<name>``. Settings an older record lacks take today's defaults; the method's
    defaults are ``method_defaults`` where the record stored them, else the installed method's.
    """
    from fer_bench.config import RunConfig, run_settings

    if identity is None:
        identity = run_settings(config)
    base = run_settings({**RunConfig().to_dict(), "noise_type": identity.get("noise_type")})
    flat: dict[str, str] = {}
    for key, value in {**base, **identity}.items():
        if key in (*KEYS, "seed"):
            continue
        if key == "method_options":
            known = method_defaults
            if known is None:
                known = method_defaults_of(str(identity.get("method")))
            options = {**known, **(value or {})}
            flat.update({option_key(k): json.dumps(v) for k, v in options.items()})
        elif key == "dataset_options":
            flat.update({f"dataset.{k}": json.dumps(v) for k, v in (value or {}).items()})
        else:
            flat[key] = json.dumps(value)
    return json.dumps(flat, sort_keys=True)


@functools.cache
def method_defaults_of(name: str) -> dict[str, Any]:
    """The method's options and defaults; empty for a method this installation does not know.
    Imports the method (and torch): only for records older than stored defaults, and sweeps."""
    from fer_bench.options import declared_options
    from fer_bench.registry import METHODS

    try:
        factory = METHODS.get(name)
    except FerBenchError:
        return {}
    return declared_options(factory)


def option_key(name: str) -> str:
    """A method option's column name: its own, unless a run setting has that name too."""
    from fer_bench.config import RunConfig

    return f"method.{name}" if name in RunConfig.__dataclass_fields__ else name


def label_variants(*frames: Any) -> None:
    """Name each run's entry: its method, plus the settings that set it apart from the runs of
    the same method on the same dataset and noise type, e.g. ``mtac[au_weight=0, va_weight=0]``.

    Only settings that vary among those runs are considered, and a run shows the ones where it
    departs from the reference: the method's default for a method option, else the value most
    of the runs have. So a plain sweep keeps plain method names, and in an ablation the default
    configuration is the plain row. A run in several frames takes its settings from the first.
    """
    import pandas as pd

    frames = tuple(f for f in frames if f is not None and len(f))
    if not frames:
        return
    columns = ["run_id", "dataset", "noise_type", "method", "variant", "defaults"]
    both = pd.concat([f.reindex(columns=columns) for f in frames])
    labels: dict[str, str] = {}
    for (_, _, method), group in both.drop_duplicates("run_id").groupby(
        ["dataset", "noise_type", "method"]
    ):
        variants = {
            rid: json.loads(v) for rid, v in zip(group["run_id"], group["variant"], strict=True)
        }
        stored = next((d for d in group["defaults"] if isinstance(d, str)), None)
        defaults: dict[str, str] | None = None  # looked up only where a setting varies
        reference: dict[str, str | None] = {}
        for key in sorted({k for v in variants.values() for k in v}):
            values = [v.get(key) for v in variants.values()]
            if len(set(values)) > 1:
                if defaults is None:
                    known = json.loads(stored) if stored else method_defaults_of(method)
                    defaults = {option_key(k): json.dumps(v) for k, v in known.items()}
                reference[key] = defaults.get(key, Counter(values).most_common(1)[0][0])
        for rid, variant in variants.items():
            shown = [
                f"{k}={_plain(variant.get(k))}"
                for k, ref in reference.items()
                if variant.get(k) != ref
            ]
            labels[rid] = f"{method}[{', '.join(shown)}]" if shown else method
    for frame in frames:
        frame["method"] = frame["run_id"].map(labels)


def _plain(text: str | None) -> str:
    if text is None:
        return "default"
    value = json.loads(text)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str) and len(value) == 40 and all(c in "0123456789abcdef" for c in value):
        return value[:10]  # a file's sha1 (pretrained weights, noise file)
    if isinstance(value, float):
        return f"{value:g}"  # an option typed as float: au_weight=0, not 0.0
    return str(value)
