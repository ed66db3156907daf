"""Where the uint8 training set lives while a run trains: on the device, or in host memory.

Two paths, chosen by measurement (``--data-placement auto``) or by hand (``device``, ``host``):

* **device** — today's fast path: the whole uint8 set is copied to the device once and every
  batch is gathered there by index (no host work per step).
* **host** — for sets larger than the GPU (AffectNet at 224 px is ~43 GB): the set stays where
  it is in host memory (a memory-mapped cache stays memory-mapped; it is never read into RAM as
  a whole, nor pinned), each batch's rows are gathered on the host into a pinned buffer
  (pageable where the OS refuses to pin) by a background thread, and copied to the device with
  ``non_blocking=True`` on a side stream, one step ahead: the gather and the copy of batch
  ``k + 1`` overlap step ``k``. The training stream waits on that copy's event before it reads
  the batch, and the batch is ``record_stream``-ed onto the training stream so its memory is
  not reused while the step still reads it. The host allocator keeps a pinned buffer until the
  copy that read it has finished (PyTorch records the copy's event on it).

Augmentation runs on the device after either path, from the same generator in the same order,
so both paths give the same batches, losses and metrics for the same seed. On a CPU device both
paths read host memory; the host path there still gathers in its background thread, one batch
ahead, which is what the CPU tests compare against the device path.

The automatic choice (CUDA only; on a CPU the set is already in host memory and ``auto`` keeps
the device path) compares the set's bytes with ``torch.cuda.mem_get_info``'s free memory minus
what training itself needs, :func:`measure_training_need`:

    need = 1.25 x (parameter bytes x (1 + optimizer states)  +  copies x probe peak)  +  1 GiB

where the optimizer states are 2 per parameter for Adam/AdamW (1 for SGD with momentum), plus
one for the gradient; the probe peak is the measured peak memory of one forward and backward of
the backbone on a training batch (augmentation included, gradients included), and ``copies`` is
the method's parameters over the backbone's (2 for methods that train two networks). The 25 %
and the 1 GiB cover what the probe does not see: the methods' heads and extra views, evaluation
batches, the allocator's fragmentation and cuDNN workspaces.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from fer_bench import augment
from fer_bench.errors import FerBenchError

PLACEMENTS = ("auto", "device", "host")
#: Per-parameter tensors the optimizer keeps besides the weights (the gradient counted apart).
OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 1}
SAFETY_FACTOR = 1.25
RESERVE_BYTES = 1 << 30
GIB = float(1 << 30)


@dataclass
class Placement:
    """Which path a run uses and why; what the run record keeps under ``data_placement``."""

    placement: str  # "device" or "host"
    requested: str  # "auto", "device" or "host"
    reason: str
    set_bytes: int
    free_bytes: int | None = None  # device memory free when the choice was made (CUDA)
    need_bytes: int | None = None  # measured need of model, optimizer and a batch (CUDA, auto)
    staging: str | None = None  # host path on CUDA: "pinned" or "pageable" batch buffers

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def choose_placement(
    requested: str,
    device: torch.device,
    set_bytes: int,
    need_bytes: Callable[[], int],
) -> Placement:
    """The path for a training set of ``set_bytes``; ``need_bytes()`` is called (and may run a
    measuring step on the device) only when ``auto`` on CUDA has to decide a close case."""
    if requested not in PLACEMENTS:
        raise FerBenchError(
            f"--data-placement must be one of {', '.join(PLACEMENTS)}, got '{requested}'"
        )
    if requested != "auto":
        return Placement(requested, requested, f"--data-placement {requested}", set_bytes)
    if device.type != "cuda":
        return Placement(
            "device",
            requested,
            f"the device is the {device.type.upper()}: the set is already in its memory",
            set_bytes,
        )
    free, _total = torch.cuda.mem_get_info(device)
    if set_bytes >= free:
        return Placement(
            "host",
            requested,
            f"the set ({_gib(set_bytes)}) is larger than the free device memory ({_gib(free)})",
            set_bytes,
            free_bytes=free,
        )
    need = int(need_bytes())
    room = free - need
    if set_bytes <= room:
        return Placement(
            "device",
            requested,
            f"the set ({_gib(set_bytes)}) fits in the free device memory ({_gib(free)}) less "
            f"the measured need of model, optimizer and a batch ({_gib(need)})",
            set_bytes,
            free_bytes=free,
            need_bytes=need,
        )
    return Placement(
        "host",
        requested,
        f"the set ({_gib(set_bytes)}) does not fit in the free device memory ({_gib(free)}) "
        f"less the measured need of model, optimizer and a batch ({_gib(need)})",
        set_bytes,
        free_bytes=free,
        need_bytes=need,
    )


def _param_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad)


def measure_training_need(
    method: nn.Module,
    cfg: Any,
    stored_shape: Sequence[int],
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[Any]],
) -> int:
    """Device bytes training needs besides the data set (see the module docstring).

    ``cfg`` is the resolved run config (optimizer, momentum, batch size, image size, augment).
    The probe leaves no trace: random state, batch-norm statistics and gradients are restored.
    """
    params = _param_bytes(method)
    states = OPTIMIZER_STATES.get(cfg.optimizer, 2)
    if cfg.optimizer == "sgd" and not cfg.momentum:
        states = 0
    backbone = getattr(method.backbone, "_orig_mod", method.backbone)  # eager: no compile here
    copies = max(1, round(params / max(_param_bytes(backbone), 1)))
    peak = probe_peak_bytes(backbone, cfg, stored_shape, device, autocast)
    return int(SAFETY_FACTOR * (params * (1 + states) + copies * peak) + RESERVE_BYTES)


def probe_peak_bytes(
    backbone: nn.Module,
    cfg: Any,
    stored_shape: Sequence[int],
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[Any]],
) -> int:
    """Peak device memory of one training forward + backward of ``backbone`` on a batch."""
    saved = {name: b.detach().clone() for name, b in backbone.named_buffers()}
    was_training = backbone.training
    index = device.index if device.index is not None else torch.cuda.current_device()
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.random.fork_rng(devices=[index]):
        backbone.train()
        gen = torch.Generator(device=device).manual_seed(0)
        raw = torch.zeros((cfg.batch_size, *stored_shape), dtype=torch.uint8, device=device)
        with autocast():
            x = augment.train_transform(raw, cfg.image_size, gen, cfg.augment, cfg.random_erasing)
            x = x.contiguous(memory_format=torch.channels_last)
            out = backbone(x)
        out.float().sum().backward()
        del raw, x, out
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - base
    for p in backbone.parameters():
        p.grad = None
    with torch.no_grad():
        for name, b in backbone.named_buffers():
            b.copy_(saved[name])
    backbone.train(was_training)
    return max(int(peak), 0)


class HostStream:
    """uint8 batches gathered on the host from ``images`` (by ``rows``) and handed to the device
    one batch ahead. ``images`` is read batch by batch, never copied as a whole."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.pinned: bool | None = None  # decided at the first pinned allocation (CUDA)

    def _worker(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="fer-bench-prefetch")
            return self._pool

    def _staging(self, shape: tuple[int, ...]) -> torch.Tensor:
        if self.pinned is not False:
            try:
                buffer = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
                self.pinned = True
                return buffer
            except RuntimeError:  # no page-locked memory to be had (memlock limit, no driver)
                self.pinned = False
        return torch.empty(shape, dtype=torch.uint8)

    def _load(self, images: torch.Tensor, rows: torch.Tensor) -> Any:
        """In the worker thread: gather the rows; on CUDA, start their copy on the side stream."""
        if not self.cuda:
            return images[rows]
        staging = self._staging((len(rows), *images.shape[1:]))
        torch.index_select(images, 0, rows, out=staging)
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            batch = staging.to(self.device, non_blocking=True)
            copied = torch.cuda.Event()
            copied.record(self.stream)
        return batch, copied

    def _hand_over(self, loaded: Any) -> torch.Tensor:
        if not self.cuda:
            return loaded
        batch, copied = loaded
        current = torch.cuda.current_stream(self.device)
        # Wait for this copy only (the side stream may already hold the next one), and keep the
        # batch's memory from the side stream's allocator until the training stream is done.
        current.wait_event(copied)
        batch.record_stream(current)
        return batch

    def batches(
        self, images: torch.Tensor, rows: torch.Tensor | None, chunks: Sequence[torch.Tensor]
    ) -> Iterator[torch.Tensor]:
        """``images[rows[chunk]]`` on the device for each CPU index ``chunk``, in order."""
        if not chunks:
            return
        pool = self._worker()

        def submit(chunk: torch.Tensor) -> Future:
            picked = chunk if rows is None else rows[chunk]
            return pool.submit(self._load, images, picked)

        pending: Future | None = submit(chunks[0])
        try:
            for k in range(len(chunks)):
                assert pending is not None
                loaded = pending.result()
                pending = submit(chunks[k + 1]) if k + 1 < len(chunks) else None
                yield self._hand_over(loaded)
        finally:
            if pending is not None:  # left early: let the worker finish before anything moves
                pending.cancel() or pending.exception()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


class DeviceFeed:
    """The device path: the whole uint8 set copied to the device once, batches gathered there."""

    def __init__(self, images: torch.Tensor, rows: torch.Tensor | None, device: torch.device):
        self.device = device
        # A memory-mapped cache is read into device memory, not RAM; on a CPU it is not copied.
        self.images = images.to(device)
        self.rows = None if rows is None else rows.to(device)
        self.host = HostStream(device)  # evaluation splits are always read from the host

    def _gather(self, idx: torch.Tensor) -> torch.Tensor:
        return self.images[idx if self.rows is None else self.rows[idx]]

    def train_batches(
        self, order: torch.Tensor, batch_size: int, steps: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(index, uint8 images)`` on the device for the first ``steps`` batches of ``order``."""
        for step in range(steps):
            idx = order[step * batch_size : (step + 1) * batch_size]
            yield idx, self._gather(idx)

    def in_order(self, n: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The whole training set in index order (``scan_train``), last batch partial."""
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(start + batch_size, n), device=self.device)
            yield idx, self._gather(idx)

    def split_batches(self, split: Any, batch_size: int) -> Iterator[torch.Tensor]:
        """uint8 batches of an evaluation split on the device, in order, one batch ahead."""
        n = len(split)
        chunks = [torch.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
        return self.host.batches(split.images, split.rows, chunks)

    def close(self) -> None:
        self.host.close()


class HostFeed(DeviceFeed):
    """The host path: the set stays in host memory, batches stream to the device one ahead."""

    def __init__(self, images: torch.Tensor, rows: torch.Tensor | None, device: torch.device):
        self.device = device
        self.images = images  # not copied: a memory-mapped cache stays memory-mapped
        self.rows = None if rows is None else rows.cpu()
        self.host = HostStream(device)

    def train_batches(
        self, order: torch.Tensor, batch_size: int, steps: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        on_host = order.cpu()  # once per epoch; the order is drawn on the host anyway
        chunks = [on_host[s * batch_size : (s + 1) * batch_size] for s in range(steps)]
        for step, raw in enumerate(self.host.batches(self.images, self.rows, chunks)):
            yield order[step * batch_size : (step + 1) * batch_size], raw

    def in_order(self, n: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        starts = range(0, n, batch_size)
        chunks = [torch.arange(s, min(s + batch_size, n)) for s in starts]
        batches = self.host.batches(self.images, self.rows, chunks)
        for start, raw in zip(starts, batches, strict=True):
            yield torch.arange(start, min(start + batch_size, n), device=self.device), raw


def make_feed(placement: Placement, images: torch.Tensor, rows: torch.Tensor | None, device):
    """The feed for ``placement``; on the host path it notes whether staging is pinned."""
    if placement.placement == "device":
        return DeviceFeed(images, rows, device)
    feed = HostFeed(images, rows, device)
    if device.type == "cuda":
        feed.host._staging((1, *images.shape[1:]))  # learn now whether the OS lets us pin
        placement.staging = "pinned" if feed.host.pinned else "pageable"
    return feed
