"""What a training run prints: a per-epoch line on stderr and a step progress bar (tqdm), or
nothing with ``--no-progress``."""

from __future__ import annotations

import sys
from typing import Any


def print_epoch_line(entry: dict[str, Any], epochs: int, val_labels: str) -> None:
    val = f"val ({val_labels} labels) {entry['val']['accuracy']:.1f}  " if entry["val"] else ""
    print(
        f"epoch {entry['epoch']}/{epochs}  loss {entry['train']['loss']:.3f}  {val}"
        f"test {entry['test']['accuracy']:.1f}  "
        f"({entry['train']['seconds']:.1f}s)",
        file=sys.stderr,
    )


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, mininterval=0.5)
