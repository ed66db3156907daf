"""Prepared dataset caches: where they live, how they are named, found and loaded.

Layout (one directory per dataset, data root and settings)::

    $FER_BENCH_CACHE (default ~/.cache/fer-bench)/<dataset>/<settings-hash>/
        manifest.json            written last: its presence marks a complete cache
        <split>/images.npy       uint8 (N, 3, S, S), memory-mapped when loaded
        <split>/labels.npy       int64 (N,)
        <split>/names.json       sample names (what published noise files refer to)
        <split>/{soft_labels,valence_arousal,action_units,real_noisy_labels}.npy   where known

The settings hash covers the dataset, the resolved data root, the reader options, image size and
alignment, so the same (dataset, root, options) always finds the same cache. ``prepare`` builds a
cache under ``.partial-<hash>`` and renames it into place at the end, so a half-written cache is
never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fer_bench.data import DEFAULT_ASYMMETRIC_MAP, FERData, Split
from fer_bench.errors import FerBenchError
from fer_bench.options import parse_value
from fer_bench.rawdata import DatasetPlan, SplitPlan

#: Bumped when the on-disk layout changes, so old caches are rebuilt rather than misread.
CACHE_FORMAT = 1
MANIFEST = "manifest.json"
SPLITS = ("train", "val", "test")
COMMON_OPTIONS = ("image_size", "align", "cache_dir")


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir`` if given, else ``$FER_BENCH_CACHE``, else ``$XDG_CACHE_HOME/fer-bench``.

    Outside the data root on purpose: cluster data mounts are often read-only.
    """
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("FER_BENCH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "fer-bench"


@dataclass(frozen=True)
class Option:
    """One dataset option: its default, allowed values and what it is for."""

    default: Any
    choices: tuple[Any, ...] | None = None
    minimum: int | None = None
    help: str = ""

    def parse(self, dataset: str, name: str, value: Any) -> Any:
        """``value`` typed as the default (the rule method options follow), then checked."""
        if isinstance(self.default, str) and value is not None:
            value = str(value)  # YAML reads `images: 112` or `layout: 2019` as numbers
        value = parse_value(value, self.default, f"dataset option {name} for '{dataset}'")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise FerBenchError(
                f"dataset option {name}={value!r} for '{dataset}': expected one of {allowed}"
            )
        if self.minimum is not None and value < self.minimum:
            raise FerBenchError(
                f"dataset option {name}={value!r} for '{dataset}' must be >= {self.minimum}"
            )
        return value


@dataclass
class CacheSettings:
    """Everything that decides which cache a (dataset, root, options) call reads or writes."""

    dataset: str
    root: Path
    root_arg: str
    options: dict[str, Any]
    given: dict[str, Any]
    image_size: int
    align: str
    base: Path

    @property
    def identity(self) -> dict[str, Any]:
        """What a cache is *of*; image size and alignment say how it was rendered."""
        return json.loads(
            json.dumps({"dataset": self.dataset, "root": str(self.root), "options": self.options})
        )

    @property
    def key(self) -> str:
        ident = dict(
            self.identity, image_size=self.image_size, align=self.align, format=CACHE_FORMAT
        )
        return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def directory(self) -> Path:
        return self.base / self.dataset / self.key

    @property
    def partial(self) -> Path:
        return self.base / self.dataset / f".partial-{self.key}"

    @property
    def rendering_given(self) -> bool:
        return "image_size" in self.given or "align" in self.given

    def prepare_command(self) -> str:
        parts = ["fer-bench", "prepare", "--dataset", self.dataset, "--data-root", self.root_arg]
        if "image_size" in self.given:
            parts += ["--image-size", str(self.image_size)]
        if "align" in self.given:
            parts += ["--align", self.align]
        for key in sorted(self.given):
            if key not in COMMON_OPTIONS:
                value = self.given[key]
                text = value if isinstance(value, str) else json.dumps(value)
                parts += ["--dataset-option", f"{key}={text}"]
        if self.given.get("cache_dir"):
            parts += ["--cache-dir", str(self.given["cache_dir"])]
        return shlex.join(parts)


class RealDataset:
    """A dataset read from the user's own copy: its reader, its options and its cache defaults.

    Registered as the dataset factory: calling it with ``root=`` and the dataset options loads
    the prepared cache (never the raw files, which can take hours to decode and align).
    """

    def __init__(
        self,
        name: str,
        *,
        reader: Callable[[Path, dict[str, Any]], DatasetPlan],
        options: dict[str, Option],
        image_size: int,
        asymmetric_map: dict[str, str] | None = None,
        align_choices: tuple[str, ...] = ("none",),
        default_align: Callable[[dict[str, Any]], str] | None = None,
        soft_labels_are_votes: bool = False,
    ) -> None:
        self.name = name
        self.soft_labels_are_votes = soft_labels_are_votes
        self.reader = reader
        self.options = options
        self.image_size = image_size
        # restricted to the dataset's classes when loaded (load_cache)
        self.asymmetric_map = dict(asymmetric_map or DEFAULT_ASYMMETRIC_MAP)
        self.align_choices = align_choices
        self.default_align = default_align or (lambda _options: align_choices[0])
        self.__qualname__ = f"RealDataset[{name}]"
        # ``fer-bench list`` shows the first docstring line: the dataset's own module says what it is.
        module_doc = getattr(sys.modules.get(reader.__module__), "__doc__", None)
        if module_doc:
            self.__doc__ = module_doc

    def known_options(self) -> dict[str, Any]:
        known = {k: o.default for k, o in self.options.items()}
        known.update(image_size=self.image_size, align="/".join(self.align_choices), cache_dir=None)
        return known

    def settings(
        self, root: str | os.PathLike[str] | None, options: dict[str, Any]
    ) -> CacheSettings:
        """Validate the options (unknown ones fail with the known list) and name the cache."""
        if root is None or str(root) == "":
            raise FerBenchError(f"dataset '{self.name}' needs --data-root PATH (your copy of it)")
        unknown = sorted(set(options) - set(self.options) - set(COMMON_OPTIONS))
        if unknown:
            listed = ", ".join(f"{k}={v!r}" for k, v in self.known_options().items())
            raise FerBenchError(
                f"unknown dataset option(s) {', '.join(unknown)} for '{self.name}'; known: {listed}"
            )
        parsed = {
            k: o.parse(self.name, k, options.get(k, o.default)) for k, o in self.options.items()
        }
        image_size = Option(self.image_size, minimum=8).parse(
            self.name, "image_size", options.get("image_size", self.image_size)
        )
        align = options.get("align") or self.default_align(parsed)
        align = Option("none", choices=self.align_choices).parse(self.name, "align", align)
        given = {k: options[k] for k in options if options[k] is not None}
        return CacheSettings(
            dataset=self.name,
            root=Path(root).expanduser().resolve(),
            root_arg=str(root),
            options=parsed,
            given=given,
            image_size=image_size,
            align=align,
            base=cache_root(options.get("cache_dir")),
        )

    def read(self, settings: CacheSettings) -> DatasetPlan:
        require_root(settings)
        return self.reader(settings.root, dict(settings.options))

    def __call__(self, root: str | os.PathLike[str] | None = None, **options: Any) -> FERData:
        settings = self.settings(root, options)
        directory = find_cache(settings)
        data = load_cache(directory, self.name, self.asymmetric_map, settings.prepare_command())
        data.soft_labels_are_votes = self.soft_labels_are_votes
        return data


def require_root(settings: CacheSettings) -> None:
    """A data root that is not there is a typo or a missing mount: say so, not "run prepare"."""
    if not settings.root.exists():
        raise FerBenchError(
            f"data root {settings.root_arg} for '{settings.dataset}' does not exist"
        )


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of a complete cache, or ``None`` where there is none (not finished)."""
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise FerBenchError(f"cannot read cache manifest {path}: {exc}") from None
    if manifest.get("format") != CACHE_FORMAT or not manifest.get("complete"):
        return None
    return manifest


def find_cache(settings: CacheSettings) -> Path:
    """The complete cache for these settings; else a one-line error with the command to run.

    When image size / alignment were not given, a cache of the same data prepared at another
    size (``prepare --image-size 112``) is found too; several such caches must be told apart.
    """
    if read_manifest(settings.directory) is not None:
        return settings.directory
    if not settings.rendering_given:
        matches = []
        folder = settings.base / settings.dataset
        for path in sorted(folder.glob("*/" + MANIFEST)) if folder.is_dir() else []:
            if path.parent.name.startswith("."):
                continue
            manifest = read_manifest(path.parent)
            if manifest is not None and manifest.get("identity") == settings.identity:
                matches.append((path.parent, manifest))
        if len(matches) == 1:
            return matches[0][0]
        if len(matches) > 1:
            found = ", ".join(
                f"image_size={m['image_size']} align={m['align']}" for _, m in matches
            )
            raise FerBenchError(
                f"several prepared caches for {settings.dataset} at {settings.root_arg} ({found}); "
                "choose one with --dataset-option image_size=N [--dataset-option align=...]"
            )
    require_root(settings)  # a cache prepared before is used even where the raw data is not
    unfinished = ""
    if settings.partial.exists() or settings.directory.exists():
        unfinished = " (an unfinished prepare is there; rerunning the command continues it)"
    raise FerBenchError(
        f"no prepared cache for {settings.dataset} under {settings.directory}{unfinished}; "
        f"run: {settings.prepare_command()}"
    )


def _load_array(path: Path, mmap: bool = False) -> np.ndarray:
    # Copy-on-write mapping: pages are read lazily from disk and an accidental in-place write
    # changes only this process's copy, never the cache (and torch gets a writable array).
    return np.load(path, mmap_mode="c" if mmap else None, allow_pickle=False)


def _load_split(directory: Path, info: dict[str, Any], size: int) -> Split:
    n = int(info["stored"])
    images = _load_array(directory / "images.npy", mmap=True)
    if images.shape != (n, 3, size, size) or images.dtype != np.uint8:
        raise ValueError(
            f"images.npy is {images.shape} {images.dtype}, expected ({n}, 3, {size}, {size}) uint8"
        )
    extra: dict[str, torch.Tensor] = {}
    for name in info.get("fields", []):
        array = _load_array(directory / f"{name}.npy")
        extra[name] = torch.from_numpy(array)
    names = json.loads((directory / "names.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        image_tensor = torch.from_numpy(images)
    return Split(
        images=image_tensor,
        labels=torch.from_numpy(_load_array(directory / "labels.npy")).long(),
        names=names,
        **extra,
    )


def load_cache(
    directory: Path,
    name: str,
    asymmetric_map: dict[str, str],
    command: str = "fer-bench prepare ...",
) -> FERData:
    """A :class:`FERData` backed by the cache in ``directory`` (images memory-mapped)."""
    manifest = read_manifest(directory)
    if manifest is None:
        raise FerBenchError(f"no complete cache at {directory}; run: {command}")
    size = int(manifest["image_size"])
    splits: dict[str, Split] = {}
    try:
        for split, info in manifest["splits"].items():
            splits[split] = _load_split(directory / split, info, size)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise FerBenchError(
            f"prepared cache {directory} is damaged ({exc}); rebuild it: {command} --force"
        ) from None
    class_names = list(manifest["class_names"])
    mapping = {k: v for k, v in asymmetric_map.items() if k in class_names and v in class_names}
    meta = {
        "cache": str(directory),
        "data_root": manifest["identity"]["root"],
        "options": manifest["identity"]["options"],
        "image_size": size,
        "align": manifest["align"],
        "sources": manifest["sources"],
        "counts": {
            s: {k: v for k, v in i.items() if k != "fields"} for s, i in manifest["splits"].items()
        },
        **manifest.get("notes", {}),
    }
    return FERData(
        name=name,
        class_names=class_names,
        train=splits["train"],
        test=splits["test"],
        val=splits.get("val"),
        au_names=manifest.get("au_names"),
        asymmetric_map=mapping,
        meta=meta,
    )


def split_fields(plan: SplitPlan) -> list[str]:
    """The optional per-sample fields a split plan carries, in cache order."""
    return [f for f in SplitPlan.OPTIONAL if getattr(plan, f) is not None]
