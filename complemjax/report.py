"""Turning result tables into markdown tables, seed intervals and PNG figures.

Studies write tidy CSVs; the functions here summarise them over seeds (mean and a
Student-t interval), print markdown tables whose columns are explained underneath, draw
line plots with interval bands, and assemble ``report.md`` from per-study sections.
Nothing here computes a metric: it only aggregates what the studies measured.
``seed_interval`` and ``summarize`` live in :mod:`complemjax.stats` (re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from complemjax.stats import seed_interval, summarize

__all__ = [
    "assemble_report",
    "format_ci",
    "line_plot",
    "markdown_table",
    "seed_interval",
    "summarize",
]


def format_ci(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    """``'0.512 [0.490, 0.534]'``; just the mean when the interval is undefined."""
    if math.isnan(mean):
        return "n/a"
    if math.isnan(lo) or math.isnan(hi):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def markdown_table(
    df: pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    *,
    digits: int = 3,
) -> str:
    """A GitHub markdown table of ``df`` followed by a legend of what each column means.

    Args:
        df: table to print (index ignored).
        columns: ``{column: meaning}``; printed under the table as the legend. Columns of
            ``df`` missing from it are printed without a legend entry.
        digits: decimals of float cells.
    """

    def cell(v) -> str:
        if isinstance(v, float | np.floating):
            return "n/a" if math.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    header = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    out = [header, rule, *body]
    if columns:
        legend = [f"- `{c}`: {columns[c]}" for c in df.columns if c in columns]
        if legend:
            out += ["", "Columns:", *legend]
    return "\n".join(out) + "\n"


def line_plot(
    summary: pd.DataFrame,
    *,
    x: str,
    hue: str,
    path: str | Path,
    facet: str | None = None,
    title: str = "",
    xlabel: str | None = None,
    ylabel: str = "",
    logx: bool = False,
    hline: float | None = None,
    ylim: tuple[float, float] | None = None,
) -> Path:
    """Line plot of ``summary`` (from :func:`summarize`) with seed-interval bands.

    One panel per value of ``facet``; one line per value of ``hue``; ``mean`` on the y
    axis with ``[ci_low, ci_high]`` shaded.
    """
    path = Path(path)
    facets = [None] if facet is None else list(dict.fromkeys(summary[facet]))
    ncol = min(len(facets), 3)
    nrow = -(-len(facets) // ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(4.6 * ncol, 3.6 * nrow), squeeze=False, sharey=True
    )
    for ax, fv in zip(axes.flat, facets):
        sub = summary if fv is None else summary[summary[facet] == fv]
        for hv in dict.fromkeys(sub[hue]):
            line = sub[sub[hue] == hv].sort_values(x)
            ax.plot(line[x], line["mean"], marker="o", ms=3.5, label=str(hv))
            ax.fill_between(line[x], line["ci_low"], line["ci_high"], alpha=0.2)
        if hline is not None:
            ax.axhline(hline, color="grey", lw=0.8, ls="--")
        if logx:
            ax.set_xscale("log", base=2)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_title(f"{facet} = {fv}" if fv is not None else title, fontsize=10)
        ax.set_xlabel(xlabel or x)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(facets) :]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel(ylabel)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, title=hue, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title and facet is not None:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def assemble_report(out_dir: str | Path, sections: Sequence[tuple[str, str]], *, intro: str = ""):
    """Write ``out_dir/report.md`` from ``(title, markdown)`` sections, in order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = ["# complemjax results\n", intro.strip() + "\n" if intro else ""]
    toc = [f"- [{t}](#{t.lower().replace(' ', '-')})" for t, _ in sections]
    parts += ["## Contents\n", "\n".join(toc) + "\n"]
    for title, body in sections:
        parts += [f"## {title}\n", body.strip() + "\n"]
    path = out_dir / "report.md"
    path.write_text("\n".join(p for p in parts if p))
    return path
