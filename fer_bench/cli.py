"""The ``fer-bench`` command line. Every user-facing error is one line on stderr and exit 2."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fer_bench.errors import FerBenchError

# Modules that add a sub-command through ``register_cli(subparsers)``; each sets ``func`` on its
# parser with ``set_defaults(func=handler)`` where ``handler(args) -> int``. Keep heavy imports
# inside the handlers so ``fer-bench --help`` stays fast.
COMMAND_MODULES: tuple[str, ...] = (
    "fer_bench.cli_run",
    "fer_bench.launch",
    "fer_bench.report",
    "fer_bench.prepare_cli",
    "fer_bench.bench",
    "fer_bench.evaluate",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own usage errors: one line, exit 2
        command = self.prog.removeprefix("fer-bench").strip()  # "run", or "" for the top level
        raise FerBenchError(f"{command}: {message}" if command else message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fer-bench",
        description="Benchmark uncertainty-handling facial expression recognition under label noise.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except FerBenchError as exc:
        print(f"fer-bench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"fer-bench: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fer-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
