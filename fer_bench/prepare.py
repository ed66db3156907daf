"""Read a raw dataset once and write its memory-mappable cache.

Work is split into chunks of images, each written to ``.partial-<hash>/chunks/`` as soon as it is
done, so an interrupted prepare continues where it stopped. Once every chunk exists the split
arrays and ``manifest.json`` are assembled in the partial directory, which is then renamed into
place: a cache directory either is complete or does not exist. The ``fer-bench prepare``
command line is in :mod:`fer_bench.prepare_cli`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer_bench.errors import FerBenchError
from fer_bench.render import chunk_path, render_chunks

if TYPE_CHECKING:
    from fer_bench.cache import CacheSettings, RealDataset
    from fer_bench.rawdata import DatasetPlan

CHUNK_SIZE = 256


@dataclass
class PrepareResult:
    directory: Path
    manifest: dict[str, Any]
    reused: bool
    settings: CacheSettings


def real_dataset(name: str) -> RealDataset:
    """The registered dataset ``name``, if it is one that is read from raw files."""
    from fer_bench.cache import RealDataset
    from fer_bench.registry import get_dataset_factory

    factory = get_dataset_factory(name)
    if not isinstance(factory, RealDataset):
        raise FerBenchError(f"dataset '{name}' is not read from raw files; it needs no prepare")
    return factory


def prepare_dataset(
    name: str,
    root: str | os.PathLike[str],
    options: dict[str, Any] | None = None,
    *,
    image_size: int | None = None,
    align: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int = 1,
    device: str = "cpu",
    force: bool = False,
    progress: bool = True,
    chunk_size: int = CHUNK_SIZE,
) -> PrepareResult:
    """Build (or continue building) the cache for ``name`` at ``root`` with ``options``."""
    from fer_bench.cache import read_manifest, require_root

    spec = real_dataset(name)
    options = dict(options or {})
    for key, value in (("image_size", image_size), ("align", align), ("cache_dir", cache_dir)):
        if value is None:
            continue
        if key in options and options[key] != value:
            raise FerBenchError(
                f"{key} given twice with different values ({options[key]!r} and {value!r})"
            )
        options[key] = str(value) if key == "cache_dir" else value
    settings = spec.settings(root, options)
    if not force:
        manifest = read_manifest(settings.directory)
        if manifest is not None:
            return PrepareResult(settings.directory, manifest, True, settings)
    require_root(settings)  # before anything is created in the cache
    try:
        settings.directory.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(settings.directory.parent, exc) from None
    with _exclusive(settings):
        plan = spec.read(settings)
        fingerprint = _fingerprint(plan, settings, chunk_size)
        partial = settings.partial
        try:
            if force and partial.exists():
                shutil.rmtree(partial)
            _start_or_resume(partial, fingerprint, chunk_size)
            manifest = read_manifest(partial)
            if manifest is None or manifest.get("fingerprint") != fingerprint:
                render_chunks(
                    plan, settings, partial / "chunks", workers, device, progress, chunk_size
                )
                manifest = _assemble(plan, settings, partial, fingerprint, chunk_size)
            _finalize(partial, settings.directory)
        except OSError as exc:  # image problems never get here: they are listed, not raised
            raise _write_error(partial, exc) from None
    return PrepareResult(settings.directory, manifest, False, settings)


def _write_error(path: Path, exc: OSError) -> FerBenchError:
    return FerBenchError(
        f"cannot write the cache at {path}: {exc.strerror or exc}; free space there or choose "
        "another place with --cache-dir (or $FER_BENCH_CACHE)"
    )


@contextmanager
def _exclusive(settings: CacheSettings) -> Iterator[None]:
    """One prepare per cache at a time: two writers would interleave chunks. The lock file goes
    when the lock does, whether the prepare succeeded or failed."""
    from fer_bench.locks import FileLock

    lock_path = settings.base / settings.dataset / f".lock-{settings.key}"
    message = (
        f"another fer-bench prepare ({{holder}}) is writing {settings.partial}; "
        "wait for it to finish"
    )
    with FileLock(lock_path, message):
        yield


def _fingerprint(plan: DatasetPlan, settings: CacheSettings, chunk_size: int) -> str:
    """A digest of everything the cache is built from: finished chunks are reused only if equal."""
    import hashlib

    digest = hashlib.sha1(f"{settings.key}|{chunk_size}".encode())
    digest.update(
        json.dumps([plan.class_names, plan.sources, plan.au_names], sort_keys=True).encode()
    )
    for split, sp in plan.splits.items():
        digest.update(f"|{split}|{len(sp)}|".encode())
        for ref in sp.refs:
            digest.update(f"{ref.source}\0{ref.path}\0{ref.box}\n".encode())
            if ref.pixels is not None:
                digest.update(ref.pixels.tobytes())
        for array in [sp.labels] + [getattr(sp, f) for f in sp.OPTIONAL]:
            if array is not None:
                digest.update(array.tobytes())
        digest.update("\n".join(sp.names).encode())
    return digest.hexdigest()


def _start_or_resume(partial: Path, fingerprint: str, chunk_size: int) -> None:
    state_path = partial / "plan.json"
    state = {"fingerprint": fingerprint, "chunk_size": chunk_size}
    if partial.exists():
        try:
            previous = json.loads(state_path.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous == state:
            return
        shutil.rmtree(partial)  # built from other labels or settings: nothing in it is reusable
    (partial / "chunks").mkdir(parents=True)
    state_path.write_text(json.dumps(state))


def _assemble(
    plan: DatasetPlan, settings: CacheSettings, partial: Path, fingerprint: str, chunk_size: int
) -> dict[str, Any]:
    """Concatenate the chunks into the split arrays and write the manifest (the last step)."""
    from datetime import datetime, timezone

    import numpy as np

    from fer_bench import __version__
    from fer_bench.cache import CACHE_FORMAT, MANIFEST, split_fields
    from fer_bench.imageio import CORRUPT, MISSING, NO_FACE, OK, POLICY
    from fer_bench.rawdata import class_counts

    size = settings.image_size
    infos: dict[str, Any] = {}
    problems: dict[str, list[Any]] = {"corrupt": [], "missing": [], "no_face": []}
    for split, sp in plan.splits.items():
        paths = [chunk_path(partial / "chunks", split, i) for i in range(-(-len(sp) // chunk_size))]
        status_parts, error_parts = [], []
        for path in paths:
            with np.load(path, allow_pickle=False) as data:
                status_parts.append(data["status"])
                error_parts.extend(data["errors"].tolist())
        status = np.concatenate(status_parts) if status_parts else np.zeros(0, np.uint8)
        keep = (status == OK) | (status == NO_FACE)
        for i in np.flatnonzero(~keep | (status == NO_FACE)).tolist():
            source = sp.refs[i].source
            if status[i] == NO_FACE:
                problems["no_face"].append(source)
            else:
                kind = "corrupt" if status[i] == CORRUPT else "missing"
                problems[kind].append({"split": split, "file": source, "error": error_parts[i]})
        stored = int(keep.sum())
        if stored == 0:
            first = error_parts[0] if error_parts else "no samples"
            raise FerBenchError(
                f"{settings.dataset} {split} split: none of its {len(sp)} images could be read "
                f"(first: {sp.refs[0].source if len(sp) else '-'}: {first}); check --data-root"
            )
        out_dir = partial / split
        out_dir.mkdir(exist_ok=True)
        images = np.lib.format.open_memmap(
            out_dir / "images.npy", mode="w+", dtype=np.uint8, shape=(stored, 3, size, size)
        )
        pos = 0
        for k, path in enumerate(paths):
            mask = keep[k * chunk_size : (k + 1) * chunk_size]
            with np.load(path, allow_pickle=False) as data:
                kept = data["images"][mask]
            images[pos : pos + len(kept)] = kept
            pos += len(kept)
        images.flush()
        del images
        np.save(out_dir / "labels.npy", sp.labels[keep])
        for name in split_fields(sp):
            np.save(out_dir / f"{name}.npy", np.asarray(getattr(sp, name))[keep])
        names = [n for n, k in zip(sp.names, keep.tolist(), strict=True) if k]
        (out_dir / "names.json").write_text(json.dumps(names))
        infos[split] = {
            "listed": len(sp),
            "stored": stored,
            "corrupt": int((status == CORRUPT).sum()),
            "missing": int((status == MISSING).sum()),
            "no_face": int((status == NO_FACE).sum()),
            "class_counts": class_counts(sp.labels[keep], len(plan.class_names)),
            "fields": split_fields(sp),
        }
    manifest = {
        "format": CACHE_FORMAT,
        "complete": True,
        "dataset": settings.dataset,
        "identity": settings.identity,
        "image_size": size,
        "align": settings.align,
        "settings_hash": settings.key,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fer_bench_version": __version__,
        "class_names": plan.class_names,
        "au_names": plan.au_names,
        "sources": plan.sources,
        "notes": plan.notes,
        "splits": infos,
        "policy": POLICY,
        **problems,
        "fingerprint": fingerprint,
    }
    tmp = partial / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, partial / MANIFEST)
    return manifest


def _finalize(partial: Path, directory: Path) -> None:
    shutil.rmtree(partial / "chunks", ignore_errors=True)
    (partial / "plan.json").unlink(missing_ok=True)
    old = None
    if directory.exists():  # --force over a finished cache: swap, then delete the old one
        old = directory.with_name(f".old-{directory.name}-{os.getpid()}")
        os.rename(directory, old)
    os.rename(partial, directory)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
