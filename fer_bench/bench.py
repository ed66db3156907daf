"""``fer-bench bench``: how fast the trainer trains, against what the model alone could do.

In one process it measures, after warm-up (compile included when asked):
  * the model-only ceiling — forward, backward and optimizer step of backbone + linear
    classifier with cross-entropy on one ready, already-normalised batch on the device;
  * end to end — the real trainer epoch loop: index gather from the uint8 set on the device
    (or, with ``--data-placement host``, gathered on the host and copied one batch ahead),
    batched augmentation, the method's loss (weights, rank loss, relabeling, prototypes),
    optimizer, bookkeeping buffers; ``--data-placement both`` times both paths, interleaved;
  * evaluation — batched inference over a held-out split;
  * peak memory (GPU memory on CUDA, process RSS on CPU).
Each rate is the median of `--repeats` interleaved measurements.
The data is random uint8 images of RAF-DB's shape (12,271 train / 3,068 test, 100x100 by
default): content does not change the arithmetic, and no dataset can be shipped.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer_bench.config import DATA_PLACEMENTS, PRECISIONS

if TYPE_CHECKING:  # torch is imported inside the functions: `fer-bench --help` stays fast
    import torch


def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _random_split(n: int, size: int, num_classes: int, gen: torch.Generator):
    import torch

    from fer_bench.data import Split

    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    return Split(images=images, labels=labels)


def ceiling_step(trainer) -> Callable[[], None]:
    """The bare model step (CE, backbone + linear head, Adam) on one ready batch. Built once per
    bench, so repeats time the same step and do not re-pay optimizer-state allocation."""
    import torch

    from fer_bench.augment import eval_transform

    cfg, device = trainer.cfg, trainer.device
    method = trainer.method
    head = torch.nn.Linear(method.num_features, trainer.data.num_classes).to(device)
    params = list(method.backbone.parameters()) + list(head.parameters())
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.Adam(params, lr=1e-3, **fused)
    images = eval_transform(trainer.train_images[: cfg.batch_size].to(device), cfg.image_size)
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    labels = trainer.labels.current[: cfg.batch_size]
    method.train()

    def step() -> None:
        with trainer._autocast():
            loss = torch.nn.functional.cross_entropy(head(method.features(images)).float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def images_per_second(step: Callable[[], None], steps: int, batch: int, device) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


def _relabel_from_start(method: str) -> dict[str, Any]:
    """Relabeling is part of the timed step for methods that have it."""
    from fer_bench.options import declared_options
    from fer_bench.registry import METHODS

    return {"relabel_epoch": 1} if "relabel_epoch" in declared_options(METHODS.get(method)) else {}


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from fer_bench.config import RunConfig
    from fer_bench.data import RAFDB_CLASSES, FERData
    from fer_bench.errors import FerBenchError
    from fer_bench.results import cpu_name, hardware, package_versions
    from fer_bench.runner import build_method, resolve_config
    from fer_bench.trainer import TrainData, Trainer, pick_device

    for name in (
        "steps",
        "warmup",
        "repeats",
        "num_train",
        "num_test",
        "batch_size",
        "image_size",
        "stored_size",
    ):
        if getattr(args, name) < 1:
            raise FerBenchError(f"--{name.replace('_', '-')} must be >= 1")
    if args.num_train < args.batch_size:
        raise FerBenchError("--num-train must be at least --batch-size")
    device = pick_device(args.device)
    cfg = resolve_config(
        RunConfig(
            method=args.method,
            dataset="synthetic",
            backbone=args.backbone,
            image_size=args.image_size,
            batch_size=args.batch_size,
            compile=args.compile,
            device=str(device),
            progress=False,
            precision=args.precision,
            epochs=1000,
            method_options=_relabel_from_start(args.method),
        )
    )
    gen = torch.Generator().manual_seed(0)
    train = _random_split(args.num_train, args.stored_size, 7, gen)
    test = _random_split(args.num_test, args.stored_size, 7, gen)
    data = FERData(name="bench", class_names=list(RAFDB_CLASSES), train=train, test=test)
    train_data = TrainData(
        train=train, val=test, test=test, clean_train_labels=train.labels, num_classes=7
    )
    # One trainer per measured placement (same seed, same model); the first is the main one,
    # whose figures are the record's end-to-end, ceiling and evaluation rates.
    placements = ("device", "host") if args.data_placement == "both" else (args.data_placement,)
    trainers = {}
    for placement in placements:
        torch.manual_seed(0)
        run_cfg = replace(cfg, data_placement=placement)
        trainers[placement] = Trainer(
            run_cfg, build_method(run_cfg, data, train), train_data, device
        )
    trainer = trainers[placements[0]]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    # Each figure is the median of ``repeats`` interleaved measurements, so a slow moment of a
    # shared machine (CPU steal, another process) moves one sample, not the result.
    samples: dict[str, list[float]] = {"model_only": [], "end_to_end": [], "eval": []}
    for placement in placements[1:]:
        samples[f"end_to_end_{placement}"] = []
    model_step = ceiling_step(trainer)
    for _ in range(args.warmup):  # warm-up: compile, autotune, allocator, optimizer state
        model_step()
    for each in trainers.values():
        each.train_epoch(0, max_steps=args.warmup)
    trainer.predict_split(test, batch_size=args.eval_batch_size)
    for repeat in range(args.repeats):
        samples["model_only"].append(
            images_per_second(model_step, args.steps, args.batch_size, device)
        )
        for i, each in enumerate(trainers.values()):
            _sync(device)
            timed = each.train_epoch(1 + repeat, max_steps=args.steps)
            samples["end_to_end" if i == 0 else f"end_to_end_{placements[i]}"].append(
                timed["images_per_s"]
            )
        _sync(device)
        start = time.perf_counter()
        trainer.predict_split(test, batch_size=args.eval_batch_size)
        _sync(device)
        samples["eval"].append(len(test) / (time.perf_counter() - start))
    medians = {k: statistics.median(v) for k, v in samples.items()}
    ceiling, end_to_end, eval_rate = (medians[k] for k in ("model_only", "end_to_end", "eval"))
    by_placement = {}
    for i, (placement, each) in enumerate(trainers.items()):
        rate = medians["end_to_end" if i == 0 else f"end_to_end_{placement}"]
        by_placement[each.placement.placement] = {
            "end_to_end_img_s": round(rate, 1),
            "end_to_end_vs_ceiling": round(rate / ceiling, 4),
            "decision": each.placement.to_record(),
        }
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
        peak_kind = "GPU memory allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        peak_kind = "process RSS"
    epoch_s = args.num_train / end_to_end
    return {
        "command": command_line(args, device),
        "method": args.method,
        "backbone": args.backbone,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "compile": args.compile,
        "precision": "bf16" if trainer.bf16 else "fp32",
        "num_train": args.num_train,
        "num_test": args.num_test,
        "stored_size": args.stored_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "model_only_img_s": round(ceiling, 1),
        "end_to_end_img_s": round(end_to_end, 1),
        "end_to_end_vs_ceiling": round(end_to_end / ceiling, 4),
        "eval_img_s": round(eval_rate, 1),
        "est_epoch_s": round(epoch_s, 2),
        "est_70_epochs_with_eval_s": round(70 * (epoch_s + len(test) / eval_rate), 1),
        "samples_img_s": {k: [round(x, 1) for x in v] for k, v in samples.items()},
        "data_placement": args.data_placement,
        "placements": by_placement,
        "host_vs_device": round(
            by_placement["host"]["end_to_end_img_s"] / by_placement["device"]["end_to_end_img_s"],
            4,
        )
        if len(by_placement) == 2
        else None,
        "peak_memory_gib": round(peak, 3),
        "peak_memory_kind": peak_kind,
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{cpu_name()} ({os.cpu_count()} cores)",
        "hardware": hardware(device),
        "versions": package_versions(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def command_line(args: argparse.Namespace, device: torch.device | str) -> str:
    """The command that reproduces this measurement, on the device it actually ran on."""
    parts = ["fer-bench bench", f"--device {device}"]
    for name in (
        "method",
        "backbone",
        "image_size",
        "batch_size",
        "precision",
        "num_train",
        "num_test",
        "stored_size",
        "steps",
        "warmup",
        "repeats",
        "eval_batch_size",
        "data_placement",
    ):
        parts.append(f"--{name.replace('_', '-')} {getattr(args, name)}")
    if args.compile:
        parts.append("--compile")
    return " ".join(parts)


def cmd_bench(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from fer_bench.results import write_json_atomic

    record = run_bench(args)
    rows = [
        (
            "model-only ceiling (fwd+bwd+Adam, ready batch)",
            f"{record['model_only_img_s']:,.0f} img/s",
        ),
        *(
            (
                f"end-to-end training, {name} placement (data, aug, method, optimizer)",
                f"{figures['end_to_end_img_s']:,.0f} img/s",
            )
            for name, figures in record["placements"].items()
        ),
        ("end-to-end / ceiling", f"{record['end_to_end_vs_ceiling']:.1%}"),
        *(
            [("host / device placement", f"{record['host_vs_device']:.1%}")]
            if record["host_vs_device"] is not None
            else []
        ),
        ("evaluation", f"{record['eval_img_s']:,.0f} img/s"),
        ("est. 70 epochs + eval", f"{record['est_70_epochs_with_eval_s']:,.0f} s"),
        (f"peak {record['peak_memory_kind']}", f"{record['peak_memory_gib']:.2f} GiB"),
    ]
    print(
        f"{record['method']} / {record['backbone']} @ {record['image_size']}px, batch {record['batch_size']}, "
        f"{record['precision']}{', compiled' if record['compile'] else ''} on {record['device_name']}"
    )
    print(tabulate(rows, tablefmt="github"))
    for name, figures in record["placements"].items():
        print(f"{name} placement: {figures['decision']['reason']}")
    if args.out:
        out = Path(args.out)
        if out.suffix != ".json":
            slug = re.sub(r"[^a-z0-9]+", "-", record["device_name"].lower()).strip("-")
            out = (
                out
                / f"{slug}-{record['method']}-{record['backbone']}-{record['image_size']}-b{record['batch_size']}-{record['precision']}{'-compiled' if record['compile'] else ''}{'' if args.data_placement == 'auto' else '-' + args.data_placement}.json"
            )
        write_json_atomic(out, record)
        print(f"record: {out}")
    return 0


def register_cli(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="measure training and evaluation throughput",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--method", default="scn", help="method to train [scn]")
    p.add_argument("--backbone", default="resnet18", help="timm backbone [resnet18]")
    p.add_argument("--image-size", type=int, default=224, help="training input size [224]")
    p.add_argument("--batch-size", type=int, default=512, help="batch size [512]")
    p.add_argument("--compile", action="store_true", help="torch.compile the backbone")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N [auto]")
    p.add_argument(
        "--num-train", type=int, default=12271, help="training images, RAF-DB-sized [12271]"
    )
    p.add_argument("--num-test", type=int, default=3068, help="evaluation images [3068]")
    p.add_argument("--stored-size", type=int, default=100, help="stored image size [100]")
    p.add_argument("--steps", type=int, default=20, help="timed steps [20]")
    p.add_argument("--warmup", type=int, default=5, help="warm-up steps [5]")
    p.add_argument(
        "--repeats", type=int, default=3, help="interleaved measurements; medians reported [3]"
    )
    p.add_argument("--eval-batch-size", type=int, default=1024, help="evaluation batch [1024]")
    p.add_argument(
        "--data-placement",
        default="auto",
        choices=(*DATA_PLACEMENTS, "both"),
        help="training set on the device, streamed from the host, the trainer's measured "
        "choice (auto), or both paths timed interleaved (both) [auto]",
    )
    p.add_argument("--out", default="results/bench", help="JSON file or directory [results/bench]")
    p.set_defaults(func=cmd_bench)
