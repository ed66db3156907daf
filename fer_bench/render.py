"""Rendering a prepare's images in chunks, in worker processes: each chunk of images is decoded
(and aligned with MTCNN when asked) and written to its own ``.npz`` the moment it is done, so
an interrupted prepare loses at most the chunks in flight. :mod:`fer_bench.prepare` plans the
chunks and assembles the cache from them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from fer_bench.cache import CacheSettings
    from fer_bench.rawdata import DatasetPlan, ImageRef

_ALIGNERS: dict[tuple[int, str], Any] = {}  # one MTCNN per worker process, built on first use


def chunk_path(chunks: Path, split: str, index: int) -> Path:
    return chunks / f"{split}-{index:06d}.npz"


def render_chunks(
    plan: DatasetPlan,
    settings: CacheSettings,
    chunks: Path,
    workers: int,
    device: str,
    progress: bool,
    chunk_size: int,
) -> None:
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    from tqdm import tqdm

    todo: list[tuple[Path, list[ImageRef]]] = []
    for split, sp in plan.splits.items():
        for index, start in enumerate(range(0, len(sp), chunk_size)):
            path = chunk_path(chunks, split, index)
            if not path.exists():
                todo.append((path, sp.refs[start : start + chunk_size]))
    total = sum(len(refs) for _, refs in todo)
    size, align = settings.image_size, settings.align
    with tqdm(
        total=total,
        unit="img",
        desc=f"prepare {settings.dataset}",
        disable=not progress,
        mininterval=1.0,
    ) as bar:
        if workers <= 1:
            for path, refs in todo:
                write_chunk(path, *process_chunk(refs, size, align, device))
                bar.update(len(refs))
            return
        pending: dict[Future[Any], tuple[Path, int]] = {}
        queue = iter(todo)
        with ProcessPoolExecutor(max_workers=workers, initializer=init_worker) as pool:
            try:
                while True:
                    while len(pending) < 2 * workers:  # bounded: chunks of big images add up
                        item = next(queue, None)
                        if item is None:
                            break
                        future = pool.submit(process_chunk, item[1], size, align, device)
                        pending[future] = (item[0], len(item[1]))
                    if not pending:
                        break
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        path, count = pending.pop(future)
                        write_chunk(path, *future.result())
                        bar.update(count)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise


def init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # the pool is the parallelism; threads per worker would oversubscribe


def process_chunk(
    refs: list[ImageRef], size: int, align: str, device: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Render a chunk of images: ``(images, status codes, error messages)``."""
    import numpy as np

    from fer_bench.imageio import ImageProblem, render

    aligner = None
    if align == "mtcnn":
        aligner = _ALIGNERS.get((size, device))
        if aligner is None:
            from fer_bench.align import FaceAligner

            aligner = _ALIGNERS[(size, device)] = FaceAligner(size, device=device)
    images = np.zeros((len(refs), 3, size, size), dtype=np.uint8)
    status = np.zeros(len(refs), dtype=np.uint8)
    errors = [""] * len(refs)
    for i, ref in enumerate(refs):
        try:
            images[i], status[i] = render(ref, size, aligner)
        except ImageProblem as problem:
            status[i], errors[i] = problem.status, str(problem)
    return images, status, errors


def write_chunk(path: Path, images: np.ndarray, status: np.ndarray, errors: list[str]) -> None:
    import numpy as np

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, images=images, status=status, errors=np.array(errors, dtype=str))
    os.replace(tmp, path)
