"""The one trainer every method shares: device, precision, optimizer, schedule, checkpoints.

On CUDA the whole uint8 training set is moved to the GPU once when it fits (else it streams from
host memory one batch ahead: :mod:`fer_bench.placement`), batches are gathered by index and
augmented there, the step runs under bf16 autocast in channels_last, and nothing in the step
reads a value back to the host: losses, weights and given-label probabilities accumulate in
device buffers that are read once per epoch. On CPU the same code runs in fp32.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fer_bench import augment
from fer_bench.checkpoint import load_unwrapped_state, read_checkpoint, unwrapped_state
from fer_bench.config import RunConfig, check_device_name
from fer_bench.data import Split
from fer_bench.errors import FerBenchError
from fer_bench.inference import bf16_autocast, predict_probabilities, uses_bf16
from fer_bench.method import Batch, LabelStore, Method, TrainingSet
from fer_bench.metrics import classification_metrics, relabel_stats, roc_auc
from fer_bench.optim import build_optimizer, build_scheduler
from fer_bench.placement import choose_placement, make_feed, measure_training_need
from fer_bench.progress import print_epoch_line, progress_bar
from fer_bench.results import save_torch_atomic


def pick_device(name: str) -> torch.device:
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FerBenchError(f"--device {name} asked for, but no CUDA device is available")
    return torch.device(name)


@dataclass
class TrainData:
    """Splits as the trainer uses them; train labels are the (noisy) given labels."""

    train: Split
    val: Split | None  # None with --val-fraction 0 on a dataset without its own
    test: Split
    clean_train_labels: torch.Tensor
    num_classes: int
    #: What validation accuracy is measured against: "clean" (the dataset's own split) or
    #: "noisy" (held out from the noisy training set, so it is capped by the noise).
    val_labels: str = "clean"


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    images_seen: int = 0


class Trainer:
    """Trains one method on one dataset; ``fit`` resumes from ``checkpoint_path`` when present."""

    def __init__(
        self,
        cfg: RunConfig,
        method: Method,
        data: TrainData,
        device: torch.device,
        checkpoint_path: Path | None = None,
        on_epoch_end: Callable[[TrainState], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.device = device
        self.data = data
        self.checkpoint_path = checkpoint_path
        self.on_epoch_end = on_epoch_end
        self.cuda = device.type == "cuda"
        self.bf16 = uses_bf16(cfg.precision, device)
        self.method = method.to(device)
        if self.cuda:
            self.method = self.method.to(memory_format=torch.channels_last)
        self.train_step_fn = self.method.loss
        self.predict_fn = self.method.predict
        if cfg.compile:
            # Compile the backbone only: it is where the time goes, and method heads stay eager
            # and readable. The first steps pay the compile cost once per run.
            self.method.backbone = torch.compile(self.method.backbone)
        self.optimizer = build_optimizer(cfg, self.method.parameters(), device)
        self.scheduler = build_scheduler(cfg, self.optimizer)
        # The uint8 set on the device once when it fits next to the model, optimizer and a
        # batch (measured), else left in host memory and streamed one batch ahead; either way
        # batches are augmented on the device. ``--data-placement`` forces either path.
        images = data.train.images
        self.placement = choose_placement(
            cfg.data_placement,
            device,
            images.numel() * images.element_size(),
            lambda: measure_training_need(
                self.method, cfg, images.shape[1:], device, self._autocast
            ),
        )
        self.feed = make_feed(self.placement, images, data.train.rows, device)
        self.train_images, self.train_rows = self.feed.images, self.feed.rows
        if cfg.progress and self.placement.placement != "device":
            print(
                f"training set streamed from host memory: {self.placement.reason}", file=sys.stderr
            )
        self.labels = LabelStore(data.train.labels.to(device))
        self.va = _maybe(data.train.valence_arousal, device)
        self.au = _maybe(data.train.action_units, device)
        n = len(data.train)
        self.weights_buf = torch.full((n,), float("nan"), device=device)
        self.given_prob_buf = torch.full((n,), float("nan"), device=device)
        self.order_gen = torch.Generator().manual_seed(cfg.seed)
        self.aug_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        self.state = TrainState()
        self.resumed_from: int | None = None  # the checkpoint's epoch where ``fit`` resumed
        counts = torch.bincount(data.train.labels, minlength=data.num_classes).double()
        self.sample_weight = (1.0 / counts.clamp(min=1))[data.train.labels]

    # -- one epoch ---------------------------------------------------------------------------
    def _epoch_order(self) -> torch.Tensor:
        n = len(self.data.train)
        if self.cfg.balanced_sampling:
            order = torch.multinomial(
                self.sample_weight, n, replacement=True, generator=self.order_gen
            )
        else:
            order = torch.randperm(n, generator=self.order_gen)
        return order.to(self.device)

    def _autocast(self):
        return bf16_autocast(self.device, self.bf16)

    def train_epoch(self, epoch: int, max_steps: int | None = None) -> dict[str, Any]:
        """One pass over the training set (or its first ``max_steps`` batches, for benchmarks)."""
        cfg = self.cfg
        self.method.train()
        order = self._epoch_order()
        n = len(order)
        bs = min(cfg.batch_size, n)
        steps = n // bs  # drop the last partial batch: fixed shapes, stable rank statistics
        if max_steps is not None:
            steps = min(steps, max_steps)
        loss_sum = torch.zeros((), device=self.device)
        log_sums: dict[str, torch.Tensor] = {}
        # This epoch's values only: samples not drawn this epoch drop out of the AUCs.
        self.weights_buf.fill_(float("nan"))
        self.given_prob_buf.fill_(float("nan"))
        start = time.perf_counter()
        progress = progress_bar(steps, f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress)
        self.method.before_epoch(epoch, TrainingSet(self.scan_train, len(self.data.train)))
        for idx, raw in self.feed.train_batches(order, bs, steps):
            batch = Batch(
                images=self._augment(raw),
                another_view=lambda raw=raw: self._augment(raw),
                labels=self.labels[idx],
                given_labels=self.labels.given[idx],
                index=idx,
                epoch=epoch,
                valence_arousal=None if self.va is None else self.va[idx],
                action_units=None if self.au is None else self.au[idx],
            )
            with self._autocast():
                out = self.train_step_fn(batch, self.labels)
            self.optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            self.optimizer.step()
            with torch.no_grad():
                loss_sum += out.loss.detach().float()
                for key, value in out.logs.items():
                    log_sums[key] = log_sums.get(key, 0) + value.detach().float()
                probs = out.logits.detach().float().softmax(1)
                self.given_prob_buf[idx] = probs.gather(1, batch.given_labels[:, None]).squeeze(1)
                if out.weights is not None:
                    self.weights_buf[idx] = out.weights.detach().float().flatten()
            progress.update(1)
        progress.close()
        self.scheduler.step()
        if self.cuda:
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        self.state.train_seconds += seconds
        self.state.images_seen += steps * bs
        logs = {k: float(v / max(steps, 1)) for k, v in log_sums.items()}
        return {
            "loss": float(loss_sum / max(steps, 1)),
            "seconds": seconds,
            "images_per_s": steps * bs / seconds if seconds > 0 else None,
            **logs,
        }

    def _augment(self, raw: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        images = augment.train_transform(
            raw, cfg.image_size, self.aug_gen, cfg.augment, cfg.random_erasing
        )
        if self.cuda:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    @torch.no_grad()
    def scan_train(self, fn: Callable[..., torch.Tensor], batch_size: int = 512) -> torch.Tensor:
        """``fn(images, labels, index)`` over the whole training set in eval mode, concatenated
        in index order on the device (for methods' per-epoch passes, e.g. DivideMix's GMM)."""
        was_training = self.method.training
        self.method.eval()
        n = len(self.data.train)
        out = []
        for idx, raw in self.feed.in_order(n, batch_size):
            x = augment.eval_transform(raw, self.cfg.image_size)
            if self.cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                out.append(fn(x, self.labels[idx], idx))
        self.method.train(was_training)
        return torch.cat(out)

    # -- evaluation --------------------------------------------------------------------------
    def predict_split(self, split: Split, batch_size: int = 512) -> torch.Tensor:
        """Class probabilities for a whole split, batched, bf16 on CUDA."""
        return predict_probabilities(
            self.method,
            split,
            self.cfg.image_size,
            self.device,
            self.bf16,
            batch_size,
            self.predict_fn,
        )

    def evaluate(self, split: Split) -> dict[str, Any]:
        preds = self.predict_split(split).argmax(1)
        return classification_metrics(split.labels, preds, self.data.num_classes)

    def diagnostics(self) -> dict[str, Any]:
        clean = self.labels.given.cpu() == self.data.clean_train_labels
        out: dict[str, Any] = {
            "given_label_auc": roc_auc(self.given_prob_buf.cpu(), clean),
            "weight_auc": None,
            "relabel": None,
        }
        if self.method.weight_name is not None:
            out["weight_auc"] = roc_auc(self.weights_buf.cpu(), clean)
            weights = self.weights_buf.cpu()
            if clean.any() and (~clean).any():
                for key, part in (("mean_weight_clean", clean), ("mean_weight_flipped", ~clean)):
                    mean = float(weights[part].nanmean())  # NaN: no weights this epoch (warm-up)
                    out[key] = None if mean != mean else mean
        if self.method.relabels:
            out["relabel"] = relabel_stats(
                self.labels.given,
                self.labels.current,
                self.data.clean_train_labels,
                self.data.num_classes,
            )
        return out

    # -- checkpoints -------------------------------------------------------------------------
    def _checkpoint_state(self) -> dict[str, Any]:
        state = {
            "epoch": self.state.epoch,
            "history": self.state.history,
            "train_seconds": self.state.train_seconds,
            "images_seen": self.state.images_seen,
            "method": unwrapped_state(self.method),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "labels": self.labels.state_dict(),
            "weights_buf": self.weights_buf.cpu(),
            "given_prob_buf": self.given_prob_buf.cpu(),
            "order_gen": self.order_gen.get_state(),
            "aug_gen": self.aug_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "device_type": self.device.type,
        }
        if self.cuda:
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def save_checkpoint(self) -> None:
        if self.checkpoint_path is not None:
            save_torch_atomic(self.checkpoint_path, self._checkpoint_state())

    def load_checkpoint(self) -> bool:
        state = read_checkpoint(self.checkpoint_path, self.device)
        if state is None:
            return False
        load_unwrapped_state(self.method, state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.labels.load_state_dict(state["labels"])
        self.weights_buf.copy_(state["weights_buf"])
        self.given_prob_buf.copy_(state["given_prob_buf"])
        self.order_gen.set_state(state["order_gen"])
        self.aug_gen.set_state(state["aug_gen"])
        torch.set_rng_state(state["torch_rng"])
        if self.cuda and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.state = TrainState(
            epoch=state["epoch"],
            history=list(state["history"]),
            train_seconds=state["train_seconds"],
            images_seen=state["images_seen"],
        )
        return True

    # -- the loop ----------------------------------------------------------------------------
    def fit(self) -> TrainState:
        """Train the remaining epochs; where a checkpoint is found, say so and resume after it."""
        if self.load_checkpoint():
            self.resumed_from = self.state.epoch
            print(
                f"resuming from epoch {self.state.epoch} of {self.cfg.epochs} "
                f"({self.checkpoint_path})",
                file=sys.stderr,
            )
        for epoch in range(self.state.epoch, self.cfg.epochs):
            lr = self.optimizer.param_groups[0]["lr"]
            train = self.train_epoch(epoch)
            if not math.isfinite(train["loss"]):
                raise FerBenchError(
                    f"training diverged at epoch {epoch + 1} (loss {train['loss']})"
                )
            entry = {
                "epoch": epoch + 1,
                "lr": lr,
                "train": train,
                "val": None if self.data.val is None else self.evaluate(self.data.val),
                "test": self.evaluate(self.data.test),
                "diagnostics": self.diagnostics(),
            }
            self.state.history.append(entry)
            self.state.epoch = epoch + 1
            if self.cfg.progress:
                print_epoch_line(entry, self.cfg.epochs, self.data.val_labels)
            self.save_checkpoint()
            if self.on_epoch_end is not None:
                self.on_epoch_end(self.state)
        return self.state


def _maybe(t: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if t is None else t.to(device)
