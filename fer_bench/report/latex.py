"""``leaderboard.tex``: the tables of :mod:`.tables` as booktabs LaTeX, one ``table`` each.

``\\input{leaderboard.tex}`` in a document that loads ``booktabs`` (the file's first lines say
so). Cell text is escaped; the markdown's bold becomes ``\\textbf``, ± and Δ math.
"""

from __future__ import annotations

import re

from .tables import Table

_ESCAPE = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "[": "{[}",  # never read as an optional argument after \\
    "]": "{]}",
    "±": r"$\pm$",
    "–": "--",
    "—": "---",
    "−": "$-$",
    "Δ": r"$\Delta$",
    "<": r"$<$",
    ">": r"$>$",
    "`": "",
}


def escape(text: str) -> str:
    """LaTeX-safe text; any other non-ASCII character becomes '?', so pdflatex never stops."""
    out = []
    for char in str(text):
        if char in _ESCAPE:
            out.append(_ESCAPE[char])
        elif ord(char) < 128:
            out.append(char)
        else:
            out.append("?")
    return "".join(out)


def cell(text: str) -> str:
    """A markdown cell as LaTeX: ``**bold**`` parts become ``\\textbf{...}``."""
    parts = re.split(r"\*\*(.+?)\*\*", str(text))
    return "".join(
        escape(part) if i % 2 == 0 else r"\textbf{" + escape(part) + "}"
        for i, part in enumerate(parts)
    )


def _label(title: str) -> str:
    return "tab:" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def table_latex(table: Table) -> str:
    spec = "l" + "r" * (len(table.headers) - 1)
    caption = " ".join([table.title + ".", table.intro, *table.notes]).strip()
    lines = [
        r"\begin{table}[tbp]",
        r"\centering",
        r"\small",
        rf"\caption{{{escape(caption)}}}",
        rf"\label{{{_label(table.title)}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(cell(h) for h in table.headers) + r" \\",
        r"\midrule",
        *(" & ".join(cell(c) for c in row) + r" \\" for row in table.rows),
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]
    return "\n".join(lines)


def leaderboard_latex(tables: list[Table], generated: str) -> str:
    head = [
        "% fer-bench leaderboard: booktabs tables, generated " + generated + ".",
        "% Needs \\usepackage{booktabs} in the preamble; \\input{leaderboard.tex} where wanted.",
        "",
    ]
    return "\n".join(head) + "\n\n".join(table_latex(t) for t in tables) + "\n"
