"""Numbers the papers reported (``fer_bench/paper_numbers.yaml``), shown beside ours, never ranked.

Each number carries its source and where in it, and the setting that makes it incomparable
with our rows or not: the backbone, its pretraining and how the reported epoch was chosen.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fer_bench.errors import FerBenchError

REQUIRED = ("method", "dataset", "noise_type", "noise", "metric", "value", "source", "where")
#: What a reader needs before comparing a reported number with ours; shown in its footnote.
SETTING = (
    ("backbone", "backbone"),
    ("pretraining", "pretraining"),
    ("epoch_selection", "epoch"),
)


def load_paper_numbers(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The reported numbers with their citation resolved; a malformed file is an error."""
    if path is None:
        text = resources.files("fer_bench").joinpath("paper_numbers.yaml").read_text()
        where = "fer_bench/paper_numbers.yaml"
    else:
        text, where = Path(path).read_text(), str(path)
    data = yaml.safe_load(text) or {}
    sources = data.get("sources") or {}
    out = []
    for i, entry in enumerate(data.get("numbers") or []):
        missing = [k for k in REQUIRED if k not in entry]
        if missing:
            raise FerBenchError(f"{where}: number {i} lacks {', '.join(missing)}")
        if entry["source"] not in sources:
            raise FerBenchError(f"{where}: number {i} cites unknown source '{entry['source']}'")
        out.append({**entry, "noise": float(entry["noise"]), "citation": sources[entry["source"]]})
    return out


def setting_text(number: dict[str, Any]) -> str:
    """``Backbone: IR50; pretraining: MS-Celeb-1M …; epoch: …`` ("not stated" where absent)."""
    parts = [f"{label}: {number.get(key) or 'not stated'}" for key, label in SETTING]
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def footnote(mark: int, number: dict[str, Any]) -> str:
    note = f" Note: {number['note']}." if number.get("note") else ""
    url = number["citation"].get("url")
    return (
        f"[{mark}] {number['citation']['paper']}; {number['where']}"
        + (f"; {url}" if url else "")
        + f".{note} {setting_text(number)}"
    )


def paper_cells(papers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reported numbers in the shape of our cells, for the CSV and JSON."""
    return [
        {
            "dataset": p["dataset"],
            "noise_type": p["noise_type"],
            "method": p["method"],
            "noise": p["noise"],
            "mean": float(p["value"]),
            "std": None,
            "n": None,
            "failed": None,
            "unfinished": None,
            "missing": None,
            "best": False,
            "source": f"{p['citation']['paper']}; {p['where']}; {setting_text(p)}",
        }
        for p in papers
    ]
