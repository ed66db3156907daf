"""``fer-bench run`` and ``fer-bench list``."""

from __future__ import annotations

import argparse
from typing import Any

from fer_bench.config import (
    DATA_PLACEMENTS,
    GLOBAL_DEFAULTS,
    NOISE_TYPES,
    OPTIMIZERS,
    SCHEDULERS,
    parse_noise_rate,
    parse_options,
)


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got '{text}'")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Every RunConfig option as a flag; unset ones come from the method's and dataset's defaults."""
    d = GLOBAL_DEFAULTS
    p.add_argument("--method", default="ce", help="method name (fer-bench list) [ce]")
    p.add_argument(
        "--dataset", default="synthetic", help="dataset name (fer-bench list) [synthetic]"
    )
    p.add_argument(
        "--noise",
        default="0",
        help="label-noise rate in percent, 0 <= rate < 100; 0 < rate < 1 is refused as a likely "
        "fraction, write e.g. 0.5%% for half a percent [0]",
    )
    p.add_argument(
        "--noise-type",
        default="symmetric",
        choices=NOISE_TYPES,
        help="symmetric (exact per-class counts), bernoulli (SCN's generator: each label flips "
        "with probability rate), asymmetric (fixed confusions), file (published list), real "
        "(FERPlus: FER2013's labels), annotator (FERPlus: one annotator's vote) [symmetric]",
    )
    p.add_argument("--noise-file", help="noisy label list in RAF-DB format, for --noise-type file")
    p.add_argument(
        "--noise-file-base",
        type=int,
        default=1,
        choices=(0, 1),
        help="first label number in the noise file: 1 for RAF-DB's list format, 0 for SCN's files [1]",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for noise, split, init and order [0]")
    p.add_argument(
        "--epochs", type=int, help=f"training epochs [method/dataset default, else {d['epochs']}]"
    )
    p.add_argument(
        "--batch-size", type=int, help=f"batch size [method default, else {d['batch_size']}]"
    )
    p.add_argument("--lr", type=float, help=f"learning rate [method default, else {d['lr']}]")
    p.add_argument(
        "--weight-decay",
        type=float,
        help=f"weight decay [method default, else {d['weight_decay']}]",
    )
    p.add_argument(
        "--optimizer", choices=OPTIMIZERS, help=f"[method default, else {d['optimizer']}]"
    )
    p.add_argument("--momentum", type=float, help=f"SGD momentum [{d['momentum']}]")
    p.add_argument(
        "--scheduler", choices=SCHEDULERS, help=f"per-epoch LR schedule [{d['scheduler']}]"
    )
    p.add_argument("--scheduler-gamma", type=float, help=f"decay factor [{d['scheduler_gamma']}]")
    p.add_argument(
        "--backbone", help=f"any timm model name [dataset default, else {d['backbone']}]"
    )
    p.add_argument("--pretrained", help="local weights file for the backbone (never downloaded)")
    p.add_argument(
        "--image-size",
        type=int,
        help=f"training/eval input size [dataset default, else {d['image_size']}]",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        help=f"share of the noisy training set held out when a dataset has no validation split [{d['val_fraction']}]",
    )
    p.add_argument(
        "--augment",
        help=f"none, flip, flip_or_noise, crop_flip [method default, else {d['augment']}]",
    )
    p.add_argument("--random-erasing", type=_bool, help="true/false [method default, else true]")
    p.add_argument(
        "--balanced-sampling",
        action="store_true",
        help="draw training samples with class-balanced probabilities (AffectNet)",
    )
    p.add_argument(
        "--method-option",
        "-M",
        action="append",
        metavar="KEY=VALUE",
        help="method option, repeatable (fer-bench list shows them)",
    )
    p.add_argument(
        "--dataset-option",
        "-D",
        action="append",
        metavar="KEY=VALUE",
        help="dataset option, repeatable",
    )
    p.add_argument("--data-root", help="where the dataset lives on disk (real datasets)")
    p.add_argument("--output-dir", default="results/runs", help="runs directory [results/runs]")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N [auto]")
    p.add_argument("--compile", action="store_true", help="torch.compile the backbone")
    p.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "bf16", "fp32"),
        help="auto: bf16 autocast on CUDA, fp32 on CPU [auto]",
    )
    p.add_argument("--no-progress", action="store_true", help="no per-epoch progress bar")
    p.add_argument(
        "--keep-checkpoint",
        action="store_true",
        help="a finished run keeps checkpoint.pt with the optimizer state (default: only "
        "final_weights.pt)",
    )
    p.add_argument(
        "--data-placement",
        default="auto",
        choices=DATA_PLACEMENTS,
        help="training set on the device (device), streamed from host memory one batch ahead "
        "(host), or device when it fits next to the model, optimizer and a batch, measured "
        "(auto); the record says which ran and why [auto]",
    )


def config_from_args(args: argparse.Namespace):
    from fer_bench.config import RunConfig

    fields: dict[str, Any] = {
        name: getattr(args, name)
        for name in (
            "method",
            "dataset",
            "noise",
            "noise_type",
            "noise_file",
            "noise_file_base",
            "seed",
            "epochs",
            "batch_size",
            "lr",
            "weight_decay",
            "optimizer",
            "momentum",
            "scheduler",
            "scheduler_gamma",
            "backbone",
            "pretrained",
            "image_size",
            "val_fraction",
            "augment",
            "random_erasing",
            "balanced_sampling",
            "data_root",
            "output_dir",
            "device",
            "compile",
            "precision",
            "keep_checkpoint",
            "data_placement",
        )
    }
    fields["noise"] = parse_noise_rate(args.noise)
    fields["method_options"] = parse_options(args.method_option, "--method-option")
    fields["dataset_options"] = parse_options(args.dataset_option, "--dataset-option")
    fields["progress"] = not args.no_progress
    return RunConfig(**fields)


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
