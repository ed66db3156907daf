"""``fer-bench prepare`` on the command line: its arguments and the summary it prints. Kept
apart from :mod:`fer_bench.prepare`, which builds the cache and is also called from Python."""

from __future__ import annotations

import argparse
import json
import os
import shlex

from fer_bench.errors import FerBenchError
from fer_bench.prepare import prepare_dataset


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="read a raw dataset once into a fast memory-mapped cache",
        description="Decode (and align) a dataset as it ships into the cache `fer-bench run` "
        "loads. Safe to interrupt: rerunning continues.",
    )
    parser.add_argument("--dataset", required=True, help="rafdb, ferplus, fer2013, affectnet, ...")
    parser.add_argument("--data-root", required=True, help="your copy of the dataset")
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="stored side in pixels (default: the dataset's run image size)",
    )
    parser.add_argument(
        "--align",
        choices=("mtcnn", "none"),
        default=None,
        help="MTCNN 5-point alignment or plain crop (default: per dataset)",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="cache root (default: $FER_BENCH_CACHE or ~/.cache/fer-bench)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="decoding processes (default: min(8, CPUs))",
    )
    parser.add_argument("--device", default="cpu", help="device for MTCNN (cpu, cuda)")
    parser.add_argument(
        "--dataset-option",
        action="append",
        metavar="KEY=VALUE",
        help="reader option, e.g. label_mode=probability or classes=7",
    )
    parser.add_argument("--force", action="store_true", help="rebuild an existing cache")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_handle)


def _handle(args: argparse.Namespace) -> int:
    from fer_bench.config import parse_options

    if args.workers < 0:
        raise FerBenchError(f"--workers must be >= 0, got {args.workers}")
    result = prepare_dataset(
        args.dataset,
        args.data_root,
        parse_options(args.dataset_option, "--dataset-option"),
        image_size=args.image_size,
        align=args.align,
        cache_dir=args.cache_dir,
        workers=args.workers,
        device=args.device,
        force=args.force,
        progress=not args.no_progress,
    )
    manifest = result.manifest
    if result.reused:
        print(f"{args.dataset}: already prepared at {result.directory} (--force rebuilds it)")
    else:
        print(f"{args.dataset}: prepared {manifest['image_size']}px, align {manifest['align']}")
        for split, info in manifest["splits"].items():
            print(
                f"  {split}: {info['stored']} stored of {info['listed']} listed "
                f"({info['corrupt']} corrupt, {info['missing']} missing, "
                f"{info['no_face']} without a detected face)"
            )
        official = manifest["notes"].get("official_counts", {})
        for split, count in official.items():
            listed = manifest["splits"].get(split, {}).get("listed")
            if listed is not None and listed != count:
                print(
                    f"  note: the official {split} split has {count} samples, this copy lists {listed}"
                )
        print(f"  cache: {result.directory}")
    run = ["fer-bench", "run", "--method", "scn", "--dataset", args.dataset]
    run += ["--data-root", args.data_root]
    for key, value in sorted(result.settings.given.items()):
        if key not in ("image_size", "align"):  # the loader finds the size it was prepared at
            text = value if isinstance(value, str) else json.dumps(value)
            run += ["--dataset-option", f"{key}={text}"]
    print("run: " + shlex.join([*run, "--noise", "20"]))
    return 0
