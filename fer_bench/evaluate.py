"""``fer-bench eval RUN_ID --dataset D``: a finished run's final weights on another dataset's test
split (cross-dataset evaluation, e.g. train on RAF-DB, test on FERPlus).

Classes are matched by name (every loader uses one vocabulary: surprise, fear, disgust,
happiness, sadness, anger, neutral, contempt, ...). Test samples of classes the model never
learned are dropped, and the model's prediction is the best of the classes both sides share, so
a class the test set lacks cannot absorb predictions; both lists are recorded. The evaluation
record is written atomically beside the run as ``eval-<dataset>-<hash>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fer_bench.config import DEFAULT_OUTPUT_DIR
from fer_bench.errors import FerBenchError

EVAL_PREFIX = "eval-"


def shared_classes(train: list[str], test: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Classes on both sides (in the model's order), and those only the train / test side has."""
    shared = [c for c in train if c in test]
    return shared, [c for c in train if c not in test], [c for c in test if c not in train]


def eval_path(run_directory: Path, dataset: str, options: dict[str, Any]) -> Path:
    key = json.dumps({"dataset": dataset, "options": options}, sort_keys=True, default=str)
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return run_directory / f"{EVAL_PREFIX}{dataset}-{digest}.json"


def evaluate_run(
    run_id: str,
    dataset: str,
    results: str | Path,
    data_root: str | None = None,
    dataset_options: dict[str, Any] | None = None,
    train_data_root: str | None = None,
    device_name: str = "auto",
) -> dict[str, Any]:
    """Evaluate run ``run_id`` under ``results`` on ``dataset``'s test split; write and return
    the evaluation record."""
    import torch

    from fer_bench.checkpoint import load_unwrapped_state
    from fer_bench.config import RunConfig
    from fer_bench.inference import predict_probabilities, uses_bf16
    from fer_bench.metrics import classification_metrics
    from fer_bench.registry import DATASETS
    from fer_bench.results import (
        FINAL_WEIGHTS_NAME,
        git_commit,
        load_record,
        package_versions,
        record_path,
        run_dir,
        write_json_atomic,
    )
    from fer_bench.runner import build_method, prepare_data
    from fer_bench.trainer import pick_device

    directory = run_dir(results, run_id)
    record = load_record(results, run_id)
    if record is None:
        raise FerBenchError(f"no run {run_id} under {results} (no {record_path(results, run_id)})")
    if record.status != "done":
        raise FerBenchError(f"run {run_id} is {record.status}, not done: nothing to evaluate")
    weights_file = directory / FINAL_WEIGHTS_NAME
    if not weights_file.exists():
        raise FerBenchError(
            f"run {run_id} has no {FINAL_WEIGHTS_NAME} (written by runs since v0.1)"
        )
    config = dict(record.data["config"])
    if train_data_root is not None:
        config["data_root"] = train_data_root
    cfg = RunConfig.from_dict(config)
    device = pick_device(device_name)
    options = dict(dataset_options or {})

    # The method is rebuilt from its training data (heads such as MTAC's AU graph depend on it),
    # then its final weights replace every parameter and buffer.
    train_source = DATASETS.create(cfg.dataset, root=cfg.data_root, **cfg.dataset_options)
    train_data, _, _ = prepare_data(cfg, train_source)
    method = build_method(cfg, train_source, train_data.train)
    load_unwrapped_state(method, torch.load(weights_file, map_location="cpu", weights_only=True))
    method.to(device)

    target = DATASETS.create(dataset, root=data_root, **options)
    model_classes = list(train_source.class_names)
    shared, train_only, test_only = shared_classes(model_classes, list(target.class_names))
    if not shared:
        raise FerBenchError(
            f"'{cfg.dataset}' ({', '.join(model_classes)}) and '{dataset}' "
            f"({', '.join(target.class_names)}) share no class"
        )
    test = target.test
    test_index = {name: i for i, name in enumerate(target.class_names)}
    keep_labels = torch.tensor([test_index[c] for c in shared])
    keep = torch.isin(test.labels, keep_labels)
    subset = test.subset(torch.nonzero(keep).flatten())
    remap = torch.full((len(target.class_names),), -1, dtype=torch.long)
    remap[keep_labels] = torch.arange(len(shared))
    labels = remap[subset.labels]
    columns = torch.tensor([model_classes.index(c) for c in shared])
    bf16 = uses_bf16(cfg.precision, device)
    probs = predict_probabilities(method, subset, cfg.image_size, device, bf16)
    preds = probs[:, columns].argmax(1)
    result = {
        "kind": "cross-dataset evaluation",
        "run_id": run_id,
        "train_dataset": cfg.dataset,
        "method": cfg.method,
        "noise_type": cfg.noise_type,
        "noise": cfg.noise,
        "seed": cfg.seed,
        "test_dataset": dataset,
        "test_dataset_options": options,
        "test_split": "test",
        "classes": shared,
        "dropped_classes": {"model_only": train_only, "test_only": test_only},
        "num_test": len(test),
        "num_evaluated": len(subset),
        "metrics": classification_metrics(labels, preds, len(shared)),
        "units": {"accuracy": "%", "confusion": "rows true class, columns predicted"},
        "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "git": git_commit(),
    }
    path = eval_path(directory, dataset, options)
    write_json_atomic(path, result)
    result["path"] = str(path)
    return result


def read_evaluations(results: str | Path) -> list[dict[str, Any]]:
    """Every evaluation record under ``results`` (for the report's cross-dataset table)."""
    out = []
    for path in sorted(Path(results).glob(f"*/{EVAL_PREFIX}*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return out


def register_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a finished run on another dataset's test split",
        description="Evaluate a finished run's final weights on another dataset's test split; "
        "classes are matched by name and those only one side has are dropped and listed.",
    )
    p.add_argument("run_id", help="the run to evaluate (a directory under --results)")
    p.add_argument("--dataset", required=True, help="dataset whose test split to use")
    p.add_argument("--data-root", help="that dataset's data root")
    p.add_argument(
        "--dataset-option", "-D", action="append", metavar="KEY=VALUE", help="its options"
    )
    p.add_argument(
        "--results", default=DEFAULT_OUTPUT_DIR, help=f"runs directory [{DEFAULT_OUTPUT_DIR}]"
    )
    p.add_argument("--train-data-root", help="the training dataset's root, if it moved")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N [auto]")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from fer_bench.config import parse_options

    result = evaluate_run(
        args.run_id,
        args.dataset,
        args.results,
        data_root=args.data_root,
        dataset_options=parse_options(args.dataset_option, "--dataset-option"),
        train_data_root=args.train_data_root,
        device_name=args.device,
    )
    m = result["metrics"]
    dropped = result["dropped_classes"]
    print(
        f"{result['run_id']} on {result['test_dataset']} test: acc {m['accuracy']:.2f}  "
        f"mean-class {m['mean_class_accuracy']:.2f}  macro-F1 {m['macro_f1']:.2f}  "
        f"({result['num_evaluated']} of {result['num_test']} faces, {len(result['classes'])} classes)"
    )
    for side, names in (
        ("only the model knows", "model_only"),
        ("only the test set has", "test_only"),
    ):
        if dropped[names]:
            print(f"  dropped, {side}: {', '.join(dropped[names])}")
    print(f"  record: {result['path']}")
    return 0
